"""External OIDC providers: a tiny local issuer serves its JWKS over real HTTP on
127.0.0.1; the verifier caches it, refreshes on an unknown kid (rate-limited),
checks the audience and maps claims to IMS identities."""

from __future__ import annotations

import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from auth_helpers import free_port
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from webims.auth.errors import InvalidToken
from webims.auth.identity import DestinationRules
from webims.auth.oidc import load_providers, parse_providers
from webims.auth.users import User
from webims.auth.verify import TokenVerifier, TrustedIssuer


class Issuer:
    """A minimal external identity provider: keys, a JWKS endpoint, a fetch counter."""

    def __init__(self) -> None:
        self.keys: list[RSAKey | ECKey] = [RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})]
        self.fetches = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": [k.as_dict(private=False) for k in self.keys]})

    def token(self, key: RSAKey | ECKey | None = None, typ: str = "JWT", **claims: Any) -> str:
        key = key or self.keys[0]
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
        now = int(time.time())
        body = {
            "iss": self.url,
            "aud": "webims-client",
            "sub": "g-123",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "gina",
            "email": "gina@example.com",
            "email_verified": True,
            "scope": "openid register call",
        }
        body.update(claims)
        return jwt.encode({"alg": alg, "typ": typ, "kid": key.kid}, body, key, algorithms=[alg])


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    iss = Issuer()
    app = web.Application()
    app.router.add_get("/jwks", iss.jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", iss.port).start()
    try:
        yield iss
    finally:
        await runner.cleanup()


def providers_toml(issuer: Issuer, mapping: str) -> str:
    return f"""
[[provider]]
issuer = "{issuer.url}"
jwks_uri = "{issuer.url}/jwks"
audience = ["webims-client"]
algorithms = ["RS256", "ES256"]
[provider.mapping]
{mapping}
"""


TEMPLATES = """
impi = "{sub}@ims.test"
impus = ["sip:{preferred_username}@ims.test"]
scope_claim = "scope"
required = { email_verified = true }
deny = ["international"]
cc = "1"
"""


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_verifier(issuer: Issuer, mapping: str, clock: Clock, **kw: Any) -> TokenVerifier:
    provider = parse_providers(tomllib.loads(providers_toml(issuer, mapping)))[0]
    trusted = TrustedIssuer.from_provider(provider, min_refresh_interval=30.0, clock=clock)
    return TokenVerifier([trusted], **kw)


async def test_template_mapping(issuer: Issuer) -> None:
    verifier = make_verifier(issuer, TEMPLATES, Clock())
    ident = await verifier.verify(issuer.token())
    assert ident.source == "external" and ident.issuer == issuer.url
    assert (ident.sub, ident.impi, ident.impus) == ("g-123", "g-123@ims.test", ("sip:gina@ims.test",))
    assert ident.scopes == {"register", "call"}  # configured scopes ∩ the token's
    assert not ident.dest.check("tel:+33123456789") and ident.dest.check("tel:+12025550100")
    assert issuer.fetches == 1
    await verifier.verify(issuer.token())
    assert issuer.fetches == 1  # cached

    refusals = {
        "wrong audience": issuer.token(aud="another-app"),
        "email_verified": issuer.token(email_verified=False),
        "not allowed in an IMS identity": issuer.token(preferred_username="x@evil.test;lr"),
        "expired": issuer.token(exp=int(time.time()) - 3600),
        "missing": issuer.token(preferred_username=None),
    }
    for reason, token in refusals.items():
        with pytest.raises(InvalidToken, match=reason):
            await verifier.verify(token)


async def test_rotation_at_the_provider_and_unknown_kid_rate_limit(issuer: Issuer) -> None:
    clock = Clock()
    verifier = make_verifier(issuer, TEMPLATES, clock)
    await verifier.verify(issuer.token())
    assert issuer.fetches == 1
    clock.t += 31  # the provider rotates to an EC key later on
    new = ECKey.generate_key("P-256", parameters={"kid": "ec-2"})
    issuer.keys.append(new)
    assert (await verifier.verify(issuer.token(key=new))).sub == "g-123"
    assert issuer.fetches == 2  # one refresh for the unknown kid
    # a flood of tokens with unknown kids does not turn into a flood of fetches
    for i in range(10):
        rogue = ECKey.generate_key("P-256", parameters={"kid": f"rogue-{i}"})
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await verifier.verify(issuer.token(key=rogue))
    assert issuer.fetches == 2
    clock.t += 31
    with pytest.raises(InvalidToken, match="unknown signing key"):
        await verifier.verify(issuer.token(key=ECKey.generate_key("P-256", parameters={"kid": "late"})))
    assert issuer.fetches == 3  # allowed again after the interval


async def test_user_claim_and_pool_mappings(issuer: Issuer) -> None:
    users = {
        "gina@example.com": User(
            "gina@example.com",
            ("register",),
            DestinationRules(),
            "gina@ims.test",
            ("sip:gina@ims.test",),
            None,
            False,
            None,
            0.0,
        ),
        "pat@example.com": User(
            "pat@example.com", ("register", "call"), DestinationRules(), None, (), "web", False, None, 0.0
        ),
    }
    verifier = make_verifier(issuer, 'user_claim = "email"', Clock(), user_lookup=users.get)
    ident = await verifier.verify(issuer.token())
    assert (ident.impi, ident.impus) == ("gina@ims.test", ("sip:gina@ims.test",))
    assert ident.scopes == {"register"}
    pooled = await verifier.verify(issuer.token(email="pat@example.com"))
    assert pooled.pool == "web" and pooled.impus == ()  # the gateway allocates from pool "web"
    with pytest.raises(InvalidToken, match="no enabled local user"):
        await verifier.verify(issuer.token(email="nobody@example.com"))
    pool_verifier = make_verifier(issuer, 'pool = "web"', Clock())
    assert (await pool_verifier.verify(issuer.token())).pool == "web"


async def test_typ_and_algorithm_allowlists(issuer: Issuer) -> None:
    verifier = make_verifier(issuer, TEMPLATES, Clock())
    with pytest.raises(InvalidToken, match="wrong token type"):
        await verifier.verify(issuer.token(typ="secevent+jwt"))


def test_provider_file_errors_name_the_key(tmp_path: Path) -> None:
    bad = {
        'algorithms = ["HS256"]': "provider[0].algorithms",
        'jwks_uri = "http://idp.example.com/jwks"': "provider[0].jwks_uri",
        "colour = 1": "provider[0].colour",
    }
    for line, key in bad.items():
        text = '[[provider]]\nissuer = "https://idp"\njwks_uri = "https://idp/jwks"\naudience = "a"\n'
        name = line.split(" = ")[0]
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(name + " ")) + "\n" + line + "\n"
        path = tmp_path / "providers.toml"
        path.write_text(text)
        with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
            load_providers(path)
    path.write_text('[[provider]]\nissuer = "https://idp"\n')
    with pytest.raises(ValueError, match="jwks_uri: missing"):
        load_providers(path)
    path.write_text(
        '[[provider]]\nissuer = "https://idp"\njwks_uri = "https://idp/j"\naudience = "a"\n'
        '[provider.mapping]\nimpus = ["sip:{sub}@x"]\npool = "p"\n'
    )
    with pytest.raises(ValueError, match="one of impus, user_claim or pool"):
        load_providers(path)
