"""Token verification for resource servers (the gateway): :class:`TokenVerifier`.

Seed 004 §6.X.2.2.3 step 6 / §6.X.2.2.5 step 6: "The Web Signalling Translator
verifies the token received and maps the web identities to IMS IMPI/IMPU" — either
locally against the issuer's JWKS or "in a request to the IMS-Web & Authentication
Server" (RFC 7662 introspection, :class:`Introspector`).

Checks on a JWT (RFC 9068 §4, RFC 8725 §3):

- ``alg`` in the issuer's allowlist (never ``none``; HS* are refused at
  construction, so a public key can never serve as an HMAC secret), and the key
  type and curve must fit the algorithm (ES256 needs an EC P-256 key, RS* an RSA
  key, EdDSA an OKP key): no algorithm confusion;
- ``typ`` is ``at+jwt`` (or ``application/at+jwt``) for webims tokens;
- the ``kid`` is known; an unknown one makes :meth:`TokenVerifier.verify` refresh
  the issuer's JWKS once, rate-limited (``min_refresh_interval``), never per request;
- the signature; then ``iss`` (exact), ``aud`` (contains ours), ``exp`` and
  ``nbf``/``iat`` with ``leeway`` seconds, ``sub``, ``jti`` (required for local
  tokens), the revocation list and, for pooled identities, that the IMPU lease is
  still held.

Errors are :class:`~webims.auth.errors.InvalidToken` (401) or
:class:`~webims.auth.errors.InsufficientScope` (403) with the RFC 6750 code and a
human reason; success is an :class:`~webims.auth.identity.Identity`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote_plus

import aiohttp
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from .errors import InsufficientScope, InvalidToken
from .identity import Identity
from .oidc import ClaimMapping, MappingError, ProviderConfig
from .users import User

__all__ = [
    "ALGORITHM_KEYS",
    "Introspector",
    "KeySource",
    "RemoteJWKS",
    "StaticKeys",
    "TokenVerifier",
    "TrustedIssuer",
]

Key = ECKey | RSAKey | OKPKey

ALGORITHM_KEYS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
}
"""Accepted JWS algorithms and the key type (and curve) each one requires."""

AT_JWT = ("at+jwt", "application/at+jwt")
MAX_TOKEN_BYTES = 16 * 1024

#: RFC 7518 §3.4: ECDSA signatures are R || S, each this many octets, over this hash.
_ECDSA: dict[str, tuple[int, ec.ECDSA]] = {
    "ES256": (32, ec.ECDSA(hashes.SHA256())),
    "ES384": (48, ec.ECDSA(hashes.SHA384())),
    "ES512": (66, ec.ECDSA(hashes.SHA512())),
}
#: Decoded JOSE headers by their base64url text: an issuer's tokens share a handful of
#: headers (one per signing key), so each is decoded once. Bounded; entries are read-only.
_HEADERS: dict[str, dict[str, Any]] = {}
_HEADERS_MAX = 256


def _import_jwks(doc: Mapping[str, Any]) -> dict[str, Key]:
    keys: dict[str, Key] = {}
    raw = doc.get("keys")
    if not isinstance(raw, list):
        raise ValueError("JWKS has no 'keys' array")
    for item in raw:
        if not isinstance(item, Mapping) or item.get("use", "sig") != "sig" or not item.get("kid"):
            continue
        kty = item.get("kty")
        try:
            if kty == "EC":
                keys[str(item["kid"])] = ECKey.import_key(dict(item))
            elif kty == "RSA":
                keys[str(item["kid"])] = RSAKey.import_key(dict(item))
            elif kty == "OKP":
                keys[str(item["kid"])] = OKPKey.import_key(dict(item))
            # "oct" (symmetric) keys are never accepted from a JWKS
        except (JoseError, ValueError, TypeError):
            continue
    return keys


class KeySource(Protocol):
    """Where an issuer's public keys come from."""

    def find(self, kid: str) -> Key | None: ...

    def needs_refresh(self) -> bool: ...

    async def refresh(self) -> bool:
        """Re-read the keys if allowed now (rate limit); True if new keys were loaded."""
        ...


class StaticKeys:
    """A fixed JWK Set (tests, benchmarks, a key file)."""

    def __init__(self, jwks: Mapping[str, Any] | KeySet) -> None:
        doc = jwks.as_dict(private=False) if isinstance(jwks, KeySet) else jwks
        self._keys = _import_jwks(doc)

    def find(self, kid: str) -> Key | None:
        return self._keys.get(kid)

    def needs_refresh(self) -> bool:
        return False

    async def refresh(self) -> bool:
        return False


