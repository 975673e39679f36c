"""A finished call is freed by reference counting alone: it leaves no cyclic garbage.

The gateway runs with the cyclic collector nearly off (``GcPolicy``: survivors of a young
collection are frozen, full collections are rare), so every object of an ended call —
the B2BUA's call and legs, the media IWF session with its ICE agent, DTLS and sockets —
must go as soon as the last reference to it does; an object kept by a reference cycle
would only go at the next full collection, and a collector that finds many makes long
pauses. Each test records weak references to the call's objects while it runs, ends
it, then (with the collector disabled) waits for every one of them to be gone, and
checks that a collection finds no garbage of the gateway's or the media IWF's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import weakref
from collections.abc import Iterator
from typing import Any

from conftest import PASSWORDS, LabFactory
from ims_phone import ImsPhone, rtp_sdp
from session_lab import eventually, session_lab, wics
from session_wic import chrome_answer, chrome_offer, closing

from webims.gateway.sessions import SessionManager
from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF

#: Modules whose objects must never be cyclic garbage after a call.
WATCHED = ("webims.gateway", "webims.media", "aioice")


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """No automatic collection meanwhile: what is freed is freed by reference counting."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def watched_garbage() -> list[str]:
    """Collect with ``DEBUG_SAVEALL``: the type names of the cyclic garbage of WATCHED modules."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = sorted(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.startswith(WATCHED)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
    return found


class Watch:
    """Weak references to a call's objects (the manager's calls, the IWF's sessions and legs)."""

    def __init__(self) -> None:
        self.refs: list[tuple[str, weakref.ref[Any]]] = []

    def add(self, obj: object) -> None:
        self.refs.append((type(obj).__qualname__, weakref.ref(obj)))

    def calls(self, mgr: SessionManager) -> None:
        for call in mgr.calls.values():
            self.add(call)
            self.add(call.wic)
            self.add(call.ims)
            self.add(call.media)

    def media(self, iwf: EmbeddedMediaIWF) -> None:
        for sid in iwf.sessions():
            session = iwf.session(sid)
            assert session is not None
            self.add(session)
            for leg in (session.webrtc, session.ims):
                if leg is not None:
                    self.add(leg)
            if session.webrtc is not None:
                self.add(session.webrtc.ice)

    def alive(self) -> list[str]:
        return [name for name, ref in self.refs if ref() is not None]

    async def all_freed(self) -> None:
        try:
            await eventually(lambda: not self.alive(), timeout=5.0)
        except AssertionError:
            raise AssertionError(f"still alive (kept by a reference cycle?): {self.alive()}") from None


