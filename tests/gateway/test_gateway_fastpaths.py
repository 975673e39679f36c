"""Shortcuts on the registration path give what the general code gives.

- :func:`impu_key` / :func:`associated_uris`: a plain ``sip:user@host`` is read without
  parsing it; every other spelling is parsed (RFC 3261 §10.3 step 5, RFC 7315 §4.1);
- :class:`RegisterBuilder` copies the WIC's list header fields (RFC 3261 §7.3.1: one line
  per value, as ``get_all`` gives them) from shared, cached lines;
- :class:`BindingLock`: one task at a time, in arrival order, without a future when free.
"""

from __future__ import annotations

import asyncio

import pytest

from webims.gateway.identity import aor_of, associated_uris, impu_key
from webims.gateway.regmsg import RegisterBuilder
from webims.gateway.state import Binding
from webims.sip import ParseError, Request, Response, parse, parse_name_addr, parse_uri

SPELLINGS = [
    "sip:alice@ims.test",
    "sips:a.b-c_d!~*'()&=+$,x@h-1.example.com.",
    "sip:Alice@IMS.test",  # host in upper case: parsed
    "sip:alice@ims.test:5060",  # port: parsed
    "sip:alice@ims.test;user=phone",
    "sip:al%69ce@ims.test",  # escaped: parsed, unescaped
    "sip:alice@192.0.2.1",
    "sip:alice@[2001:db8::1]",
    "<sip:alice@ims.test>",
    "tel:+12125551234",
    "sip:alice@ims..test",  # not a host name: no key but itself
    "sip:alice@-ims.test",
]


def _parsed_key(value: str) -> str:
    text = value[1:-1] if value.startswith("<") else value
    try:
        return aor_of(parse_uri(text))
    except ParseError:
        return value


@pytest.mark.parametrize("value", SPELLINGS)
def test_impu_key_is_the_parsed_aor(value: str) -> None:
    assert impu_key(value) == _parsed_key(value)


def test_impu_keys_of_one_identity_agree() -> None:
    assert impu_key("sip:alice@ims.test") == impu_key("sip:alice@IMS.TEST:5060;transport=tcp")
    assert impu_key("sip:alice@ims.test") != impu_key("sip:Alice@ims.test")  # the user part is case-sensitive


