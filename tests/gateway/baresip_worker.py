"""baresip (Debian's ``baresip-core`` 1.0) registers with the lab IMS core and calls, and is
called by, the WIC web app (JsSIP in headless Chromium) through the gateway, with audio.

Run by tests/gateway/test_baresip.py inside a loopback-only network namespace
(webims.testing.netns), so Chromium's ICE candidates are on 127.0.0.1 only::

    python baresip_worker.py --scenario register|wic-calls|calls-wic|dtmf \
        [--outbound icscf|service-route] [--artifacts DIR]

The system is what ``webims demo`` runs (:func:`webims.demo.running_demo`: the lab IMS
core, the authorization function, the gateway with its session B2BUA and the external
embedded media IWF, the demo users of :func:`webims.demo.provision`). baresip runs
headless with a config directory made here (:class:`Baresip`): no console, no sound
card (``aubridge`` as a player that plays nowhere); ``ausine`` sends a 440 Hz tone,
``sndfile`` records what it sent and what it got as WAV files
(``dump-<time>-enc.wav`` / ``-dec.wav``), ``g711`` is its only codec, and it is driven
through ``ctrl_tcp`` (netstring JSON: the ``menu`` module's commands, UA events back).
Its account is the demo's SIP phone subscription::

    <sip:phone@ims.test>;auth_user=phone@ims.test;auth_pass=phone-secret;
        outbound="sip:127.0.0.1:5070";answermode=auto;audio_codecs=pcmu

(the lab I-CSCF as outbound proxy, as ``webims demo`` tells SIP phones, or with
``--outbound service-route`` the S-CSCF's Service-Route URI ``sip:orig@127.0.0.1:6060``:
baresip 1.0 does not use the Service-Route it registered with, RFC 3608; digest MD5 at
the S-CSCF). It runs with ``-s``
(SIP trace): every message it sent and got is in its log, returned parsed into
messages (:func:`sip_trace`) and copied with the recordings to ``--artifacts``.

Scenarios:

- ``register``: baresip registers; the S-CSCF has its binding; it de-registers on quit;
- ``wic-calls``: alice (web login) calls sip:phone@ims.test in the WIC; baresip
  answers by itself (answermode auto); audio both ways (the WIC's WebRTC statistics,
  baresip's recording); alice hangs up; baresip's call is closed; the gateway holds
  nothing;
- ``calls-wic``: baresip dials sip:alice@ims.test; alice answers in the WIC; audio
  both ways; baresip hangs up; the WIC is back to registered; the gateway holds
  nothing;
- ``dtmf``: alice calls the phone; the WIC sends DTMF by RFC 4733 and by SIP INFO
  (baresip reports the digits), baresip sends RFC 4733 (the gateway's IWF sees them);
  alice hangs up.

Prints one JSON object last; the test asserts.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "web")]

from call_checks import left_in_gateway, until  # noqa: E402
from wictest import (  # type: ignore[import-not-found]  # noqa: E402
    PageWatch,
    chromium,
    print_pages,
    text,
    wait_state,
    wic_audio,
)

from webims.config import load_config  # noqa: E402
from webims.demo import Demo, running_demo  # noqa: E402

BARESIP = "/usr/bin/baresip"
MODULES = Path("/usr/lib/baresip/modules")
PHONE_AOR = "sip:phone@ims.test"
WIC_AOR = "sip:alice@ims.test"
SIP_PORT = 5090  # baresip's SIP (UDP and TCP) on 127.0.0.1: the namespace is ours alone
CTRL_PORT = 4444  # its ctrl_tcp
RTP_PORTS = "20000-20099"  # below the gateway's media ports (40000-) and Linux's ephemeral ones
TONE_HZ = 440  # ausine's tone
#: A 20 ms frame of 8 kHz audio counts as sound above this RMS (16-bit samples; a PCMU
#: silence decodes to 0..8, Chromium's fake microphone beeps far above it).
SOUND_RMS = 300.0


class BaresipError(RuntimeError):
    """baresip did not start, or did not do what it was told in time (with its log tail)."""


class Baresip:
    """One headless baresip process with its own config directory, driven over ctrl_tcp.

    ``ctrl_tcp`` (baresip 1.0 modules/ctrl_tcp) speaks netstrings (``<len>:<json>,``):
    a command ``{"command": "dial", "params": "sip:...", "token": "3"}`` gets
    ``{"response": true, "ok": true, "data": "...", "token": "3"}``; every UA event comes
    as ``{"event": true, "type": "CALL_ESTABLISHED", "class": "call", ...}``."""

    def __init__(self, home: Path, account: str) -> None:
        self.home = home
        self.account = account
        self.dumps = home / "dumps"
        self.log_path = home / "baresip.log"
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self._responses: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._token = 0
        self._arrived = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None

    def config(self) -> str:
        """baresip's ``config``: the modules a headless phone needs, nothing that wants a tty,
        a sound card or the network beyond 127.0.0.1."""
        lines = [
            ("poll_method", "epoll"),
            ("sip_listen", f"127.0.0.1:{SIP_PORT}"),
            ("net_interface", "127.0.0.1"),
            ("call_local_timeout", "120"),
            ("call_max_calls", "4"),
            ("audio_path", "/usr/share/baresip"),
            ("audio_player", "aubridge,nowhere"),  # a player that plays nowhere (no sound card)
            ("audio_source", f"ausine,{TONE_HZ}"),
            ("audio_alert", "aubridge,nowhere"),
            ("audio_level", "no"),
            ("ausrc_srate", "48000"),  # ausine makes 48 kHz stereo only; baresip resamples
            ("ausrc_channels", "2"),
            ("auplay_srate", "8000"),
            ("auplay_channels", "1"),
            ("rtp_ports", RTP_PORTS),
            ("rtp_stats", "yes"),
            ("rtcp_mux", "no"),
            ("jitter_buffer_delay", "5-10"),
            ("module_path", str(MODULES)),
            ("module", "g711.so"),
            ("module", "ausine.so"),
            ("module", "aubridge.so"),
            ("module", "sndfile.so"),  # records each call's audio (encoder and decoder side)
            ("module_tmp", "account.so"),
            ("module_app", "menu.so"),  # the commands (dial, accept, hangup, sndcode, ...)
            ("module_app", "ctrl_tcp.so"),
            ("ctrl_tcp_listen", f"127.0.0.1:{CTRL_PORT}"),
            ("snd_path", str(self.dumps)),
        ]
        return "".join(f"{key}\t\t{value}\n" for key, value in lines)

    async def start(self, timeout: float = 20.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dumps.mkdir(exist_ok=True)
        (self.home / "config").write_text(self.config())
        (self.home / "accounts").write_text(self.account + "\n")
        (self.home / "contacts").write_text("")
        # In the worker's process group: when the test's timeout kills that group
        # (webims.testing.netns), baresip goes with it.
        with open(self.log_path, "wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                BARESIP, "-4", "-s", "-f", str(self.home),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            if self.process.returncode is not None:
                raise BaresipError(f"baresip exited with {self.process.returncode}\n{self.log_tail()}")
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", CTRL_PORT)
                break
            except OSError:
                if loop.time() > end:
                    raise BaresipError(f"no ctrl_tcp at 127.0.0.1:{CTRL_PORT}\n{self.log_tail()}") from None
                await asyncio.sleep(0.1)
        self._pump = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        reader = self._reader
        assert reader is not None
        while True:
            try:
                size = int((await reader.readuntil(b":"))[:-1])
                payload = await reader.readexactly(size + 1)  # the JSON and its ","
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            message = json.loads(payload[:-1])
            if message.get("event"):
                self.events.append(message)
                self._arrived.set()
            elif message.get("response"):
                future = self._responses.pop(str(message.get("token")), None)
                if future is not None and not future.done():
                    future.set_result(message)

    async def command(self, command: str, params: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """One ``menu`` command (its long name); its response (``ok``, ``data``)."""
        writer = self._writer
        assert writer is not None, "baresip is not started"
        self._token += 1
        token = str(self._token)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        writer.write(b"%d:%s," % (len(body), body))
        await writer.drain()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BaresipError(f"no response to {command} {params}\n{self.log_tail()}") from None

    async def event(self, kind: str, timeout: float = 20.0, after: int = 0) -> dict[str, Any]:
        """The first event of type ``kind`` (e.g. CALL_ESTABLISHED) from ``events[after:]``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("type") == kind:
                    return event
            self._arrived.clear()
            left = end - loop.time()
            if left <= 0:
                seen = [e.get("type") for e in self.events]
                raise BaresipError(f"no {kind} event within {timeout} s (events: {seen})\n{self.log_tail()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def stop(self, timeout: float = 5.0) -> int | None:
        """``quit`` (it de-registers first); SIGTERM, then SIGKILL if it lingers."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None and self._writer is not None:
            with contextlib.suppress(Exception):
                await self.command("quit", timeout=2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._pump is not None:
            self._pump.cancel()
        if self._writer is not None:
            self._writer.close()
        return process.returncode

    def log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def log_text(self) -> str:
        return self.log_bytes().decode("utf-8", errors="replace")

    def log_tail(self, limit: int = 6000) -> str:
        return f"--- baresip log ({self.log_path}) ---\n{self.log_text()[-limit:]}"

    def recordings(self, side: str) -> list[Path]:
        """The WAV files ``sndfile`` wrote: ``dec`` (what baresip got) or ``enc`` (what it sent)."""
        return sorted(self.dumps.glob(f"dump-*-{side}.wav"))


#: One message of libre's SIP trace (``baresip -s``): a colour code, ``#``, a line
#: ``<transport> <source> -> <destination>``, the message as sent or got (CRLF and all),
#: and the reset colour code.
_TRACE = re.compile(
    rb"\x1b\[36;1m#\n(?P<transport>[A-Z]+) (?P<src>\S+) -> (?P<dst>\S+)\n(?P<message>.*?)\x1b\[;m", re.S
)


def sip_trace(log: bytes, local: str) -> list[dict[str, str]]:
    """Every SIP message baresip sent (``"sent"``) or got (``"got"``), in order, as its
    trace shows it; ``local`` is baresip's own ``host:port``."""
    return [
        {
            "direction": "sent" if m["src"].decode() == local else "got",
            "transport": m["transport"].decode(),
            "src": m["src"].decode(),
            "dst": m["dst"].decode(),
            "message": m["message"].decode("utf-8", errors="replace"),
        }
        for m in _TRACE.finditer(log)
    ]


#: baresip's report at the end of each call (its RTP counters): ``packets: <sent> <received>``.
_RTP_REPORT = re.compile(rb"\npackets:\s+(\d+)\s+(\d+)")


def rtp_reports(log: bytes) -> list[dict[str, int]]:
    """baresip's own RTP packet counts of each call it ended, in order."""
    return [{"sent": int(s), "received": int(r)} for s, r in _RTP_REPORT.findall(log)]


def plain(text: str) -> str:
    """``text`` without ANSI colour codes (baresip colours its console output)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# ---------------------------------------------------------------------------- audio
def wav_figures(path: Path) -> dict[str, Any]:
    """A recording's length, overall RMS and how its sound is spread: the 20 ms frames above
    :data:`SOUND_RMS`, and in how many distinct seconds those frames fall."""
    with wave.open(str(path), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    assert width == 2, f"{path}: {width}-byte samples"
    samples = array.array("h", frames)
    if sys.byteorder != "little":
        samples.byteswap()
    step = rate * channels // 50
    loud: list[int] = []
    for i in range(0, len(samples) - step + 1, step):
        chunk = samples[i : i + step]
        if math.sqrt(sum(s * s for s in chunk) / len(chunk)) > SOUND_RMS:
            loud.append(i // step)
    total = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
    return {
        "file": path.name,
        "rate": rate,
        "channels": channels,
        "seconds": len(samples) / (rate * channels),
        "rms": total,
        "sound_frames": len(loud),
        "sound_seconds": len({f // 50 for f in loud}),
    }


# ---------------------------------------------------------------------------- helpers
def binding(demo: Demo) -> list[str]:
    """The contacts the lab S-CSCF holds for sip:phone@ims.test."""
    registration = demo.core.scscf.registration(PHONE_AOR)
    if registration is None:
        return []
    return [str(b.contact) for b in registration.bindings.values()]


async def registered(phone: Baresip, demo: Demo, out: dict[str, Any]) -> None:
    """baresip registered (it starts at once, perhaps before ctrl_tcp is connected: the
    S-CSCF's binding and baresip's ``reginfo`` tell, not a REGISTER_OK event)."""

    reginfo = ""

    async def bound() -> bool:
        nonlocal reginfo
        reginfo = plain((await phone.command("reginfo")).get("data", ""))
        return bool(binding(demo)) and " OK " in reginfo

    try:
        await until(bound, "baresip's registration", 30)
    except AssertionError as exc:
        raise BaresipError(f"{exc}; baresip's reginfo: {reginfo!r}\n{phone.log_tail()}") from None
    out["binding"] = binding(demo)
    out["reginfo"] = (await phone.command("reginfo")).get("data", "")


async def login_alice(page: Any, url: str) -> None:
    """The WIC web app, alice with a web account (PKCE at the authorization function)."""
    await page.goto(url)
    await wait_state(page, "login")
    await page.click("#web-login")
    await page.wait_for_url("**/authorize?*")
    await page.fill("#username", "alice")
    await page.fill("#password", "alice")
    await page.click("button[type=submit]")
    await wait_state(page, "registered")


async def baresip_audio(phone: Baresip, before: set[str], seconds: float = 5.0) -> None:
    """Wait (30 s at most) until baresip's recording of what it got in this call (its new
    ``dec`` WAV, 8 kHz 16-bit mono) holds ``seconds`` of audio; the test asserts on it."""

    async def long_enough() -> bool:
        new = [p for p in phone.recordings("dec") if p.name not in before]
        return bool(new) and new[-1].stat().st_size >= seconds * 8000 * 2

    with contextlib.suppress(AssertionError):
        await until(long_enough, f"{seconds:g} s recorded by baresip", 30)


def recordings(phone: Baresip, out: dict[str, Any], before: set[str]) -> None:
    """The figures of the call's new recordings (``dec``: what baresip got; ``enc``: sent)."""
    for side in ("dec", "enc"):
        new = [p for p in phone.recordings(side) if p.name not in before]
        out[f"baresip_{side}"] = [wav_figures(p) for p in new]


