"""Property tests: decoding hostile bytes raises DiameterError and nothing else (DESIGN.md §6.4)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from diameter_fixtures import KAMAILIO_MAR, REAL_CERS, SIP_AUTH_DATA_ITEM_AKA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webims.diameter import (
    Avp,
    DiameterError,
    LocationInfoRequest,
    Message,
    MultimediaAuthAnswer,
    MultimediaAuthRequest,
    PushProfileRequest,
    RegistrationTerminationRequest,
    ServerAssignmentRequest,
    StreamDecoder,
    UserAuthorizationAnswer,
    UserAuthorizationRequest,
    check_message,
    decode_avps,
    error_answer,
)

SEEDS = [KAMAILIO_MAR, *REAL_CERS.values()]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VIEWS: list[Callable[[Message], object]] = [
    UserAuthorizationRequest.from_message,
    ServerAssignmentRequest.from_message,
    LocationInfoRequest.from_message,
    MultimediaAuthRequest.from_message,
    RegistrationTerminationRequest.from_message,
    PushProfileRequest.from_message,
    UserAuthorizationAnswer.from_message,
    MultimediaAuthAnswer.from_message,
]


def exercise(data: bytes) -> None:
    """Everything a server does with received bytes; only DiameterError may escape each step."""
    try:
        m = Message.decode(data)
    except DiameterError as exc:
        error_answer(exc, origin_host="h", origin_realm="r")
        return
    canonical = m.encode()
    # Byte-exact except where the input had non-zero padding, which is written back as
    # zeros (RFC 6733 §4.1: padding "MUST" be zero).
    assert len(canonical) == len(data)
    assert all(c == 0 for c, d in zip(canonical, data, strict=True) if c != d)
    assert Message.decode(canonical) == m
    try:
        check_message(m)
    except DiameterError as exc:
        ans = error_answer(exc, origin_host="h", origin_realm="r")
        if ans is not None:
            Message.decode(ans.encode())
    for view in VIEWS:
        with contextlib.suppress(DiameterError):
            view(m)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_diameter_error(data: bytes) -> None:
    exercise(data)
    with contextlib.suppress(DiameterError):
        decode_avps(data)


@FUZZ
@given(mutated())
def test_mutated_real_messages_raise_only_diameter_error(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(mutated(), st.lists(st.integers(1, 64), min_size=1, max_size=10))
def test_stream_decoder_never_raises(data: bytes, cuts: list[int]) -> None:
    dec = StreamDecoder(max_message_size=4096)
    pos = 0
    out: list[object] = []
    for n in cuts:
        out += dec.feed(data[pos : pos + n])
        pos += n
    out += dec.feed(data[pos:])
    assert all(isinstance(i, Message | DiameterError) for i in out)


avps = st.recursive(
    st.builds(
        lambda code, m, vendor, payload: Avp(
            code, (0x80 if vendor else 0) | (0x40 if m else 0), vendor, payload
        ),
        st.integers(0, 2**32 - 1),
        st.booleans(),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=20),
    ),
    lambda children: st.builds(
        lambda code, vendor, kids: Avp(
            code, 0x80 if vendor else 0, vendor, b"".join(k.encode() for k in kids)
        ),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.lists(children, max_size=4),
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.integers(0, 2**24 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.lists(avps, max_size=8),
)
def test_any_message_round_trips_byte_exact(
    code: int, app: int, flags: int, hbh: int, e2e: int, items: list[Avp]
) -> None:
    m = Message(code, app, flags, hbh, e2e, tuple(items))
    wire = m.encode()
    back = Message.decode(wire)
    assert back == m and back.encode() == wire
    for a in back.avps:
        (same,) = decode_avps(a.encode())
        assert same == a


def test_seed_grouped_avp_is_stable() -> None:
    (a,) = decode_avps(SIP_AUTH_DATA_ITEM_AKA)
    assert decode_avps(a.data) == a.as_group().avps
