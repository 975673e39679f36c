"""Digest and Bearer authentication for SIP and HTTP.

- Header values: ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenges and
  ``Authorization`` / ``Proxy-Authorization`` credentials (RFC 3261 §22, §25.1;
  RFC 7235 §2.1 for the generic auth-param / token68 forms; RFC 6750 §2.1 and
  §3, RFC 8898 for Bearer).  Malformed values raise :class:`DigestError`, a
  :class:`~webims.sip.errors.ParseError` (so it carries status 400 and the
  offending value); nothing else escapes the parsers.
- Digest computation (RFC 2617 §3.2.2, RFC 7616 §3.4, RFC 8760): MD5, SHA-256,
  SHA-512-256 and their ``-sess`` variants, qop ``auth`` / ``auth-int``, the
  RFC 2069 form without qop, and the AKA namespaces ``AKAv1-MD5`` (RFC 3310) and
  ``AKAv2-MD5`` (RFC 4169), whose password comes from :mod:`webims.aka`.
- :class:`DigestClient` answers challenges (cnonce, counting nc per nonce).
- :class:`DigestServer` issues stateless HMAC-protected nonces (time is the
  ``now`` argument), verifies credentials against a stored HA1 in constant
  time and refuses nonce-count replays.

Not implemented: ``userhash`` (RFC 7616 §3.4.4) and ``charset`` handling beyond UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from ..aka.digest_aka import aka_password, encode_auts, parse_aka_nonce
from ..aka.vectors import AkaFormatError, AkaMacFailure, AkaResult, AkaSyncFailure, Usim
from .auth_header import (
    AuthParam,
    Challenge,
    Credentials,
    DigestError,
    parse_challenge,
    parse_challenges,
    parse_credentials,
)

__all__ = [
    "AkaAuthorization",
    "AuthParam",
    "Challenge",
    "Credentials",
    "DigestAlgorithm",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "DigestVerdict",
    "VerifyStatus",
    "compute_ha1",
    "compute_response",
    "parse_algorithm",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
]


# --- computation (RFC 7616 §3.4) --------------------------------------------------------------------

_ALGORITHM = re.compile(r"(?:AKAv(\d{1,3})-)?(MD5|SHA-256|SHA-512-256)(-sess)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DigestAlgorithm:
    """A parsed ``algorithm`` value: hash, session variant, AKA version (RFC 3310 §3.1)."""

    hash_name: str  # "MD5", "SHA-256" or "SHA-512-256"
    sess: bool = False
    aka_version: int | None = None

    @property
    def name(self) -> str:
        """The canonical spelling, e.g. ``SHA-256-sess`` or ``AKAv1-MD5``."""
        aka = f"AKAv{self.aka_version}-" if self.aka_version is not None else ""
        return aka + self.hash_name + ("-sess" if self.sess else "")

    def hash(self, data: bytes) -> str:
        """H(data) as lower-case hex (RFC 7616 §3.4.1)."""
        if self.hash_name == "MD5":
            return hashlib.md5(data, usedforsecurity=False).hexdigest()
        if self.hash_name == "SHA-256":
            return hashlib.sha256(data).hexdigest()
        h = hashes.Hash(hashes.SHA512_256())
        h.update(data)
        return h.finalize().hex()


def parse_algorithm(value: str | None) -> DigestAlgorithm:
    """``None`` means MD5 (RFC 7616 §3.3); unknown names raise :class:`DigestError`."""
    if value is None:
        return DigestAlgorithm("MD5")
    m = _ALGORITHM.fullmatch(value)
    if m is None or (m.group(1) is not None and int(m.group(1)) not in (1, 2)):
        raise DigestError(f"unsupported algorithm {value!r}", value)
    if m.group(1) is not None and m.group(2).upper() != "MD5":
        raise DigestError(f"unsupported algorithm {value!r}", value)
    return DigestAlgorithm(
        m.group(2).upper(),
        sess=m.group(3) is not None,
        aka_version=int(m.group(1)) if m.group(1) is not None else None,
    )


def _b(x: str | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8")


def compute_ha1(username: str, realm: str, password: str | bytes, algorithm: str | None = None) -> str:
    """HA1 = H(username ":" realm ":" password), the value a server stores (RFC 7616 §3.4.2).

    For ``-sess`` algorithms this is still the stored value; the session key
    H(HA1 ":" nonce ":" cnonce) is derived per nonce by :func:`compute_response`.
    """
    return parse_algorithm(algorithm).hash(_b(username) + b":" + _b(realm) + b":" + _b(password))


def compute_response(
    *,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str | None = None,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` directive (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1, RFC 2069 when qop is None).

    For ``rspauth`` of Authentication-Info (RFC 2617 §3.2.3) pass ``method=""``.
    """
    alg = parse_algorithm(algorithm)
    key = ha1
    if alg.sess:
        if cnonce is None:
            raise DigestError("-sess algorithms need a cnonce")
        key = alg.hash(_b(ha1) + b":" + _b(nonce) + b":" + _b(cnonce))
    if qop is not None and qop.lower() == "auth-int":
        a2 = _b(method) + b":" + _b(uri) + b":" + _b(alg.hash(body))
    else:
        a2 = _b(method) + b":" + _b(uri)
    ha2 = alg.hash(a2)
    if qop is None:
        return alg.hash(_b(key) + b":" + _b(nonce) + b":" + _b(ha2))
    if qop.lower() not in ("auth", "auth-int"):
        raise DigestError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise DigestError("qop needs nc and cnonce")
    tail = f":{nonce}:{nc:08x}:{cnonce}:{qop.lower()}:{ha2}"
    return alg.hash(_b(key) + _b(tail))