def dump_names(phone: Baresip) -> set[str]:
    return {p.name for p in phone.dumps.glob("*.wav")}


async def alice_and_phone_ready(
    demo: Demo, phone: Baresip, page: Any, out: dict[str, Any]
) -> tuple[set[str], int]:
    """baresip registered and alice logged in to the WIC; (the recordings so far, the
    index of baresip's next event)."""
    await registered(phone, demo, out)
    await login_alice(page, demo.url)
    out["wic_identity"] = await text(page, "#identity")
    return dump_names(phone), len(phone.events)


async def audio_in_call(demo: Demo, phone: Baresip, page: Any, out: dict[str, Any], before: set[str]) -> None:
    """The WIC in a call, audio both ways (WebRTC stats, baresip's recording), one call held."""
    await wait_state(page, "in-call")
    await wic_audio(page, out, "wic")
    await baresip_audio(phone, before)
    out["left_in_call"] = await left_in_gateway(demo.gateway, 0)


async def call_ended(
    demo: Demo, phone: Baresip, page: Any, out: dict[str, Any], before: set[str], mark: int
) -> None:
    """baresip closed the call, the WIC is back to registered, nothing left in the gateway."""
    out["closed_event"] = await phone.event("CALL_CLOSED", after=mark)
    await wait_state(page, "registered")
    out["wic_status"] = await text(page, "#status")
    out["calls_after"] = (await phone.command("listcalls")).get("data", "")
    out["left"] = await left_in_gateway(demo.gateway)
    recordings(phone, out, before)