class CallableKeys:
    """Keys read by a function (e.g. the local :class:`~webims.auth.keys.KeyRing`), re-read
    at most every ``min_refresh_interval`` seconds when an unknown kid shows up."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, Any]],
        *,
        min_refresh_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._interval = min_refresh_interval
        self._clock = clock
        self._keys: dict[str, Key] = {}
        self._last = -1e18

    def find(self, kid: str) -> Key | None:
        key = self._keys.get(kid)
        if key is None and self._clock() - self._last >= self._interval:
            self._last = self._clock()
            self._keys = _import_jwks(self._load())
            key = self._keys.get(kid)
        return key

    def needs_refresh(self) -> bool:
        return False

    async def refresh(self) -> bool:
        return False


class RemoteJWKS:
    """An issuer's JWKS fetched over HTTPS and cached.

    Refreshed when a token names an unknown ``kid`` or the cache is older than
    ``max_age``, but never more often than every ``min_refresh_interval`` seconds
    (however many tokens with random kids arrive); concurrent refreshes share one
    request. ``fetches`` counts the HTTP requests made.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl: Any = True,
        min_refresh_interval: float = 60.0,
        max_age: float = 3600.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._ssl = ssl
        self._interval = min_refresh_interval
        self._max_age = max_age
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._keys: dict[str, Key] = {}
        self._loaded_at: float | None = None
        self._attempt_at = -1e18
        self._inflight: asyncio.Future[bool] | None = None
        self.fetches = 0
        self.last_error: str | None = None

    def find(self, kid: str) -> Key | None:
        return self._keys.get(kid)

    def needs_refresh(self) -> bool:
        if self._loaded_at is None:
            return self._clock() - self._attempt_at >= self._interval
        return self._clock() - self._loaded_at >= self._max_age

    async def refresh(self) -> bool:
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        if self._clock() - self._attempt_at < self._interval:
            return False
        self._attempt_at = self._clock()
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight = fut
        try:
            result = await self._fetch()
            fut.set_result(result)
            return result
        except BaseException as exc:  # pragma: no cover - cancellation
            fut.set_exception(exc)
            raise
        finally:
            self._inflight = None

    async def _fetch(self) -> bool:
        self.fetches += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self.url, ssl=self._ssl, headers={"Accept": "application/json"}) as resp,
            ):
                if resp.status != 200:
                    self.last_error = f"JWKS {self.url} answered {resp.status}"
                    return False
                doc = json.loads(await resp.read())
            keys = _import_jwks(doc)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            self.last_error = f"JWKS {self.url}: {exc or type(exc).__name__}"
            return False
        changed = set(keys) != set(self._keys)
        self._keys = keys
        self._loaded_at = self._clock()
        self.last_error = None
        return changed


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose tokens are accepted: keys, audiences, algorithms, typ, mapping.

    ``mapping=None``: webims's own claims (impi, impu, pool, alc, dest) are used as
    they are; otherwise the :class:`~webims.auth.oidc.ClaimMapping` builds the
    identity (external OIDC providers).
    """

    issuer: str
    keys: KeySource
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = ("ES256",)
    typ: tuple[str, ...] = AT_JWT
    mapping: ClaimMapping | None = None
    require_jti: bool = True

    def __post_init__(self) -> None:
        for alg in self.algorithms:
            if alg not in ALGORITHM_KEYS:
                raise ValueError(
                    f"algorithm {alg!r} is not accepted for {self.issuer}: "
                    f"asymmetric only ({', '.join(ALGORITHM_KEYS)})"
                )
        if not self.audiences:
            raise ValueError(f"issuer {self.issuer}: at least one audience is needed")

    @classmethod
    def from_provider(
        cls, provider: ProviderConfig, *, ssl: Any = True, **jwks_options: Any
    ) -> TrustedIssuer:
        keys = RemoteJWKS(provider.jwks_uri, ssl=ssl, **jwks_options)
        return cls(
            provider.issuer,
            keys,
            provider.audience,
            provider.algorithms,
            tuple(t.lower() for t in provider.typ),
            provider.mapping,
            require_jti=False,
        )


class Introspector:
    """RFC 7662 client: asks the authorization server about a token (for opaque tokens),
    authenticating with HTTP Basic (RFC 7662 §2.1). Positive answers are cached for at
    most ``cache_seconds`` (and never past the token's ``exp``)."""

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        ssl: Any = True,
        cache_seconds: float = 30.0,
        timeout: float = 5.0,
        audience: str | None = None,
    ) -> None:
        self.url = url
        self.audience = audience
        # RFC 6749 §2.3.1: form-urlencode, then Basic
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        self._auth = "Basic " + base64.b64encode(pair).decode("ascii")
        self._ssl = ssl
        self._cache_seconds = cache_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.requests = 0

    async def introspect(self, token: str, now: float) -> dict[str, Any]:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        self.requests += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(
                    self.url, data={"token": token}, headers={"Authorization": self._auth}, ssl=self._ssl
                ) as resp,
            ):
                if resp.status != 200:
                    raise InvalidToken(f"introspection endpoint answered {resp.status}")
                doc = json.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            raise InvalidToken(f"introspection failed: {exc or type(exc).__name__}") from None
        if not isinstance(doc, dict):
            raise InvalidToken("introspection answer is not a JSON object")
        if doc.get("active") is True:
            exp = doc.get("exp")
            until = now + self._cache_seconds
            if isinstance(exp, int | float):
                until = min(until, float(exp))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (until, doc)
        return doc


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64(segment: str) -> bytes:
    """base64url (RFC 7515 §2), strictly: what ``b64decode(..., altchars=b"-_", validate=True)`` does."""
    try:
        data = (segment + "=" * (-len(segment) % 4)).encode("ascii").translate(_URLSAFE)
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        raise InvalidToken("malformed token: bad base64url") from None