def test_associated_uris_read_plain_entries_and_parse_the_rest() -> None:
    values = [f"<{v}>" for v in SPELLINGS if not v.startswith("<")] + ['"Alice" <sip:alice@ims.test>']
    head = "".join(f"P-Associated-URI: {v}\r\n" for v in values)
    response = parse(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\n"
        b"From: <sip:alice@ims.test>;tag=a\r\nTo: <sip:alice@ims.test>;tag=b\r\n"
        b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\n" + head.encode() + b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(response, Response)
    expected = []
    for value in values:
        try:
            expected.append(parse_name_addr(value).uri_text)
        except ParseError:
            continue  # unusable entries are skipped
    assert associated_uris(response) == expected
    assert "sip:alice@ims..test" not in expected and len(expected) == len(values) - 2


WIC_REGISTER = (
    b"REGISTER sip:ims.test SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
    b"Max-Forwards: 69\r\nTo: <sip:alice@ims.test>\r\nFrom: <sip:alice@ims.test>;tag=5sq1ogu0kj\r\n"
    b"Call-ID: 6ccm5nlpc5m8ug4ngejfbv\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:abc123@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
    b"Allow: INVITE,ACK,CANCEL, BYE\r\nSupported: path,gruu,outbound, sec-agree\r\n"
    b"User-Agent: JsSIP 3.10.0\r\n"
    b"Allow-Events: reg\r\nAllow: MESSAGE\r\nContent-Length: 0\r\n\r\n"
)


def test_register_copies_the_wic_header_lines_one_per_value() -> None:
    builder = RegisterBuilder(
        as_pcscf=True, pvni="ims.test", generated_at="gw.ims.test", access_network_info=""
    )
    requests = []
    for _ in range(2):  # the second REGISTER takes the cached lines
        wic = parse(WIC_REGISTER)
        assert isinstance(wic, Request)
        requests.append(
            builder.build(
                request_uri="sip:ims.test",
                aor="sip:alice@ims.test",
                call_id="c@webims",
                from_tag="t",
                cseq=1,
                contact="<sip:abc123@df7jal23ls0d.invalid;transport=ws>",
                expires=600000,
                path="<sip:tok@192.0.2.1:5070;lr>",
                authorization=None,
                wic_request=wic,
                wic_ip="192.0.2.2",
            )
        )
    for request in requests:
        names = [name for name, _ in request.headers]
        assert request.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE", "MESSAGE"]
        assert names.count("Allow") == 5
        assert request.headers.get_all("User-Agent") == ["JsSIP 3.10.0"]
        assert request.headers.get_all("Allow-Events") == ["reg"]
        assert request.headers.get("Supported") == "gruu, outbound, path"  # no sec-agree over WSS
        assert request.headers.get("Path") == "<sip:tok@192.0.2.1:5070;lr>"
        # the order of COPIED_REQUEST_HEADERS, then our own fields
        assert names.index("User-Agent") < names.index("Allow") < names.index("Allow-Events")
    first, second = (r.serialize() for r in requests)
    assert _without_icid(first) == _without_icid(second)
    # the CSeq view the builder records is what parsing its line gives
    reparsed = parse(bytes(first).replace(b"\r\n", b"\r\nVia: SIP/2.0/UDP gw;branch=z9hG4bK1\r\n", 1))
    assert requests[0].cseq == reparsed.cseq == (1, "REGISTER")
    assert type(requests[0].cseq) is type(reparsed.cseq)


def _without_icid(wire: bytes | bytearray | str) -> str:
    text = wire if isinstance(wire, str) else bytes(wire).decode()
    return "\n".join(line for line in text.split("\r\n") if not line.startswith("P-Charging-Vector"))


def test_register_refuses_a_header_value_with_a_line_break() -> None:
    builder = RegisterBuilder(as_pcscf=True, pvni="ims.test", generated_at="gw", access_network_info="")
    with pytest.raises(ValueError, match="CR or LF"):
        builder.build(
            request_uri="sip:ims.test", aor="sip:alice@ims.test", call_id="c", from_tag="t", cseq=1,
            contact="<sip:a@b>", expires=60, path=None, authorization="Digest x\r\nEvil: 1",
        )  # fmt: skip


async def test_binding_lock_serialises_tasks_in_arrival_order() -> None:
    binding = Binding(
        id="b" * 16, mode="web-token", aor="sip:alice@ims.test", contact="<sip:a@b>", contact_uri="sip:a@b"
    )
    order: list[str] = []

    async def hold(name: str, steps: int) -> None:
        async with binding.lock:
            order.append(f"{name}+")
            for _ in range(steps):
                await asyncio.sleep(0)
            order.append(f"{name}-")

    async with binding.lock:
        assert binding.held and binding.busy is None  # uncontended: no future
    assert not binding.held
    await asyncio.gather(hold("a", 3), hold("b", 1), hold("c", 2))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]
    assert not binding.held and binding.busy is None


async def test_binding_lock_survives_a_cancelled_waiter() -> None:
    binding = Binding(
        id="c" * 16, mode="web-token", aor="sip:alice@ims.test", contact="<sip:a@b>", contact_uri="sip:a@b"
    )
    release = asyncio.Event()

    async def holder() -> None:
        async with binding.lock:
            await release.wait()

    async def waiter() -> None:
        async with binding.lock:
            pass

    first = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    cancelled = asyncio.ensure_future(waiter())
    later = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(first, later), 5)
    assert cancelled.cancelled() and not binding.held