# --- client ------------------------------------------------------------------------------------------


def _default_cnonce() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class AkaAuthorization:
    """What :meth:`DigestClient.authorize_aka` produced.

    ``failure`` is None (``result`` holds RES/CK/IK), ``"mac"`` (response directive
    empty, TS 24.229 §5.1.1.5.3) or ``"sync"`` (``auts`` sent, RFC 3310 §3.4).
    """

    credentials: Credentials
    result: AkaResult | None
    failure: str | None = None


class DigestClient:
    """Answers Digest challenges for one user (RFC 3261 §22.2, RFC 7616 §3.4).

    Give ``password`` or a precomputed ``ha1`` (non-AKA only).  Each nonce keeps
    one cnonce and an nc that grows by one per answer (RFC 7616 §3.4).
    """

    def __init__(
        self,
        username: str,
        password: str | bytes | None = None,
        *,
        ha1: str | None = None,
        cnonce_factory: Callable[[], str] = _default_cnonce,
        max_nonces: int = 16,
    ) -> None:
        self.username = username
        self._password = password
        self._ha1 = ha1
        self._cnonce_factory = cnonce_factory
        self._max_nonces = max_nonces
        self._nonces: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def _next_count(self, nonce: str) -> tuple[str, int]:
        cnonce, nc = self._nonces.pop(nonce, (self._cnonce_factory(), 0))
        self._nonces[nonce] = (cnonce, nc + 1)
        while len(self._nonces) > self._max_nonces:
            self._nonces.popitem(last=False)
        return cnonce, nc + 1

    def authorize(
        self,
        challenge: Challenge,
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        password: str | bytes | None = None,
        qop: str | None = None,
        auts: bytes | None = None,
        extra: Iterable[AuthParam] = (),
    ) -> Credentials:
        """Credentials for ``method uri`` answering ``challenge``.

        ``password`` overrides the stored one (the AKA password, see
        :meth:`authorize_aka`); ``qop`` forces a choice among the offered ones
        (default: ``auth`` if offered, else ``auth-int``); ``auts`` adds an AKA
        resynchronisation (RFC 3310 §3.4).
        """
        realm, nonce = challenge.realm, challenge.nonce
        if not challenge.is_digest or realm is None or nonce is None:
            raise DigestError("not a Digest challenge with realm and nonce", challenge.format())
        alg = parse_algorithm(challenge.algorithm)
        offered = challenge.qop_options
        if qop is not None and qop.lower() not in offered:
            raise DigestError(f"qop {qop!r} not offered", challenge.format())
        chosen = qop.lower() if qop else next((q for q in ("auth", "auth-int") if q in offered), None)
        if offered and chosen is None:
            raise DigestError("no supported qop offered", challenge.format())
        cnonce, nc = (None, None)
        if chosen is not None or alg.sess:
            cnonce, nc = self._next_count(nonce)
        if password is None and self._ha1 is not None:
            ha1 = self._ha1
        else:
            secret = password if password is not None else self._password
            if secret is None:
                raise DigestError("no password for this challenge")
            ha1 = compute_ha1(self.username, realm, secret, alg.name)
        response = compute_response(
            ha1=ha1, nonce=nonce, method=method, uri=uri, algorithm=alg.name,
            qop=chosen, nc=nc if chosen else None, cnonce=cnonce, body=body,
        )  # fmt: skip
        return Credentials.digest(
            self.username, realm, nonce, uri, response,
            algorithm=challenge.algorithm, cnonce=cnonce, opaque=challenge.opaque,
            qop=chosen, nc=nc if chosen else None,
            auts=encode_auts(auts) if auts is not None else None, extra=extra,
        )  # fmt: skip

    def authorize_aka(
        self,
        challenge: Challenge,
        method: str,
        uri: str,
        usim: Usim,
        body: bytes = b"",
        *,
        qop: str | None = None,
        extra: Iterable[AuthParam] = (),
    ) -> AkaAuthorization:
        """Run the USIM on an AKAv1/AKAv2 challenge and answer it (RFC 3310 §3.3, RFC 4169 §3)."""
        alg = parse_algorithm(challenge.algorithm)
        if alg.aka_version is None:
            raise DigestError("not an AKA challenge", challenge.format())
        try:
            aka_nonce = parse_aka_nonce(challenge.nonce or "")
            result = usim.authenticate(aka_nonce.rand, aka_nonce.autn)
        except AkaFormatError as exc:
            raise DigestError(f"bad AKA nonce: {exc}", challenge.nonce) from exc
        except AkaMacFailure:
            creds = self.authorize(challenge, method, uri, body, password=b"", qop=qop, extra=extra)
            return AkaAuthorization(creds.with_param("response", ""), None, "mac")
        except AkaSyncFailure as exc:
            creds = self.authorize(
                challenge, method, uri, body, password=b"", qop=qop, auts=exc.auts, extra=extra
            )
            return AkaAuthorization(creds, None, "sync")
        password = aka_password(alg.aka_version, result.res, result.ik, result.ck)
        creds = self.authorize(challenge, method, uri, body, password=password, qop=qop, extra=extra)
        return AkaAuthorization(creds, result)


