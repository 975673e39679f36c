"""Audio transcoding with PyAV: Opus (RFC 7587) <-> G.711 PCMU/PCMA, G.722, AMR-NB (RFC 4867).

A :class:`Transcoder` turns the RTP payloads of one codec into those of
another through 16-bit mono PCM at a *bridge rate*: the sample rate of the
non-Opus side (8 kHz for G.711 and AMR, 16 kHz for G.722), so the Opus encoder
takes that rate directly and only Opus' 48 kHz output is resampled.  Frames are
re-cut to the output packet time.  No AMR-WB encoder exists in PyAV's wheels
(DESIGN.md §5): AMR-WB is decode-only, so it is not offered for transcoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from ..sdp import Codec
from . import amr
from .rtp import RtpError

__all__ = [
    "TRANSCODABLE",
    "AudioDecoder",
    "AudioEncoder",
    "Transcoder",
    "audio_rate",
    "can_transcode",
    "pick_codec",
]

#: Encoding name (lower case) -> (FFmpeg decoder, FFmpeg encoder, audio sample rate).
_CODECS: dict[str, tuple[str, str | None, int]] = {
    "pcmu": ("pcm_mulaw", "pcm_mulaw", 8000),
    "pcma": ("pcm_alaw", "pcm_alaw", 8000),
    "g722": ("g722", "g722", 16000),
    "opus": ("libopus", "libopus", 48000),
    "amr": ("libopencore_amrnb", "libopencore_amrnb", 8000),
    "amr-wb": ("libopencore_amrwb", None, 16000),
}
#: Encodings the embedded IWF can produce (and so offer when it must transcode).
TRANSCODABLE: frozenset[str] = frozenset(k for k, v in _CODECS.items() if v[1] is not None)
_OPUS_BITRATE = 32000


def audio_rate(codec: Codec) -> int:
    """The audio sample rate of a codec (G.722's RTP clock says 8000 but it samples at 16 kHz)."""
    entry = _CODECS.get(codec.name.lower())
    return entry[2] if entry is not None else codec.clock_rate


def can_transcode(src: Codec, dst: Codec) -> bool:
    """True when ``src`` can be decoded and ``dst`` encoded here."""
    s, d = src.name.lower(), dst.name.lower()
    if s not in _CODECS or d not in TRANSCODABLE:
        return False
    if s in ("amr", "amr-wb") and src.parameters.get("interleaving"):
        return False
    return not (d == "amr" and (dst.parameters.get("interleaving") or dst.parameters.get("crc") == "1"))


def _octet_aligned(codec: Codec) -> bool:
    return (codec.parameters.get("octet-align") or "0").strip() == "1"


class AudioDecoder:
    """RTP payloads of ``codec`` -> 16-bit mono PCM at ``rate`` (resampled when needed)."""

    def __init__(self, codec: Codec, rate: int) -> None:
        name, _, native = _CODECS[codec.name.lower()]
        self.kind = codec.name.lower()
        self.octet_aligned = _octet_aligned(codec)
        self.ctx: AudioCodecContext = av.CodecContext.create(name, "r")  # type: ignore[assignment]
        self.ctx.sample_rate = native
        self.ctx.layout = "mono"
        self.ctx.format = "s16"
        self.resampler: AudioResampler | None = None
        self.rate = rate
        self._resample_always = native != rate or self.kind == "opus"

    def decode(self, payload: bytes) -> bytes:
        if self.kind in ("amr", "amr-wb"):
            chunks = amr.from_rtp_payload(payload, self.octet_aligned)
        else:
            chunks = [payload]
        out = bytearray()
        for chunk in chunks:
            try:
                frames = self.ctx.decode(av.Packet(chunk))
            except av.error.FFmpegError as exc:
                raise RtpError(f"cannot decode {self.kind}: {exc}") from exc
            for frame in frames:
                out += self._pcm(frame)
        return bytes(out)

    def _pcm(self, frame: AudioFrame) -> bytes:
        if self._resample_always or frame.format.name != "s16" or frame.layout.nb_channels != 1:
            if self.resampler is None:
                self.resampler = AudioResampler(format="s16", layout="mono", rate=self.rate)
            pcm = bytearray()
            for f in self.resampler.resample(frame):
                pcm += bytes(f.planes[0])[: f.samples * 2]
            return bytes(pcm)
        return bytes(frame.planes[0])[: frame.samples * 2]


class AudioEncoder:
    """16-bit mono PCM at ``rate`` -> RTP payloads of ``codec``, one per ``ptime_ms``."""

    def __init__(self, codec: Codec, rate: int, ptime_ms: int) -> None:
        name = _CODECS[codec.name.lower()][1]
        if name is None:
            raise ValueError(f"no encoder for {codec.name}")
        self.kind = codec.name.lower()
        self.octet_aligned = _octet_aligned(codec)
        ctx: AudioCodecContext = av.CodecContext.create(name, "w")  # type: ignore[assignment]
        ctx.sample_rate = rate
        ctx.format = "s16"
        ctx.layout = "mono"
        ctx.time_base = Fraction(1, rate)
        if self.kind == "opus":
            ctx.bit_rate = _OPUS_BITRATE
            # Complexity 1 halves the CPU per frame against 3+ (measured: ~40 against ~75 us per
            # 20 ms frame); the input is narrowband G.711/AMR anyway.
            ctx.options = {"application": "voip", "compression_level": "1", "frame_duration": str(ptime_ms)}
        elif self.kind == "amr":
            ctx.bit_rate = 12200
        ctx.open()
        self.ctx = ctx
        self.rate = rate
        self.frame_samples = rate * ptime_ms // 1000
        # The RTP timestamp advances at the RTP clock rate (G.722: 8000 for 16 kHz audio).
        self.rtp_step = self.frame_samples * codec.clock_rate // rate
        self._buffer = bytearray()
        self._pts = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        self._buffer += pcm
        size = self.frame_samples * 2
        out: list[bytes] = []
        while len(self._buffer) >= size:
            chunk = bytes(self._buffer[:size])
            del self._buffer[:size]
            frame = AudioFrame(format="s16", layout="mono", samples=self.frame_samples)
            frame.planes[0].update(chunk)
            frame.sample_rate = self.rate
            frame.pts = self._pts
            frame.time_base = Fraction(1, self.rate)
            self._pts += self.frame_samples
            payloads = [bytes(p) for p in self.ctx.encode(frame)]
            if self.kind == "amr" and payloads:
                payloads = [amr.to_rtp_payload(payloads, self.octet_aligned)]
            out += payloads
        return out


class Transcoder:
    """RTP payloads of ``src`` in, RTP payloads of ``dst`` out (each ``rtp_step`` ticks of dst's clock).

    ``ptime_ms`` is the output packet time (20 ms: TS 26.114 §7.4.2, browsers' default).
    """

    def __init__(self, src: Codec, dst: Codec, ptime_ms: int = 20) -> None:
        if not can_transcode(src, dst):
            raise ValueError(f"cannot transcode {src.name} to {dst.name}")
        # The bridge rate is what the encoder takes natively; Opus takes any of 8/16/48 kHz,
        # so an Opus encoder gets the source's rate and only the decoder side resamples.
        rate = audio_rate(dst) if dst.name.lower() != "opus" else audio_rate(src)
        if rate not in (8000, 12000, 16000, 24000, 48000):
            rate = 16000
        self.src = src
        self.dst = dst
        self.rate = rate
        self._decoder = AudioDecoder(src, rate)
        self._encoder = AudioEncoder(dst, rate, ptime_ms)
        self.rtp_step = self._encoder.rtp_step

    def transcode(self, payload: bytes) -> list[bytes]:
        """Decode one payload and encode what that completes; :class:`RtpError` on a bad payload."""
        return self._encoder.encode(self._decoder.decode(payload))

    @property
    def buffered_samples(self) -> int:
        return len(self._encoder._buffer) // 2


def pick_codec(candidates: Sequence[Codec], names: Sequence[str]) -> Codec | None:
    """The first of ``candidates`` whose encoding is in ``names`` (in ``names`` order)."""
    for name in names:
        for c in candidates:
            if c.name.lower() == name:
                return c
    return None