def _verify_ecdsa(key: ECKey, ecdsa: tuple[int, ec.ECDSA], message: bytes, signature: bytes) -> bool:
    """RFC 7518 §3.4: ``signature`` is R || S of ``size`` octets each; verified as DER."""
    size, algorithm = ecdsa
    if len(signature) != 2 * size:
        return False
    public = key.get_op_key("verify")  # the loaded key; refuses a JWK whose key_ops exclude verify
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    der = encode_dss_signature(
        int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    )
    try:
        public.verify(der, message, algorithm)
    except InvalidSignature:
        return False
    return True


def _not_ahead(value: object, name: str, limit: float, now: float) -> None:
    """``nbf`` / ``iat`` (RFC 7519 §4.1.5-6), when present: a number not past ``limit``."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidToken(f"bad {name} claim")
    if value > limit:
        what = "not valid yet" if name == "nbf" else "issued in the future"
        raise InvalidToken(f"token {what} ({int(value - now)} s ahead)")


class _UnknownKey(InvalidToken):
    def __init__(self, reason: str, issuer: TrustedIssuer) -> None:
        super().__init__(reason)
        self.trusted = issuer


class _NotJWT(InvalidToken):
    pass


_Parsed = tuple[dict[str, Any], dict[str, Any], bytes, str]


class TokenVerifier:
    """Verifies bearer tokens and returns :class:`~webims.auth.identity.Identity`.

    ``revoked(jti) -> bool`` is the revocation list; ``allocation_active(id) -> bool``
    checks that a pooled IMPU lease is still held; ``user_lookup(name)`` resolves
    ``ClaimMapping.user_claim``; ``introspector`` handles non-JWT tokens.
    """

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        leeway: float = 30.0,
        revoked: Callable[[str], bool] | None = None,
        allocation_active: Callable[[str], bool] | None = None,
        user_lookup: Callable[[str], User | None] | None = None,
        introspector: Introspector | None = None,
        introspect_all: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self.leeway = leeway
        self._revoked = revoked
        self._allocation_active = allocation_active
        self._user_lookup = user_lookup
        self._introspector = introspector
        self._introspect_all = introspect_all and introspector is not None
        self._clock = clock

    @property
    def issuers(self) -> tuple[TrustedIssuer, ...]:
        return tuple(self._issuers.values())

    # ------------------------------------------------------------------ public API

    def verify_cached(self, token: str, *, scope: str | None = None) -> Identity:
        """Verify with the keys at hand (no network I/O); raises TokenError."""
        identity = self._verify_jwt(token)
        return self._finish(identity, scope)

    def recheck(self, identity: Identity, *, scope: str | None = None) -> Identity:
        """An identity this verifier returned before (a resource server's cache of verified
        tokens, keyed by the token's text): what can change since is checked again — expiry,
        revocation, the pool lease — and the scope (TS 24.371 §7.2.1: on every request)."""
        now = self._clock()
        if now > identity.expires_at + self.leeway:
            raise InvalidToken(f"token expired {int(now - identity.expires_at)} s ago")
        if identity.jti is not None and self._revoked is not None and self._revoked(identity.jti):
            raise InvalidToken("token has been revoked")
        return self._finish(identity, scope)

    async def verify(self, token: str, *, scope: str | None = None, keep_claims: bool = True) -> Identity:
        """Verify, refreshing a JWKS on an unknown kid (rate-limited) and introspecting
        opaque tokens when an :class:`Introspector` is configured (every token with
        ``introspect_all=True``: seed 004 §6.X.2.2.3 NOTE 2, the server answers with the
        IMPI/IMPU and knows about revocation at once). ``keep_claims=False``: a local
        token's identity comes without its raw ``claims`` (for a cache of verified tokens)."""
        if self._introspect_all:
            return self._finish(await self._introspect(token), scope)
        try:
            parsed = self._split(token)  # parsed once, for the issuer and for the checks
        except _NotJWT:
            if self._introspector is None:
                raise
            return self._finish(await self._introspect(token), scope)
        trusted = self._trusted(parsed[1])
        if trusted.keys.needs_refresh():
            await trusted.keys.refresh()
        try:
            return self._finish(self._verify_parsed(parsed, keep_claims), scope)
        except _UnknownKey as exc:
            if await exc.trusted.keys.refresh():
                return self._finish(self._verify_parsed(parsed, keep_claims), scope)
            raise

    # ------------------------------------------------------------------ steps

    def _split(self, token: str) -> _Parsed:
        """(header, claims, signing input, signature) of a JWS compact serialization (RFC 7515 §7.1)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
            raise _NotJWT("malformed token: not a JWT")
        parts = token.split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise _NotJWT("malformed token: not a JWS compact serialization")
        header = _HEADERS.get(parts[0])
        try:
            if header is None:
                header = orjson.loads(_b64(parts[0]))  # UTF-8 only (RFC 7519 §7.2); no NaN
                if isinstance(header, dict):
                    if len(_HEADERS) >= _HEADERS_MAX:
                        _HEADERS.clear()
                    _HEADERS[parts[0]] = header
            claims = orjson.loads(_b64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            raise InvalidToken("malformed token: header or payload is not JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("malformed token: header or payload is not a JSON object")
        signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
        return header, claims, signing_input, parts[2]

    def _trusted(self, claims: Mapping[str, Any]) -> TrustedIssuer:
        iss = claims.get("iss")
        trusted = self._issuers.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise InvalidToken(f"untrusted issuer {iss!r}")
        return trusted

    def _verify_jwt(self, token: str) -> Identity:
        return self._verify_parsed(self._split(token))

    def _verify_parsed(self, parsed: _Parsed, keep_claims: bool = True) -> Identity:
        header, claims, signing_input, signature = parsed
        trusted = self._trusted(claims)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise InvalidToken("algorithm 'none' is not accepted: tokens must be signed")
        if alg not in trusted.algorithms:
            raise InvalidToken(
                f"algorithm {alg!r} is not accepted (allowed: {', '.join(trusted.algorithms)})"
            )
        if "crit" in header:
            raise InvalidToken("unsupported critical header parameters")
        typ = header.get("typ")
        typ_text = typ.lower() if isinstance(typ, str) else ""
        if typ_text not in trusted.typ:
            raise InvalidToken(f"wrong token type {typ!r}: expected {trusted.typ[0]!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token header has no key id (kid)")
        key = trusted.keys.find(kid)
        if key is None:
            raise _UnknownKey(f"unknown signing key {kid!r} for issuer {trusted.issuer}", trusted)
        kty, crv = ALGORITHM_KEYS[alg]
        if key.key_type != kty or (crv is not None and key.get("crv") != crv):
            raise InvalidToken(f"key {kid!r} ({key.key_type}) cannot verify {alg} signatures")
        key_alg = key.get("alg")
        if key_alg is not None and key_alg != alg:
            raise InvalidToken(f"key {kid!r} is for {key_alg}, not {alg}")
        # RFC 7515 §5.2: the signature over ASCII(header "." payload), with the algorithm's
        # own verifier (joserfc's: PKCS#1 v1.5 / PSS for RSA, Ed25519); ECDSA (RFC 7518 §3.4:
        # R || S) straight with cryptography, the key object loaded once per kid
        try:
            ecdsa = _ECDSA.get(alg)
            if ecdsa is not None and isinstance(key, ECKey):
                valid = bool(signature) and _verify_ecdsa(key, ecdsa, signing_input, _b64(signature))
            else:
                verifier = JWSRegistry.algorithms[alg]
                valid = bool(signature) and verifier.verify(signing_input, _b64(signature), key)
        except (JoseError, InvalidToken, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidToken("bad signature")
        self._check_claims(trusted, claims)
        return self._identity(trusted, claims, keep_claims)

    def _check_claims(self, trusted: TrustedIssuer, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        get = claims.get
        aud = get("aud")
        audiences = trusted.audiences
        if isinstance(aud, str):
            known = aud in audiences
        else:
            known = isinstance(aud, list) and any(isinstance(a, str) and a in audiences for a in aud)
        if not known:
            raise InvalidToken(f"wrong audience {aud!r}: expected {audiences[0]!r}")
        exp = get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise InvalidToken("token has no expiry (exp)")
        leeway = self.leeway
        if now > exp + leeway:
            raise InvalidToken(f"token expired {int(now - exp)} s ago")
        _not_ahead(get("nbf"), "nbf", now + leeway, now)
        _not_ahead(get("iat"), "iat", now + leeway, now)
        jti = get("jti")
        if trusted.require_jti and (not isinstance(jti, str) or not jti):
            raise InvalidToken("token has no jti")
        if isinstance(jti, str) and self._revoked is not None and self._revoked(jti):
            raise InvalidToken("token has been revoked")

    def _identity(
        self, trusted: TrustedIssuer, claims: Mapping[str, Any], keep_claims: bool = True
    ) -> Identity:
        if trusted.mapping is None:
            sub = claims.get("sub")
            if not isinstance(sub, str) or not sub:
                raise InvalidToken("token has no subject (sub)")
            try:
                return Identity.from_claims(claims, "token", keep_claims=keep_claims)
            except (ValueError, TypeError) as exc:
                raise InvalidToken(f"bad identity claims: {exc}") from None
        try:
            return self._map_external(trusted, trusted.mapping, claims)
        except MappingError as exc:
            raise InvalidToken(f"cannot map the token to an IMS identity: {exc}") from None

    def _map_external(self, trusted: TrustedIssuer, m: ClaimMapping, claims: Mapping[str, Any]) -> Identity:
        from .oidc import render

        m.check_required(claims)
        sub = m.subject_of(claims)
        impi: str | None = None
        impus: tuple[str, ...] = ()
        pool = m.pool
        scopes = m.granted_scopes(claims)
        dest = m.dest
        if m.impus:
            impus = tuple(render(t, claims) for t in m.impus)
            impi = render(m.impi, claims) if m.impi is not None else None
        elif m.user_claim is not None:
            name = claims.get(m.user_claim)
            user = (
                self._user_lookup(name) if self._user_lookup is not None and isinstance(name, str) else None
            )
            if user is None or user.disabled:
                raise MappingError(f"no enabled local user for claim {m.user_claim!r}")
            impi, impus, pool = user.impi, user.impus, user.pool
            scopes = scopes & frozenset(user.scopes)
            dest = user.dest if not user.dest.empty else dest
        elif pool is None:
            raise MappingError("the provider's mapping names no IMS identity")
        jti = claims.get("jti")
        client = claims.get("client_id", claims.get("azp"))
        return Identity(
            sub=sub,
            issuer=trusted.issuer,
            expires_at=float(claims["exp"]),
            scopes=scopes,
            client_id=str(client) if client is not None else None,
            impi=impi,
            impus=impus,
            pool=pool,
            jti=str(jti) if jti is not None else None,
            dest=dest,
            source="external",
            claims=dict(claims),
        )

    async def _introspect(self, token: str) -> Identity:
        assert self._introspector is not None
        now = self._clock()
        doc = await self._introspector.introspect(token, now)
        if doc.get("active") is not True:
            raise InvalidToken("token is not active (introspection)")
        exp = doc.get("exp")
        if isinstance(exp, int | float) and now > exp + self.leeway:
            raise InvalidToken("token expired (introspection)")
        if not isinstance(doc.get("sub"), str):
            raise InvalidToken("introspection answer has no subject")
        token_type = doc.get("token_type")
        if isinstance(token_type, str) and token_type.lower() not in ("bearer", "access_token"):
            raise InvalidToken(f"not an access token ({token_type}, introspection)")
        audience = self._introspector.audience
        aud = doc.get("aud")
        if audience is not None and not (aud == audience or (isinstance(aud, list) and audience in aud)):
            raise InvalidToken(f"wrong audience {aud!r}: expected {audience!r} (introspection)")
        try:
            return Identity.from_claims(doc, "introspection")
        except (ValueError, TypeError) as exc:
            raise InvalidToken(f"bad identity claims: {exc}") from None

    def _finish(self, identity: Identity, scope: str | None) -> Identity:
        alc = identity.allocation
        if alc is not None and self._allocation_active is not None and not self._allocation_active(alc):
            raise InvalidToken(
                f"the pool allocation of {identity.impu} was released or expired: refresh the token"
            )
        if scope is not None and scope not in identity.scopes:
            raise InsufficientScope(f"token does not grant scope {scope!r}", scope=scope)
        return identity