# --- server ------------------------------------------------------------------------------------------


class VerifyStatus(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, expired nonce: re-challenge with stale=true (RFC 7616 §3.3)
    WRONG_PASSWORD = "wrong-password"  # response does not match (or wrong realm)
    INVALID_NONCE = "invalid-nonce"  # not a nonce this server issued: re-challenge
    REPLAY = "replay"  # nc not above the highest seen for this nonce (RFC 7616 §5.11)
    BAD_REQUEST = "bad-request"  # missing/contradictory directives: 400 (RFC 2617 §3.2.2.5)


@dataclass(frozen=True, slots=True)
class DigestVerdict:
    status: VerifyStatus
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK


_NONCE_LABEL = b"webims digest nonce\x00"


class DigestServer:
    """Challenges and verifies Digest credentials for one realm (RFC 3261 §22.4, RFC 7616 §3.3).

    Nonces are ``base64url(ts_ms(8) || random(8) || HMAC-SHA256(secret, realm, ts, random)[:16])``:
    stateless and verifiable; older than ``lifetime`` seconds they are stale.
    The highest nc seen per nonce is kept for at most ``max_nonces`` nonces; a
    nonce whose record was evicted is treated as stale, so a replay can never
    slip through the bound.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        lifetime: float = 300.0,
        algorithms: Iterable[str] = ("MD5",),
        qop: Iterable[str] = ("auth",),
        opaque: str | None = None,
        max_nonces: int = 4096,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.realm = realm
        self._secret = secret
        self.lifetime = lifetime
        self.algorithms = tuple(parse_algorithm(a).name for a in algorithms)
        self.qop = tuple(q.lower() for q in qop)
        self.opaque = opaque
        self._max = max_nonces
        self._random = random
        self._nc: OrderedDict[str, tuple[int, int | None]] = OrderedDict()  # nonce -> (nc, ts_ms)
        self._floor_ms = -1  # nonces issued at or before this lost their nc record

    def _mac(self, ts: bytes, rnd: bytes) -> bytes:
        msg = _NONCE_LABEL + self.realm.encode() + b"\x00" + ts + rnd
        return hmac.new(self._secret, msg, "sha256").digest()[:16]

    def make_nonce(self, now: float) -> str:
        ts = max(0, int(now * 1000)).to_bytes(8, "big")
        rnd = self._random(8)
        return base64.urlsafe_b64encode(ts + rnd + self._mac(ts, rnd)).rstrip(b"=").decode("ascii")

    def _nonce_ts(self, nonce: str) -> int | None:
        """Issue time (ms) of a nonce this server made, else None."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii") + b"=" * (-len(nonce) % 4))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        if len(raw) != 32 or not hmac.compare_digest(self._mac(raw[:8], raw[8:16]), raw[16:]):
            return None
        return int.from_bytes(raw[:8], "big")

    def challenge(self, now: float, *, stale: bool = False, algorithm: str | None = None) -> Challenge:
        """A fresh challenge; ``algorithm`` defaults to the first configured one."""
        alg = algorithm if algorithm is not None else self.algorithms[0]
        return Challenge.digest(
            self.realm, self.make_nonce(now), algorithm=alg, qop=self.qop, opaque=self.opaque, stale=stale
        )

    def _remember(self, nonce: str, nc: int, ts: int | None) -> None:
        self._nc.pop(nonce, None)
        self._nc[nonce] = (nc, ts)
        while len(self._nc) > self._max:
            _, (_, old_ts) = self._nc.popitem(last=False)
            if old_ts is not None:
                self._floor_ms = max(self._floor_ms, old_ts)

    def verify(
        self,
        credentials: Credentials,
        *,
        method: str,
        now: float,
        ha1: str | None = None,
        password: str | bytes | None = None,
        body: bytes = b"",
        request_uri: str | None = None,
        check_nonce: bool = True,
    ) -> DigestVerdict:
        """Check ``credentials`` for a request ``method`` (RFC 7616 §3.4, RFC 3261 §22.4).

        Give the stored ``ha1`` (H(username:realm:password) for the credentials'
        hash, see :func:`compute_ha1`) or the ``password`` (an AKA S-CSCF passes
        the password derived from XRES, with ``check_nonce=False`` because the
        nonce is RAND||AUTN and its lifetime is the vector's).  ``request_uri``,
        when given, must equal the ``uri`` directive (RFC 2617 §3.2.2.5).
        """
        c = credentials
        if not c.is_digest:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "not Digest credentials")
        username, realm, nonce, uri, response = c.username, c.realm, c.nonce, c.uri, c.response
        if username is None or realm is None or nonce is None or uri is None or response is None:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "missing username/realm/nonce/uri/response")
        try:
            alg = parse_algorithm(c.algorithm)
        except DigestError:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "unsupported algorithm")
        if alg.name.lower() not in (a.lower() for a in self.algorithms):
            return DigestVerdict(VerifyStatus.BAD_REQUEST, f"algorithm {alg.name} not offered")
        if request_uri is not None and uri != request_uri:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "uri does not match the Request-URI")
        qop, nc, cnonce = c.qop, c.nc, c.cnonce
        if qop is None and self.qop:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "qop missing")
        if qop is not None and (qop not in self.qop or nc is None or cnonce is None):
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "qop not offered, or nc/cnonce missing")
        if alg.sess and cnonce is None:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "cnonce missing")
        if self.opaque is not None and c.opaque != self.opaque:
            return DigestVerdict(VerifyStatus.BAD_REQUEST, "opaque does not match")
        if realm != self.realm:
            return DigestVerdict(VerifyStatus.WRONG_PASSWORD, "realm does not match")
        ts = None
        if check_nonce:
            ts = self._nonce_ts(nonce)
            if ts is None:
                return DigestVerdict(VerifyStatus.INVALID_NONCE, "nonce not issued here")
        if ha1 is None:
            if password is None:
                raise ValueError("verify needs ha1 or password")
            ha1 = compute_ha1(username, realm, password, alg.name)
        expected = compute_response(
            ha1=ha1, nonce=nonce, method=method, uri=uri, algorithm=alg.name,
            qop=qop, nc=nc, cnonce=cnonce, body=body,
        )  # fmt: skip
        if not hmac.compare_digest(expected.encode(), response.lower().encode()):
            return DigestVerdict(VerifyStatus.WRONG_PASSWORD, "response does not match")
        if ts is not None and (now - ts / 1000.0 > self.lifetime or ts <= self._floor_ms):
            return DigestVerdict(VerifyStatus.STALE, "nonce expired")
        count = nc if nc is not None else 1  # RFC 2069 form: the nonce is single-use
        seen = self._nc.get(nonce)
        if seen is not None and count <= seen[0]:
            return DigestVerdict(VerifyStatus.REPLAY, f"nc {count} already used")
        self._remember(nonce, count, ts)
        return DigestVerdict(VerifyStatus.OK)