async def test_answered_call_between_two_wics_is_freed(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        alice, bob = await wics(lab, "alice", "bob")
        try:
            with collector_off():
                watch = Watch()
                sent = await alice.invite("sip:bob@ims.test", chrome_offer())
                incoming = await bob.next_request("INVITE")
                await bob.answer(incoming, 180)
                await bob.answer(incoming, 200, body=chrome_answer())
                ok = await alice.final(sent)
                assert ok.status == 200
                dialog = alice.dialog_from(sent, ok)
                await alice.ack(dialog)
                watch.calls(mgr)
                assert len(watch.refs) == 8  # two calls (originating, terminating), their legs and media
                assert (await alice.final(await alice.in_dialog(dialog, "BYE"))).status == 200
                await bob.next_request("BYE")
                await eventually(lambda: not mgr.calls)
                await watch.all_freed()
            assert watched_garbage() == []
        finally:
            await closing(alice, bob)


async def test_busy_and_cancelled_calls_are_freed(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        alice, bob = await wics(lab, "alice", "bob")
        try:
            with collector_off():
                watch = Watch()
                sent = await alice.invite("sip:bob@ims.test", chrome_offer())
                incoming = await bob.next_request("INVITE")
                watch.calls(mgr)
                await bob.answer(incoming, 486)
                assert (await alice.final(sent)).status == 486
                sent = await alice.invite("sip:bob@ims.test", chrome_offer())
                incoming = await bob.next_request("INVITE")
                await bob.answer(incoming, 180)
                await eventually(lambda: any(r.status == 180 for r in sent.provisional))
                watch.calls(mgr)
                await alice.cancel(sent)
                assert (await alice.final(sent)).status == 487
                await eventually(lambda: not mgr.calls)
                await watch.all_freed()
            assert watched_garbage() == []
        finally:
            await closing(alice, bob)


def silent(body: bytes, port: int) -> bytes:
    """A browser SDP whose one ICE candidate is ``port`` on loopback (a socket that never answers)."""
    lines = [ln for ln in body.split(b"\r\n") if not ln.startswith(b"a=candidate")]
    at = next(i for i, ln in enumerate(lines) if ln.startswith(b"a=ice-ufrag"))
    lines.insert(at, b"a=candidate:1 1 udp 2122260223 127.0.0.1 %d typ host generation 0" % port)
    return b"\r\n".join(lines)


async def test_calls_through_the_embedded_iwf_are_freed(make_lab: LabFactory) -> None:
    """Both directions through the external (embedded) IWF; the browser's ICE candidate never
    answers, so the IWF's ICE agent is still checking when the call ends (as in ``bench call``);
    then a call ended by the IWF (ICE failure: the browser's answer has no usable candidate)."""
    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=44400, port_max=44599, ice_timeout=5.0, dtls_timeout=5.0))
    await iwf.start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            (alice,) = await wics(lab, "alice")
            bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
            await bob.start()
            assert (await bob.register()).status == 200
            try:
                with collector_off():
                    watch = Watch()
                    # the WIC calls the phone
                    sent = await alice.invite("sip:bob@ims.test", silent(chrome_offer(), port))
                    got = await bob.next_request("INVITE")
                    bob.respond(got, 180)
                    bob.respond(got, 200, body=rtp_sdp(30010))
                    ok = await alice.final(sent)
                    assert ok.status == 200
                    dialog = alice.dialog_from(sent, ok)
                    await alice.ack(dialog)
                    await asyncio.sleep(0.3)  # the IWF's ICE agent checks the silent candidate
                    watch.calls(mgr)
                    watch.media(iwf)
                    assert len(watch.refs) == 8
                    assert (await alice.final(await alice.in_dialog(dialog, "BYE"))).status == 200
                    await bob.next_request("BYE")
                    # the phone calls the WIC
                    request, final, _ = await bob.invite("sip:alice@ims.test", rtp_sdp(30020))
                    incoming = await alice.next_request("INVITE")
                    watch.calls(mgr)
                    watch.media(iwf)
                    await alice.answer(incoming, 200, body=silent(chrome_answer(), port))
                    response = await asyncio.wait_for(final, 10)
                    assert response.status == 200
                    bob_dialog = await bob.ack_and_dialog(request, response)
                    await asyncio.sleep(0.3)
                    assert (await bob.send_in(bob_dialog, "BYE")).status == 200
                    await alice.next_request("BYE")
                    await eventually(lambda: not mgr.calls and not iwf.sessions())
                    # the IWF ends a call: no candidate to check in the browser's answer, ICE fails
                    request, final, _ = await bob.invite("sip:alice@ims.test", rtp_sdp(30030))
                    incoming = await alice.next_request("INVITE")
                    watch.calls(mgr)
                    watch.media(iwf)
                    await alice.answer(incoming, 200, body=chrome_answer())  # an mDNS candidate only
                    response = await asyncio.wait_for(final, 10)
                    assert response.status == 200
                    await bob.ack_and_dialog(request, response)
                    bye = await alice.next_request("BYE")
                    assert "cause=503" in (bye.headers.get("Reason") or "")
                    await bob.next_request("BYE")
                    await eventually(lambda: not mgr.calls and not iwf.sessions())
                    assert len(watch.refs) == 24
                    del final, request, response, bob_dialog, bye
                    await watch.all_freed()
                assert watched_garbage() == []
            finally:
                await bob.close()
                await alice.close()
    finally:
        sink.close()
        await iwf.close()