# ---------------------------------------------------------------------------- scenarios
async def register(demo: Demo, phone: Baresip, page: Any, out: dict[str, Any]) -> None:
    await registered(phone, demo, out)


async def wic_calls(demo: Demo, phone: Baresip, page: Any, out: dict[str, Any]) -> None:
    """alice calls the phone; baresip answers by itself; audio; alice hangs up."""
    before, mark = await alice_and_phone_ready(demo, phone, page, out)
    await page.fill("#target", PHONE_AOR)
    await page.click("#call")
    out["established_event"] = await phone.event("CALL_ESTABLISHED", after=mark)
    await audio_in_call(demo, phone, page, out, before)
    out["calls_in_call"] = (await phone.command("listcalls")).get("data", "")
    await page.click("#hangup")
    await call_ended(demo, phone, page, out, before, mark)


#: Identity headers of the INVITE the WIC got (JsSIP's RTCSession keeps it as ``_request``).
AT_WIC = """() => {
  const request = window.webimsWic.phone.session._request;
  const get = (name) => request.getHeader(name) || null;
  return {from: get('From'), pai: get('P-Asserted-Identity'), ppi: get('P-Preferred-Identity'),
          privacy: get('Privacy'), user_agent: get('User-Agent')};
}"""


async def calls_wic(demo: Demo, phone: Baresip, page: Any, out: dict[str, Any]) -> None:
    """baresip dials alice; alice answers in the WIC; audio; baresip hangs up."""
    before, mark = await alice_and_phone_ready(demo, phone, page, out)
    out["dial"] = await phone.command("dial", WIC_AOR)
    await wait_state(page, "incoming")
    out["incoming_from"] = await text(page, "#incoming-from")
    out["at_wic"] = await page.evaluate(AT_WIC)
    await page.click("#answer")
    out["established_event"] = await phone.event("CALL_ESTABLISHED", after=mark)
    await audio_in_call(demo, phone, page, out, before)
    out["hangup"] = await phone.command("hangup")
    await call_ended(demo, phone, page, out, before, mark)


