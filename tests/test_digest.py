"""Digest / Bearer header values, digest computation, client and server (webims.sip.digest)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webims.aka import (
    Usim,
    UsimSqnState,
    akav1_password,
    akav2_password,
    build_aka_nonce,
    decode_auts,
    generate_vector,
    join_sqn,
    next_sqn,
    verify_auts,
)
from webims.sip import auth_header
from webims.sip.digest import (
    AuthParam,
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    DigestServer,
    VerifyStatus,
    compute_ha1,
    compute_response,
    parse_algorithm,
    parse_challenge,
    parse_challenges,
    parse_credentials,
)
from webims.sip.errors import ParseError


def fixed(*values: str) -> Iterator[str]:
    yield from values


def cnonces(*values: str) -> DigestClient:
    it = fixed(*values)
    return DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: next(it))


# --- RFC 2617 §3.5 ------------------------------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_CREDENTIALS = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, '
    'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_challenge_parses_and_formats_byte_exact() -> None:
    c = parse_challenge(RFC2617_CHALLENGE)
    assert c.is_digest
    assert c.realm == "testrealm@host.com"
    assert c.nonce == "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    assert c.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert c.qop_options == ("auth", "auth-int")
    assert c.algorithm is None and not c.stale
    assert c.format() == RFC2617_CHALLENGE


def test_rfc2617_credentials_parse_and_format_byte_exact() -> None:
    c = parse_credentials(RFC2617_CREDENTIALS)
    assert (c.username, c.realm, c.uri) == ("Mufasa", "testrealm@host.com", "/dir/index.html")
    assert (c.qop, c.nc, c.cnonce) == ("auth", 1, "0a4f113b")
    assert c.response == "6629fae49393a05397450978507c4ef1"
    assert c.format() == RFC2617_CREDENTIALS


def test_rfc2617_response() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1=ha1, nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET", uri="/dir/index.html",
        qop="auth", nc=1, cnonce="0a4f113b",
    )  # fmt: skip
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_client_answer() -> None:
    creds = cnonces("0a4f113b").authorize(parse_challenge(RFC2617_CHALLENGE), "GET", "/dir/index.html")
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert (creds.qop, creds.nc, creds.cnonce) == ("auth", 1, "0a4f113b")
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert creds.algorithm is None


def test_rfc2069_form_without_qop() -> None:
    # Same inputs without qop: H(HA1:nonce:HA2) (RFC 2617 §3.2.2.1); the value another
    # project's test suite computed independently.
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    )
    creds = cnonces("unused").authorize(challenge, "GET", "/dir/index.html")
    assert creds.response == "670fd8c2df070c60b045671b8b24ff02"
    assert creds.qop is None and creds.nc is None and creds.cnonce is None


# --- RFC 7616 §3.9.1 ----------------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_challenge(algorithm: str) -> str:
    # As printed in the RFC: one directive a line, folded.
    return (
        'Digest\r\n    realm="http-auth@example.org",\r\n    qop="auth, auth-int",\r\n'
        f'    algorithm={algorithm},\r\n    nonce="{RFC7616_NONCE}",\r\n'
        f'    opaque="{RFC7616_OPAQUE}"'
    )


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_examples(algorithm: str, response: str) -> None:
    challenge = parse_challenge(rfc7616_challenge(algorithm))
    assert challenge.algorithm == algorithm
    assert challenge.qop_options == ("auth", "auth-int")
    it = fixed(RFC7616_CNONCE)
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: next(it))
    creds = client.authorize(challenge, "GET", "/dir/index.html")
    assert creds.response == response
    assert creds.algorithm == algorithm
    assert creds.opaque == RFC7616_OPAQUE
    # The server side, holding only HA1 (the RFC's nonce is not one of ours).
    server = DigestServer("http-auth@example.org", b"k", algorithms=(algorithm,))
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    verdict = server.verify(
        parse_credentials(creds.format()), method="GET", now=0, ha1=ha1, check_nonce=False
    )
    assert verdict.ok, verdict


def test_rfc7616_credentials_example_parses() -> None:
    value = (
        'Digest username="Mufasa",\r\n realm="http-auth@example.org",\r\n uri="/dir/index.html",\r\n'
        f' algorithm=SHA-256,\r\n nonce="{RFC7616_NONCE}",\r\n nc=00000001,\r\n'
        f' cnonce="{RFC7616_CNONCE}",\r\n qop=auth,\r\n'
        ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",\r\n'
        f' opaque="{RFC7616_OPAQUE}"'
    )
    c = parse_credentials(value)
    assert (c.algorithm, c.nc, c.qop, c.cnonce) == ("SHA-256", 1, "auth", RFC7616_CNONCE)
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    server = DigestServer("http-auth@example.org", b"k", algorithms=("SHA-256",))
    assert server.verify(c, method="GET", now=0, ha1=ha1, check_nonce=False).ok


def test_several_challenges_in_one_http_header() -> None:
    value = (
        'Digest realm="a", nonce="1", algorithm=SHA-256, qop="auth", Digest realm="a", nonce="2", '
        'algorithm=MD5, Negotiate abc==, Basic realm="x", Bearer'
    )
    got = parse_challenges(value)
    assert [(c.scheme, c.nonce, c.algorithm, c.token68) for c in got] == [
        ("Digest", "1", "SHA-256", None),
        ("Digest", "2", "MD5", None),
        ("Negotiate", None, None, "abc=="),
        ("Basic", None, None, None),
        ("Bearer", None, None, None),
    ]
    with pytest.raises(DigestError):
        parse_challenge(value)


# --- algorithms and qop -------------------------------------------------------------------------


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_auth_int_hashes_the_body() -> None:
    body = b"v=0\r\n"
    challenge = Challenge.digest("ims.test", "n1", qop=("auth-int",))
    client = DigestClient("alice", "secret", cnonce_factory=lambda: "c1")
    creds = client.authorize(challenge, "INVITE", "sip:bob@ims.test", body)
    assert creds.qop == "auth-int"
    # RFC 2617 §3.2.2.3: A2 = Method ":" digest-uri ":" H(entity-body)
    ha1 = md5("alice:ims.test:secret")
    ha2 = md5("INVITE:sip:bob@ims.test:" + hashlib.md5(body).hexdigest())
    assert creds.response == md5(f"{ha1}:n1:00000001:c1:auth-int:{ha2}")


def test_md5_sess_response() -> None:
    challenge = Challenge.digest("r", "n", algorithm="MD5-sess")
    creds = DigestClient("u", "p", cnonce_factory=lambda: "cn").authorize(challenge, "GET", "/")
    # RFC 2617 §3.2.2.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce
    key = md5(f"{md5('u:r:p')}:n:cn")
    assert creds.response == md5(f"{key}:n:00000001:cn:auth:{md5('GET:/')}")
    assert creds.algorithm == "MD5-sess"


@pytest.mark.parametrize(
    "algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"]
)
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
def test_round_trip_client_to_server(algorithm: str, qop: str) -> None:
    server = DigestServer("ims.test", b"secret", algorithms=(algorithm,), qop=("auth", "auth-int"))
    ha1 = compute_ha1("alice@ims.test", "ims.test", "pw", algorithm)  # all the server stores
    client = DigestClient("alice@ims.test", "pw")
    challenge = parse_challenge(server.challenge(now=100.0).format())
    for _ in range(3):  # nc 1, 2, 3 on the same nonce
        creds = client.authorize(challenge, "REGISTER", "sip:ims.test", b"body", qop=qop)
        verdict = server.verify(
            parse_credentials(creds.format()), method="REGISTER", now=101.0, ha1=ha1, body=b"body"
        )
        assert verdict.status is VerifyStatus.OK, verdict
    assert creds.nc == 3
    if qop == "auth-int":
        assert not server.verify(creds, method="REGISTER", now=101.0, ha1=ha1, body=b"other").ok


def test_client_with_precomputed_ha1() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    client = DigestClient("Mufasa", ha1=ha1, cnonce_factory=lambda: "0a4f113b")
    creds = client.authorize(parse_challenge(RFC2617_CHALLENGE), "GET", "/dir/index.html")
    assert creds.response == "6629fae49393a05397450978507c4ef1"


def test_parse_algorithm() -> None:
    assert parse_algorithm(None).name == "MD5"
    assert parse_algorithm("sha-256-SESS").name == "SHA-256-sess"
    a = parse_algorithm("AKAv2-MD5")
    assert (a.aka_version, a.hash_name, a.sess) == (2, "MD5", False)
    for bad in ("SHA-1", "AKAv3-MD5", "AKAv1-SHA-256", "MD5-sess-sess", ""):
        with pytest.raises(DigestError):
            parse_algorithm(bad)


def test_client_refuses_unanswerable_challenges() -> None:
    client = DigestClient("u", "p")
    with pytest.raises(DigestError):
        client.authorize(Challenge.digest("r", "n", algorithm="SHA-1"), "GET", "/")
    with pytest.raises(DigestError):
        client.authorize(Challenge.digest("r", "n", qop=("auth-conf",)), "GET", "/")
    with pytest.raises(DigestError):
        client.authorize(Challenge.digest("r", "n", qop=("auth",)), "GET", "/", qop="auth-int")
    with pytest.raises(DigestError):
        client.authorize(parse_challenge('Digest realm="r"'), "GET", "/")
    with pytest.raises(DigestError):
        client.authorize(Challenge.bearer("r"), "GET", "/")
    with pytest.raises(DigestError):
        DigestClient("u").authorize(Challenge.digest("r", "n"), "GET", "/")


# --- server ---------------------------------------------------------------------------------------


@pytest.fixture
def server() -> DigestServer:
    counter = iter(range(1_000_000))
    return DigestServer(
        "ims.test", b"server-secret", lifetime=60.0, random=lambda n: next(counter).to_bytes(n, "big")
    )


HA1 = compute_ha1("alice", "ims.test", "right")


def answer(server: DigestServer, now: float, password: str = "right") -> Credentials:
    return DigestClient("alice", password).authorize(server.challenge(now), "REGISTER", "sip:ims.test")


def test_challenge_shape(server: DigestServer) -> None:
    c = server.challenge(1000.0)
    assert c.format().startswith('Digest realm="ims.test", nonce="')
    assert c.format().endswith('", algorithm=MD5, qop="auth"')
    assert len(c.nonce or "") == 43
    assert server.challenge(1000.0, stale=True).stale
    assert server.challenge(1000.0).nonce != c.nonce


def test_wrong_password(server: DigestServer) -> None:
    v = server.verify(answer(server, 0, "wrong"), method="REGISTER", now=1, ha1=HA1)
    assert v.status is VerifyStatus.WRONG_PASSWORD


def test_method_is_covered(server: DigestServer) -> None:
    v = server.verify(answer(server, 0), method="INVITE", now=1, ha1=HA1)
    assert v.status is VerifyStatus.WRONG_PASSWORD


def test_stale_nonce(server: DigestServer) -> None:
    creds = answer(server, 1000.0)
    assert server.verify(creds, method="REGISTER", now=1061.0, ha1=HA1).status is VerifyStatus.STALE
    assert server.verify(creds, method="REGISTER", now=1059.0, ha1=HA1).ok


def test_expired_nonce_with_wrong_password_is_not_stale(server: DigestServer) -> None:
    creds = answer(server, 1000.0, "wrong")
    assert server.verify(creds, method="REGISTER", now=5000.0, ha1=HA1).status is VerifyStatus.WRONG_PASSWORD


def test_nonce_count_replay(server: DigestServer) -> None:
    client = DigestClient("alice", "right")
    challenge = server.challenge(0)
    first = client.authorize(challenge, "REGISTER", "sip:ims.test")
    second = client.authorize(challenge, "REGISTER", "sip:ims.test")
    assert server.verify(second, method="REGISTER", now=1, ha1=HA1).ok  # nc 2 first: fine
    assert server.verify(first, method="REGISTER", now=1, ha1=HA1).status is VerifyStatus.REPLAY
    assert server.verify(second, method="REGISTER", now=1, ha1=HA1).status is VerifyStatus.REPLAY
    third = client.authorize(challenge, "REGISTER", "sip:ims.test")
    assert server.verify(third, method="REGISTER", now=1, ha1=HA1).ok


def test_replay_protection_survives_eviction() -> None:
    server = DigestServer("ims.test", b"s", max_nonces=2)
    used = [answer(server, float(t)) for t in (1, 2, 3)]
    for creds in used:
        assert server.verify(creds, method="REGISTER", now=4, ha1=HA1).ok
    # The first nonce's nc record was evicted: it must not be accepted again.
    assert server.verify(used[0], method="REGISTER", now=4, ha1=HA1).status is VerifyStatus.STALE
    assert server.verify(used[2], method="REGISTER", now=4, ha1=HA1).status is VerifyStatus.REPLAY


def test_forged_or_foreign_nonce(server: DigestServer) -> None:
    other = DigestServer("ims.test", b"another-secret")
    assert (
        server.verify(answer(other, 0), method="REGISTER", now=1, ha1=HA1).status
        is VerifyStatus.INVALID_NONCE
    )
    creds = answer(server, 0)
    nonce = creds.nonce or ""
    forged = creds.with_param("nonce", nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB"))
    assert server.verify(forged, method="REGISTER", now=1, ha1=HA1).status is VerifyStatus.INVALID_NONCE
    for junk in ("", "%%%", "é", "a" * 43):
        v = server.verify(creds.with_param("nonce", junk), method="REGISTER", now=1, ha1=HA1)
        assert v.status is VerifyStatus.INVALID_NONCE


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.without("response"),
        lambda c: c.without("qop"),
        lambda c: c.without("nc"),
        lambda c: c.without("cnonce"),
        lambda c: c.with_param("qop", "auth-int", quoted=False),
        lambda c: c.with_param("algorithm", "SHA-1", quoted=False),
        lambda c: c.with_param("algorithm", "SHA-256", quoted=False),
        lambda c: c.with_param("uri", "sip:other.test"),
        lambda c: Credentials.bearer("abc"),
    ],
)
def test_bad_requests(server: DigestServer, mutate: object) -> None:
    creds = answer(server, 0)
    assert callable(mutate)
    bad = mutate(creds)
    v = server.verify(bad, method="REGISTER", now=1, ha1=HA1, request_uri="sip:ims.test")
    assert v.status is VerifyStatus.BAD_REQUEST, v


def test_wrong_realm(server: DigestServer) -> None:
    v = server.verify(answer(server, 0).with_param("realm", "evil.test"), method="REGISTER", now=1, ha1=HA1)
    assert v.status is VerifyStatus.WRONG_PASSWORD


def test_opaque_must_come_back() -> None:
    server = DigestServer("r", b"s", opaque="xyz")
    ha1 = compute_ha1("alice", "r", "right")
    creds = DigestClient("alice", "right").authorize(server.challenge(0), "GET", "/")
    assert creds.opaque == "xyz"
    assert server.verify(creds, method="GET", now=1, ha1=ha1).ok
    assert (
        server.verify(creds.without("opaque"), method="GET", now=1, ha1=ha1).status
        is VerifyStatus.BAD_REQUEST
    )


# --- IMS AKA over digest (RFC 3310, RFC 4169, TS 24.229, TS 33.203) ------------------------------

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
AMF = bytes.fromhex("8000")


def scscf_challenge(sqn: int, algorithm: str) -> tuple[Challenge, bytes, bytes, bytes, bytes]:
    av = generate_vector(K, OPC, AMF, sqn)
    challenge = Challenge.digest(
        "ims.test", build_aka_nonce(av.rand, av.autn), algorithm=algorithm,
        extra=(AuthParam("ck", av.ck.hex()), AuthParam("ik", av.ik.hex())),
    )  # fmt: skip
    return challenge, av.rand, av.xres, av.ck, av.ik


@pytest.mark.parametrize("algorithm", ["AKAv1-MD5", "AKAv2-MD5"])
def test_ims_aka_registration(algorithm: str) -> None:
    challenge, _rand, xres, ck, ik = scscf_challenge(next_sqn(0), algorithm)
    assert challenge.ck == ck.hex() and challenge.ik == ik.hex()
    # The P-CSCF (eP-CSCF) keeps CK/IK and relays the rest (TS 24.229 §5.2.2.1).
    relayed = parse_challenge(challenge.without("ck", "ik").format())
    assert relayed.ck is None and "ck=" not in relayed.format()
    usim = Usim(K, OPC)
    answer_ = DigestClient("alice@ims.test").authorize_aka(relayed, "REGISTER", "sip:ims.test", usim)
    assert answer_.failure is None and answer_.result is not None
    assert answer_.result.res == xres
    creds = parse_credentials(answer_.credentials.format())
    assert creds.algorithm == algorithm
    password = akav1_password(xres) if algorithm == "AKAv1-MD5" else akav2_password(xres, ik, ck)
    scscf = DigestServer("ims.test", b"s", algorithms=(algorithm,))
    assert scscf.verify(creds, method="REGISTER", now=0, password=password, check_nonce=False).ok
    wrong = akav2_password(xres, ik, ck) if algorithm == "AKAv1-MD5" else akav1_password(xres)
    v = scscf.verify(creds, method="REGISTER", now=0, password=wrong, check_nonce=False)
    assert v.status is VerifyStatus.WRONG_PASSWORD


def test_ims_aka_sync_failure_carries_auts() -> None:
    usim = Usim(K, OPC, UsimSqnState())
    usim.sqn_state.accept(join_sqn(500, 0))
    challenge, rand, _xres, _ck, _ik = scscf_challenge(join_sqn(7, 0), "AKAv1-MD5")
    answer_ = DigestClient("alice@ims.test").authorize_aka(challenge, "REGISTER", "sip:ims.test", usim)
    assert answer_.failure == "sync" and answer_.result is None
    creds = parse_credentials(answer_.credentials.format())
    assert creds.auts is not None
    assert verify_auts(K, OPC, rand, decode_auts(creds.auts)) == join_sqn(500, 0)
    # RFC 3310 §3.4: the response is computed with an empty password.
    scscf = DigestServer("ims.test", b"s", algorithms=("AKAv1-MD5",))
    assert scscf.verify(creds, method="REGISTER", now=0, password=b"", check_nonce=False).ok


def test_ims_aka_mac_failure_sends_empty_response() -> None:
    challenge, *_ = scscf_challenge(next_sqn(0), "AKAv1-MD5")
    usim = Usim(bytes(16), OPC)  # not the subscriber's K
    answer_ = DigestClient("alice@ims.test").authorize_aka(challenge, "REGISTER", "sip:ims.test", usim)
    assert answer_.failure == "mac"
    assert answer_.credentials.response == ""
    assert answer_.credentials.auts is None
    assert 'response=""' in answer_.credentials.format()


def test_aka_client_rejects_bad_nonce_and_non_aka() -> None:
    usim = Usim(K, OPC)
    with pytest.raises(DigestError):
        DigestClient("a").authorize_aka(Challenge.digest("r", "%%", algorithm="AKAv1-MD5"), "R", "u", usim)
    with pytest.raises(DigestError):
        DigestClient("a").authorize_aka(Challenge.digest("r", "n"), "R", "u", usim)


def test_ims_initial_register_and_integrity_protected() -> None:
    # TS 24.229 §5.1.1.2: the first REGISTER carries empty nonce and response;
    # TS 24.229 §7.2A.2: the P-CSCF adds integrity-protected.
    creds = Credentials.digest(
        "alice@ims.test", "ims.test", "", "sip:ims.test", "", integrity_protected="auth-done"
    )
    value = creds.format()
    assert value == (
        'Digest username="alice@ims.test", realm="ims.test", nonce="", uri="sip:ims.test", '
        'response="", integrity-protected="auth-done"'
    )
    assert parse_credentials(value).integrity_protected == "auth-done"


# --- Bearer (RFC 6750, RFC 8898) ----------------------------------------------------------------


def test_bearer_credentials() -> None:
    c = parse_credentials("Bearer mF_9.B5f-4.1JqM")  # RFC 6750 §2.1
    assert c.is_bearer and c.token == "mF_9.B5f-4.1JqM"
    assert c.format() == "Bearer mF_9.B5f-4.1JqM"
    assert Credentials.bearer("abc.def-_~+/==").format() == "Bearer abc.def-_~+/=="
    assert parse_credentials('Digest username="a"').token is None
    with pytest.raises(DigestError):
        Credentials.bearer("not a token")


def test_bearer_challenges() -> None:
    value = 'Bearer realm="example", error="invalid_token", error_description="The access token expired"'
    c = parse_challenge(value)  # RFC 6750 §3
    assert (c.realm, c.param("error")) == ("example", "invalid_token")
    assert c.format() == value
    built = Challenge.bearer("ims.test", scope="openid ims", error="invalid_token")
    assert built.format() == 'Bearer realm="ims.test", scope="openid ims", error="invalid_token"'
    assert parse_challenge(built.format()) == built
    assert built.scope == "openid ims"


# --- malformed values ---------------------------------------------------------------------------

MALFORMED = [
    ("", "empty"),
    ("   ", "blank"),
    ('Digest realm="abc', "unterminated quoted-string"),
    ('Digest realm="a\\', "backslash at the end"),
    ('Digest realm="a\x01b"', "control character in quotes"),
    ('Digest realm="a\r\nb"', "CRLF in quotes"),
    ("Digest realm", "missing '='"),
    ("Digest realm=", "missing value"),
    ('Digest realm="a" nonce="b"', "missing comma"),
    ('Digest realm="a",, nonce', "missing '=' after comma"),
    ("Digest =abc", "missing name"),
    ('"Digest" realm="a"', "quoted scheme"),
    ('Digest realm="a", realm="b"', "duplicate parameter"),
    ("Digest realm=a b", "token with a space"),
    ('Digest realm="x"\r\n', "CRLF without continuation"),
    ('Digest, realm="x"', "no space after the scheme"),
    ('Digest realm="x"; nonce="y"', "semicolon"),
    ("Digest realm=@", "bad value character"),
    ("Bearer abc def", "two tokens"),
    ("Bearer abc, def", "two token68 values"),
]


@pytest.mark.parametrize(("value", "why"), MALFORMED, ids=[w for _, w in MALFORMED])
def test_malformed_values(value: str, why: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        with pytest.raises(DigestError) as info:
            parse(value)
        assert isinstance(info.value, ParseError)
        assert info.value.status == 400


@pytest.mark.parametrize(
    "value",
    ['Digest username="a", nc=1', "Digest username=a, nc=0000000g", 'Digest nc="123456789"'],
)
def test_bad_nonce_count_in_credentials(value: str) -> None:
    with pytest.raises(DigestError):
        parse_credentials(value)
    parse_challenge(value)  # nc means nothing in a challenge


def test_lenient_but_valid_forms() -> None:
    c = parse_credentials('digest  USERNAME = "a" ,\tnc=0000000A ,, qop="auth", x=y,')
    assert (c.username, c.nc, c.qop, c.param("x")) == ("a", 10, "auth", "y")
    q = parse_challenge(r'Digest realm="a \"b\" \\ c", nonce="é"')
    assert q.realm == 'a "b" \\ c' and q.nonce == "é"
    assert parse_challenge(q.format()) == q
    assert parse_challenge("Digest").params == ()
    # UAs that write no space after the commas (e.g. SIP stacks on phones)
    packed = parse_credentials(
        'Digest username="a@ims.test",realm="ims.test",nonce="bm9uY2U=",uri="sip:ims.test",'
        'response="00",algorithm=AKAv1-MD5,cnonce="c",qop=auth,nc=00000002,auts="TyA5OS3dS7QxbtShRog="'
    )
    assert (packed.algorithm, packed.nc, packed.auts) == ("AKAv1-MD5", 2, "TyA5OS3dS7QxbtShRog=")


# --- properties -----------------------------------------------------------------------------------

_TOKENS = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)
_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from('\t\\"'), max_size=20)
_FRAGMENTS = st.sampled_from(
    ["Digest", "Bearer", " ", "\t", "\r\n ", "\r\n", "realm", "nonce", "nc", "=", '"', "\\", ",",
     "abc", "00000001", "0000000g", "é", "\x00", "==", "/", "qop", "auth", ";"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80) | st.lists(_FRAGMENTS, max_size=25).map("".join))
def test_parsers_raise_only_digest_error(value: str) -> None:
    for parse in (parse_challenge, parse_credentials, parse_challenges):
        with contextlib.suppress(DigestError):
            parse(value)


@settings(max_examples=200, deadline=None)
@given(
    _TOKENS,
    st.lists(
        st.tuples(_TOKENS, _TEXT | _TOKENS, st.booleans()), max_size=6, unique_by=lambda t: t[0].lower()
    ),
)
def test_format_parse_round_trip(scheme: str, items: list[tuple[str, str, bool]]) -> None:
    params = tuple(AuthParam(n, v, q) for n, v, q in items)
    value = Challenge(scheme, params).format()
    again = parse_challenge(value)
    assert again.format() == value
    assert [(p.name, p.value) for p in again.params] == [(n, v) for n, v, _ in items]


_LWS_SAMPLES = st.sampled_from(["", " ", "\t", "\r\n ", "  "])


def _param_text(name: str, ws: tuple[str, str, str], text: str, token: str, quoted: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f"{name}{ws[0]}={ws[1]}" + (f'"{escaped}"' if quoted else token) + ws[2]


_PARAM_TEXT = st.builds(
    _param_text, _TOKENS, st.tuples(_LWS_SAMPLES, _LWS_SAMPLES, _LWS_SAMPLES), _TEXT, _TOKENS, st.booleans()
)
_PARAM_LISTS = st.tuples(
    st.lists(_PARAM_TEXT, max_size=6), st.sampled_from([",", ", ", " , ", ",\r\n\t", ",,"])
).map(lambda t: t[1].join(t[0]))


@settings(max_examples=600, deadline=None)
@given(_PARAM_LISTS | st.lists(_FRAGMENTS, max_size=25).map("".join) | st.text(max_size=60))
def test_fast_param_path_agrees_with_the_general_parser(value: str) -> None:
    """``_parse_params_fast`` (one regex per parameter) either declines or gives exactly what the
    character-level parser gives; where the general parser rejects the text, it declines."""
    try:
        expected: list[AuthParam] | None = auth_header._parse_params(value, 0, False)[0]
    except DigestError:
        expected = None
    fast = auth_header._parse_params_fast(value, 0)
    if fast is not None:
        assert fast == expected


def test_fast_param_path_is_taken_for_a_plain_digest_value() -> None:
    value = 'username="a\\"b", realm="r", nonce="n", uri="sip:x", response="00", nc=00000001'
    fast = auth_header._parse_params_fast(value, 0)
    assert fast is not None and fast == auth_header._parse_params(value, 0, False)[0]
    assert fast[0].value == 'a"b' and fast[-1] == AuthParam("nc", "00000001", False)
    assert auth_header._parse_params_fast('a=b, a="c"', 0) is None  # duplicates: general parser
