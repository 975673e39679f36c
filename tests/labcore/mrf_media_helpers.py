"""Pieces for the end-to-end MRF media tests (test_cscf_mrf_media.py, mrf_media_browser_worker.py).

- :func:`lab_core_with_iwf`: the lab core started the way ``webims serve labcore``
  starts it with ``[labcore] media_interworking = "auto"``: ``start_labcore(config,
  iwf="auto")``, which starts the embedded media IWF itself;
- :func:`register_wic` / :func:`register_plain`: REGISTER through the I-CSCF with
  SIP Digest (the 401 is checked, then answered) as a WIC behind a gateway
  (WebSocket contact, RFC 7118 §5.3, with ``+sip.ice``, RFC 5768 §4.2, reached
  through the gateway's Path, RFC 3327) or as a plain RTP/AVP phone;
- content checks on received RTP: which tone it carries (Goertzel filter on
  the decoded audio) and, for packets relayed without decoding, whether the
  payloads arrive in the order they were sent.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from labcore_harness import REALM, Ue, core_config, subscriber_specs

from webims.labcore import LabCore, start_labcore
from webims.labcore.hss import SubscriberStore
from webims.media.embedded import EmbeddedMediaIWF
from webims.media.rtp import parse_rtp
from webims.media.transcode import AudioDecoder
from webims.sdp import Codec
from webims.sip.digest import parse_challenge
from webims.store import Store

__all__ = [
    "TONE_IMS",
    "TONE_WEBRTC",
    "decode",
    "lab_core_with_iwf",
    "port_is_free",
    "register_plain",
    "register_wic",
    "relayed_in_order",
    "tone_power",
    "tone_ratio",
]

#: The WebRTC side sends 441 Hz, the plain RTP side 1001 Hz: each receiver must hear
#: the other side's tone (not its own reflected back, not silence).  Neither is a whole
#: number of cycles in 20 ms or 100 ms (8.82 and 20.02 cycles a frame), so the 50 frames
#: of a one-second tone are all different and give each packet's place in the sequence.
TONE_WEBRTC = 441.0
TONE_IMS = 1001.0


@contextlib.asynccontextmanager
async def lab_core_with_iwf(tmp_path: Path | None = None) -> AsyncIterator[tuple[LabCore, EmbeddedMediaIWF]]:
    """The lab core with ``media_interworking = "auto"`` and ``iwf="auto"`` (the embedded IWF)."""
    with contextlib.ExitStack() as files:
        if tmp_path is None:
            tmp_path = Path(files.enter_context(tempfile.TemporaryDirectory(prefix="webims-mrf-")))
        store = Store(tmp_path / "hss.sqlite3")
        files.callback(store.close)
        subs = SubscriberStore(store, default_realm=REALM)
        for spec in subscriber_specs():
            subs.add(spec)
        core = await start_labcore(
            core_config(tmp_path, media_interworking="auto"), subscribers=subs, iwf="auto"
        )
        try:
            assert core.icscf_cx.is_open and core.scscf_cx.is_open, "Cx to the HSS did not open"
            iwf = core.iwf
            assert isinstance(iwf, EmbeddedMediaIWF), f"iwf='auto' started no embedded IWF: {iwf!r}"
            assert core.scscf.mrf.enabled
            yield core, iwf
        finally:
            await core.stop()


async def _register_with_digest(ue: Ue, contact: str) -> None:
    """The first REGISTER is challenged with MD5 Digest (TS 24.229 §5.4.1.2), the second accepted."""
    challenged = await ue.register(contact=contact, authenticate=False)
    assert challenged.status == 401, challenged
    challenge = parse_challenge(challenged.headers.get("www-authenticate") or "")
    assert challenge.scheme.lower() == "digest" and (challenge.algorithm or "MD5").upper() == "MD5", challenge
    ok = await ue.register(contact=contact)
    assert ok.status == 200, ok
    reg = ue.core.scscf.registrar.lookup(ue.impu)
    assert reg is not None and reg.active and reg.bindings, f"{ue.impu} not registered at the S-CSCF"


async def register_wic(ue: Ue) -> str:
    """Register ``ue`` as a WIC behind a gateway: WebSocket contact with ``+sip.ice``, Path to ``ue``.

    Returns the registered contact.  Requests to the WIC reach ``ue`` through the Path
    (as they would reach the gateway), with the WebSocket contact as Request-URI.
    """
    ue.path = f"sip:gw@{ue.host}:{ue.port};lr"
    contact = f"<sip:{ue.user}@df7jal23ls0d.invalid;transport=ws>;+sip.ice"
    await _register_with_digest(ue, contact)
    return contact


async def register_plain(ue: Ue) -> str:
    """Register ``ue`` as a plain RTP/AVP phone (UDP contact, no ICE feature tag)."""
    await _register_with_digest(ue, ue.contact)
    return ue.contact


# -- content checks ------------------------------------------------------------------------------


def decode(codec: Codec, packets: Sequence[bytes], rate: int, skip: int = 5) -> bytes:
    """The audio of the packets of ``codec`` (its payload type), first ``skip`` left out (codec start-up)."""
    decoder = AudioDecoder(codec, rate)
    media = [p for p in packets if p[1] & 0x7F == codec.payload_type][skip:]
    return b"".join(decoder.decode(parse_rtp(p).payload) for p in media)


def tone_power(pcm: bytes, rate: int, freq: float) -> float:
    """Power of ``freq`` in 16-bit mono PCM (Goertzel filter), normalised by the length."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    if not samples:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / len(samples) ** 2


def tone_ratio(pcm: bytes, rate: int, want: float, other: float) -> float:
    """How much stronger ``want`` is than ``other`` in ``pcm``; 0 when ``want`` is not there
    at all (a sine of amplitude A measures A²/4: the test tones, A = 8000, about 1.6e7)."""
    a, b = tone_power(pcm, rate, want), tone_power(pcm, rate, other)
    if a < 1e6:  # amplitude under ~2000 (of 8000 sent): silence or noise, not the tone
        return 0.0
    return a / b if b > 0 else math.inf


def relayed_in_order(received: Sequence[bytes], frames: Sequence[bytes]) -> int:
    """For packets relayed without decoding: every payload must be one of the ``frames`` sent
    (cycled in order, one per sequence number) and sit at the same offset from its RTP
    sequence number as every other.  Returns the number of packets checked."""
    index = {f: i for i, f in enumerate(frames)}
    assert len(index) == len(frames), "tone frames not distinct: cannot check the order"
    offsets = set()
    for packet in received:
        rtp = parse_rtp(packet)
        position = index.get(rtp.payload)
        assert position is not None, f"payload of packet {rtp.sequence_number} was never sent"
        offsets.add((rtp.sequence_number - position) % len(frames))
    assert len(offsets) == 1, f"payloads out of sequence (offsets {sorted(offsets)})"
    return len(received)


def port_is_free(address: str, port: int) -> bool:
    """Whether a UDP port can be bound again (the IWF closed its socket)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True