class Records(logging.Handler):
    """The log records of one logger (here: the gateway's session B2BUA, which logs each
    RFC 4733 event its media IWF sees on a leg)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def dtmf_events(phone: Baresip, mark: int, count: int) -> list[str]:
    """The digits of baresip's first ``count`` CALL_DTMF_START events after ``mark``
    (or fewer after 20 s)."""

    def digits() -> list[str]:
        return [str(e.get("param")) for e in phone.events[mark:] if e.get("type") == "CALL_DTMF_START"]

    async def enough() -> bool:
        return len(digits()) >= count

    with contextlib.suppress(AssertionError):
        await until(enough, f"{count} DTMF events at baresip")
    return digits()


async def dtmf(demo: Demo, phone: Baresip, page: Any, out: dict[str, Any]) -> None:
    """alice calls the phone; DTMF both ways; alice hangs up.

    WIC -> baresip: RFC 4733 (RTCDTMFSender), then SIP INFO (application/dtmf-relay);
    baresip reports each digit (CALL_DTMF_START). baresip -> WIC: ``sndcode`` sends RFC
    4733 events; a browser has no API for received telephone-events (RTCDTMFSender only
    sends; JsSIP's newDTMF is for INFO), so the gateway's IWF is where they are seen."""
    records = Records()
    logger = logging.getLogger("webims.gateway.sessions")
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    try:
        await registered(phone, demo, out)
        await login_alice(page, demo.url)
        mark = len(phone.events)
        await page.fill("#target", PHONE_AOR)
        await page.click("#call")
        await phone.event("CALL_ESTABLISHED", after=mark)
        await wait_state(page, "in-call")
        await wic_audio(page, out, "wic")
        mark = len(phone.events)
        await page.select_option("#dtmf-method", "rfc4733")
        for key in "19":
            await page.click(f'#dialpad button[data-key="{key}"]')
            await asyncio.sleep(0.3)  # one tone after the other (RTCDTMFSender queues them anyway)
        out["rfc4733_at_baresip"] = await dtmf_events(phone, mark, 2)
        mark = len(phone.events)
        await page.select_option("#dtmf-method", "info")
        for key in "4#":
            await page.click(f'#dialpad button[data-key="{key}"]')
        out["info_at_baresip"] = await dtmf_events(phone, mark, 2)
        out["wic_dtmf_sent"] = await text(page, "#dtmf-sent")
        seen = len(records.messages)
        for digit in "37":
            out.setdefault("sndcode", []).append(await phone.command("sndcode", digit))
            await asyncio.sleep(0.5)

        async def at_gateway() -> bool:
            return sum("DTMF" in m and "ims side" in m for m in records.messages[seen:]) >= 2

        with contextlib.suppress(AssertionError):
            await until(at_gateway, "baresip's digits at the gateway's IWF")
        out["gateway_dtmf"] = [m for m in records.messages if "DTMF" in m]
        out["wic_dtmf_received"] = await text(page, "#dtmf-received")
        await page.click("#hangup")
        await phone.event("CALL_CLOSED", after=mark)
        await wait_state(page, "registered")
        out["calls_after"] = (await phone.command("listcalls")).get("data", "")
        out["left"] = await left_in_gateway(demo.gateway)
    finally:
        logger.removeHandler(records)


SCENARIOS: dict[str, Callable[[Demo, Baresip, Any, dict[str, Any]], Awaitable[None]]] = {
    "wic-calls": wic_calls,
    "calls-wic": calls_wic,
    "dtmf": dtmf,
}
BROWSERLESS = {"register": register}


def account(outbound: str) -> str:
    """The demo's SIP phone subscription (webims.demo.provision) as a baresip account line:
    digest user and password, the outbound proxy (baresip puts it in a ``Route`` with
    ``;lr``), auto answer, PCMU (with telephone-event) only."""
    return (
        f"<{PHONE_AOR}>;auth_user=phone@ims.test;auth_pass=phone-secret;"
        f'outbound="{outbound}";answermode=auto;audio_codecs=pcmu;regint=600'
    )


def outbound_proxy(demo: Demo, which: str) -> str:
    """``icscf``: the lab I-CSCF, as ``webims demo`` tells SIP phones (it sends the requests of
    a phone registered there without a P-CSCF to the S-CSCF's originating part,
    webims.labcore.attached); ``service-route``: the S-CSCF's Service-Route URI
    (``sip:orig@...``), which a phone that ignores the Service-Route it registered with
    (RFC 3608) may be given to reach the originating part directly."""
    if which == "service-route":
        return demo.core.scscf.service_route.removesuffix(";lr")
    return demo.icscf


async def unbound(demo: Demo) -> list[str]:
    """The S-CSCF's bindings of the phone once baresip quit (it de-registers on ``quit``)."""

    async def gone() -> bool:
        return not binding(demo)

    with contextlib.suppress(AssertionError):
        await until(gone, "baresip's de-registration", 10)
    return binding(demo)


def keep(phone: Baresip, artifacts: Path | None) -> None:
    """baresip's log and recordings into the artifacts directory (replacing older ones)."""
    if artifacts is None:
        return
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        shutil.copy(phone.log_path, artifacts / "baresip.log")
        for wav in phone.dumps.glob("*.wav"):
            shutil.copy(wav, artifacts / wav.name)


async def scenario(name: str, demo: Demo, outbound: str, tmp: Path, artifacts: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": name, "outbound": outbound}
    phone = Baresip(tmp / "baresip", account(outbound))
    try:
        await phone.start()
        if name in BROWSERLESS:
            await BROWSERLESS[name](demo, phone, None, out)
        else:
            async with chromium(tmp / "profile") as context:
                page = context.pages[0] if context.pages else await context.new_page()
                watch = PageWatch(page)
                try:
                    await SCENARIOS[name](demo, phone, page, out)
                    out["page_errors"] = watch.errors
                except Exception:
                    with contextlib.suppress(Exception):
                        await print_pages((page,), (watch,))
                    raise
        out["events"] = phone.events
        out["returncode"] = await phone.stop()
        out["binding_after_quit"] = await unbound(demo)
    except Exception:
        where = f" (all of it in {artifacts / 'baresip.log'})" if artifacts is not None else ""
        sys.stderr.write(f"{phone.log_tail(20000)}\n--- end of baresip's log{where} ---\n")
        raise
    finally:
        await phone.stop()
        keep(phone, artifacts)
    out["trace"] = sip_trace(phone.log_bytes(), f"127.0.0.1:{SIP_PORT}")
    out["baresip_rtp"] = rtp_reports(phone.log_bytes())  # complete once baresip exited
    return out


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=sorted([*SCENARIOS, *BROWSERLESS]), required=True)
    parser.add_argument("--outbound", choices=["icscf", "service-route"], default="icscf")
    parser.add_argument("--artifacts", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="webims-baresip-") as tmp:
        environ = dict(os.environ)
        environ["WEBIMS_STATE__DIR"] = tmp
        config = load_config(None, environ=environ)
        async with running_demo(config) as demo:
            outbound = outbound_proxy(demo, args.outbound)
            return await asyncio.wait_for(
                scenario(args.scenario, demo, outbound, Path(tmp), args.artifacts), 200
            )


if __name__ == "__main__":
    import uvloop

    result = uvloop.run(main(sys.argv[1:]))
    sys.stdout.write(json.dumps(result) + "\n")
