"""Malformed and unsupported Diameter input sent to a running HSS over TCP (RFC 6733 §7).

Every case checks the Result-Code, the 'E' bit for protocol errors (§7.2), the
Failed-AVP (§7.5), and then that the same connection still answers a good request:
only a stream that can no longer be framed (§3: bad version, impossible length) is
closed after the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hss_harness import BOB, ICSCF_CAPS, REALM, read_raw, running, subscriber_store

from webims.diameter import (
    Avp,
    CommandCode,
    DeregistrationReason,
    ExperimentalResultCode,
    Message,
    ResultCode,
    build_cer,
    build_rtr,
    build_uar,
    make_avp,
)
from webims.diameter.constants import AVP_FLAG_MANDATORY, AVP_FLAG_VENDOR, FLAG_ERROR
from webims.labcore.hss import HssServer

Mutation = Callable[[Message], bytes]


def good_uar(hbh: int) -> Message:
    m = build_uar(
        session_id=f"icscf.ims.test;1;{hbh}",
        origin_host="icscf.ims.test",
        origin_realm=REALM,
        destination_realm=REALM,
        user_name="bob@ims.test",
        public_identity="sip:bob@ims.test",
        visited_network_identifier=REALM,
        user_authorization_type=0,
    )
    return m.with_ids(hbh, hbh)


def with_avps(m: Message, avps: list[Avp]) -> bytes:
    return replace(m, avps=tuple(avps)).encode()


def drop(name: str) -> Mutation:
    return lambda m: with_avps(m, [a for a in m.avps if a.name != name])


def add(avp: Avp) -> Mutation:
    return lambda m: with_avps(m, [*m.avps, avp])


def swap(name: str, avp: Avp) -> Mutation:
    return lambda m: with_avps(m, [avp if a.name == name else a for a in m.avps])


def header(**changes: int) -> Mutation:
    return lambda m: replace(m, **changes).encode()  # type: ignore[arg-type]


def bad_avp_length(m: Message) -> bytes:
    data = bytearray(m.encode())
    # The User-Name AVP header: code 1, flags 0x40; make its length run past the message.
    pos = data.find(bytes.fromhex("0000000140"))
    data[pos + 5 : pos + 8] = (0xFFFF).to_bytes(3, "big")
    return bytes(data)


def odd_length(m: Message) -> bytes:
    """A last AVP left unpadded: the message length is not a multiple of 4 (RFC 6733 §3)."""
    data = with_avps(m, [*m.avps, Avp(99998, 0, 0, b"abc")])[:-1]  # drop the one padding byte
    return data[:1] + len(data).to_bytes(3, "big") + data[4:]


def rtr(m: Message) -> bytes:
    request = build_rtr(
        session_id=m.session_id or "",
        origin_host="icscf.ims.test",
        origin_realm=REALM,
        destination_host="hss.ims.test",
        destination_realm=REALM,
        user_name="bob@ims.test",
        deregistration_reason=DeregistrationReason(0),
    )
    return request.with_ids(m.hop_by_hop, m.end_to_end).encode()


UNKNOWN_M = Avp(99999, AVP_FLAG_MANDATORY, 0, b"\0\0\0\1")
RESERVED_BITS = Avp(1, AVP_FLAG_MANDATORY | 0x01, 0, b"bob@ims.test")
SHORT_UAT = Avp(623, AVP_FLAG_MANDATORY | AVP_FLAG_VENDOR, 10415, b"\0\0\0")
BAD_UTF8 = Avp(1, AVP_FLAG_MANDATORY, 0, b"bob\xff@ims.test")
# name: (mutation, Result-Code, protocol error ('E' bit), AVP expected inside Failed-AVP or None)
CASES: dict[str, tuple[Mutation, int, bool, str | None]] = {
    "unknown AVP with M bit": (add(UNKNOWN_M), ResultCode.DIAMETER_AVP_UNSUPPORTED, False, "raw:99999"),
    "missing Public-Identity": (
        drop("Public-Identity"),
        ResultCode.DIAMETER_MISSING_AVP,
        False,
        "Public-Identity",
    ),
    "User-Name twice": (
        add(make_avp("User-Name", "x@ims.test")),
        ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
        False,
        "User-Name",
    ),
    "Result-Code in a request": (
        add(make_avp("Result-Code", 2001)),
        ResultCode.DIAMETER_AVP_NOT_ALLOWED,
        False,
        "Result-Code",
    ),
    "unknown User-Authorization-Type": (
        swap("User-Authorization-Type", make_avp("User-Authorization-Type", 7)),
        ResultCode.DIAMETER_INVALID_AVP_VALUE,
        False,
        "User-Authorization-Type",
    ),
    "Unsigned32 of 3 bytes": (
        swap("User-Authorization-Type", SHORT_UAT),
        ResultCode.DIAMETER_INVALID_AVP_LENGTH,
        False,
        "User-Authorization-Type",
    ),
    "User-Name not UTF-8": (
        swap("User-Name", BAD_UTF8),
        ResultCode.DIAMETER_INVALID_AVP_VALUE,
        False,
        "User-Name",
    ),
    "AVP length beyond the message": (
        bad_avp_length,
        ResultCode.DIAMETER_INVALID_AVP_LENGTH,
        False,
        "User-Name",
    ),
    "message length not a multiple of 4": (
        odd_length,
        ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
        False,
        None,
    ),
    "reserved AVP flag bit": (
        swap("User-Name", RESERVED_BITS),
        ResultCode.DIAMETER_INVALID_AVP_BITS,
        True,
        "User-Name",
    ),
    "unknown command": (header(command_code=999), ResultCode.DIAMETER_COMMAND_UNSUPPORTED, True, None),
    "application not advertised": (
        header(application_id=4),
        ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
        True,
        None,
    ),
    "E bit in a request": (header(flags=0xE0), ResultCode.DIAMETER_INVALID_HDR_BITS, True, None),
    "RTR sent to the HSS": (
        rtr,
        ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
        True,
        None,
    ),
    "another realm": (
        swap("Destination-Realm", make_avp("Destination-Realm", "other.test")),
        ResultCode.DIAMETER_REALM_NOT_SERVED,
        True,
        None,
    ),
    "another host": (
        add(make_avp("Destination-Host", "hss2.ims.test")),
        ResultCode.DIAMETER_UNABLE_TO_DELIVER,
        True,
        None,
    ),
}


@pytest.fixture
async def hss(tmp_path: Path) -> AsyncIterator[HssServer]:
    with subscriber_store(tmp_path / "db", BOB) as subs:
        async with running(subs) as server:
            yield server


async def open_peer(hss: HssServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", hss.port)
    writer.write(build_cer(ICSCF_CAPS).with_ids(1, 1).encode())
    cea = await read_raw(reader)
    assert cea.command_code == CommandCode.CAPABILITIES_EXCHANGE and cea.result_code == 2001
    return reader, writer


def failed_names(answer: Message) -> list[str]:
    group = answer.get_group("Failed-AVP")
    if group is None:
        return []
    return [a.name if a.definition is not None else f"raw:{a.code}" for a in group.avps]


@pytest.mark.parametrize("case", list(CASES))
async def test_error_answer_and_connection_stays_up(hss: HssServer, case: str) -> None:
    mutation, code, protocol_error, failed = CASES[case]
    reader, writer = await open_peer(hss)
    request = good_uar(100)
    writer.write(mutation(request))
    answer = await read_raw(reader)
    assert not answer.is_request
    assert answer.hop_by_hop == 100 and answer.end_to_end == 100
    assert answer.result_code == code
    assert bool(answer.flags & FLAG_ERROR) is protocol_error
    assert answer.origin_host == "hss.ims.test"
    assert answer.get_str("Session-Id") == request.session_id
    if failed is None:
        assert answer.find("Failed-AVP") is None or code == ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH
    else:
        assert failed in failed_names(answer)
    # The same connection answers the next request (RFC 6733 §7: only framing errors close it).
    writer.write(good_uar(101).encode())
    ok = await read_raw(reader)
    assert ok.hop_by_hop == 101
    assert ok.experimental_result == (10415, ExperimentalResultCode.DIAMETER_FIRST_REGISTRATION)
    writer.close()


@pytest.mark.parametrize(
    ("mutation", "code"),
    [
        (header(version=2), ResultCode.DIAMETER_UNSUPPORTED_VERSION),
        (
            lambda m: m.encode()[:1] + (12).to_bytes(3, "big") + m.encode()[4:20],
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
        ),
    ],
    ids=["version 2", "length below the header"],
)
async def test_unframeable_stream_is_answered_then_closed(
    hss: HssServer, mutation: Mutation, code: int
) -> None:
    reader, writer = await open_peer(hss)
    writer.write(mutation(good_uar(200)))
    answer = await read_raw(reader)
    assert answer.result_code == code and answer.hop_by_hop == 200
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the HSS
    writer.close()


async def test_first_message_not_cer_closes(hss: HssServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hss.port)
    writer.write(good_uar(1).encode())
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_watchdog_and_disconnect(hss: HssServer) -> None:
    from webims.diameter import build_dpr, build_dwr

    reader, writer = await open_peer(hss)
    writer.write(build_dwr("icscf.ims.test", REALM).with_ids(7, 7).encode())
    dwa = await read_raw(reader)
    assert (dwa.command_code, dwa.result_code, dwa.hop_by_hop) == (CommandCode.DEVICE_WATCHDOG, 2001, 7)
    writer.write(build_dpr("icscf.ims.test", REALM).with_ids(8, 8).encode())
    dpa = await read_raw(reader)
    assert (dpa.command_code, dpa.result_code, dpa.hop_by_hop) == (CommandCode.DISCONNECT_PEER, 2001, 8)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_corrupted_requests_never_cause_an_internal_error(hss: HssServer) -> None:
    """Byte flips after the header: each request gets a definite answer, never 5012 (our own failure)."""
    import random

    rng = random.Random(20240607)
    reader, writer = await open_peer(hss)
    good = good_uar(1).encode()
    codes: set[int] = set()
    for n in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(20, len(data))] = rng.randrange(256)
        data[12:20] = (1000 + n).to_bytes(4, "big") * 2  # Hop-by-Hop and End-to-End
        writer.write(bytes(data))
        answer = await read_raw(reader)
        assert answer.hop_by_hop == 1000 + n
        code = answer.result_code or (answer.experimental_result or (0, 0))[1]
        assert code != ResultCode.DIAMETER_UNABLE_TO_COMPLY, answer
        codes.add(code)
    assert len(codes) > 3  # the flips did reach different checks
    writer.write(good_uar(2).encode())
    assert (await read_raw(reader)).hop_by_hop == 2
    writer.close()
