"""Media interworking inside the IMS: the S-CSCF inserting the media IWF as MRF
(seed 004 §6.X.2.3.1-2).

The decision and the SDP rewriting through the S-CSCF are checked with a small
in-test implementation of the :class:`webims.media.api.MediaIWF` API whose SDP
transforms are webims.sdp's real ``webrtc_to_ims`` / ``ims_to_webrtc``; the last
test runs the same call through the embedded IWF backend (signalling and SDP; the
media path itself is the media IWF's own tests' business).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from labcore_harness import SDP_PCMU, Ue, eventually, running_core

from webims.labcore import LabCore
from webims.labcore.mrf import Mode, contact_does_ice, contact_is_webrtc, needs_interworking, offer_is_webrtc
from webims.media.api import LegStats, MediaError, MediaEvent, MediaSession
from webims.sdp import (
    Candidate,
    Fingerprint,
    IceEndpoint,
    RtpEndpoint,
    SessionDescription,
    ims_to_webrtc,
    parse,
    profile_family,
    webrtc_to_ims,
)
from webims.sip import parse_name_addr

FIXTURES = Path(__file__).parent.parent / "sdp" / "fixtures"
CHROME_OFFER = (FIXTURES / "chrome_offer_audio.sdp").read_bytes()
CHROME_ANSWER = (FIXTURES / "chrome_answer_audio.sdp").read_bytes()
IMS_OFFER = (FIXTURES / "ims_volte_offer.sdp").read_bytes()

IWF_ICE = IceEndpoint(
    "iwfu",
    "iwfpassword0123456789abcd",
    (Fingerprint("sha-256", ":".join(["AB"] * 32)),),
    (Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 50002, "host"),),
)
IWF_RTP = RtpEndpoint("127.0.0.1", 50000)


class FakeSession:
    """A :class:`MediaSession` that only rewrites SDP (and records the seed's steps)."""

    def __init__(self, session_id: str, fail: MediaError | None) -> None:
        self.session_id = session_id
        self.fail = fail
        self.calls: list[str] = []
        self.webrtc_offer: SessionDescription | None = None
        self.ims_offer: SessionDescription | None = None

    async def offer_from_webrtc(self, offer: SessionDescription) -> SessionDescription:
        self.calls.append("offer_from_webrtc")
        if self.fail is not None:
            raise self.fail
        self.webrtc_offer = offer
        return webrtc_to_ims(offer, IWF_RTP)

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription:
        self.calls.append("answer_from_ims")
        return ims_to_webrtc(answer, IWF_ICE, offer=self.webrtc_offer)

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription:
        self.calls.append("offer_from_ims")
        self.ims_offer = offer
        return ims_to_webrtc(offer, IWF_ICE)

    async def answer_from_webrtc(self, answer: SessionDescription) -> SessionDescription:
        self.calls.append("answer_from_webrtc")
        return webrtc_to_ims(answer, IWF_RTP, offer=self.ims_offer)

    async def offer_to_ims(self) -> SessionDescription:  # (the MRF never offers first)
        raise MediaError("no offer without a source SDP", 488)

    async def answer_from_ims_to_own_offer(self, answer: SessionDescription) -> SessionDescription:
        raise MediaError("no own offer", 500)

    async def confirm(self) -> None:
        self.calls.append("confirm")

    async def release(self, reason: str = "") -> None:
        self.calls.append("release")

    def stats(self) -> list[LegStats]:
        return []


class FakeIwf:
    """A :class:`MediaIWF` making :class:`FakeSession` s."""

    def __init__(self, fail: MediaError | None = None) -> None:
        self.made: list[FakeSession] = []
        self.fail = fail

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def create_session(
        self, session_id: str, on_event: Callable[[MediaEvent], None] | None = None
    ) -> MediaSession:
        session = FakeSession(session_id, self.fail)
        self.made.append(session)
        return session

    def sessions(self) -> list[str]:
        return [s.session_id for s in self.made if "release" not in s.calls]


# --- the decision -------------------------------------------------------------------------------------


def test_webrtc_offer_toward_a_contact_without_ice_needs_the_iwf() -> None:
    offer = parse(CHROME_OFFER)
    assert offer_is_webrtc(offer) and not offer_is_webrtc(parse(SDP_PCMU))
    plain = parse_name_addr("<sip:bob@10.0.0.2:5060>")
    ice = parse_name_addr("<sip:bob@10.0.0.2:5060>;+sip.ice")
    browser = parse_name_addr("<sip:x@df7jal23ls0d.invalid;transport=ws>")
    assert not contact_does_ice(plain) and contact_does_ice(ice) and contact_is_webrtc(browser)
    assert needs_interworking(offer, plain) is Mode.WEBRTC_CALLER
    assert needs_interworking(offer, ice) is None
    assert needs_interworking(offer, browser) is None
    assert needs_interworking(parse(IMS_OFFER), browser) is Mode.IMS_CALLER
    assert needs_interworking(parse(SDP_PCMU), plain) is None
    assert needs_interworking(parse(SDP_PCMU), ice) is None


# --- through the S-CSCF ---------------------------------------------------------------------------------


@pytest.fixture
def iwf() -> FakeIwf:
    return FakeIwf()


@pytest.fixture
async def core(tmp_path: Path, iwf: FakeIwf) -> AsyncIterator[LabCore]:
    async with running_core(tmp_path, iwf=iwf, media_interworking="auto") as lab:
        yield lab


async def test_webrtc_caller_to_a_plain_ims_callee(core: LabCore, iwf: FakeIwf) -> None:
    """Seed 004 §6.X.2.3.1: offer_from_webrtc (steps 7-9), answer_from_ims, confirm (16), release."""
    async with Ue(core, "alice") as alice, Ue(core, "bob", answer=[(180, b""), (200, SDP_PCMU)]) as bob:
        assert (await alice.register()).status == 200
        assert (await bob.register()).status == 200
        call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
        assert call.final is not None and call.final.status == 200
        (session,) = iwf.made
        # the callee got the IWF's RTP/AVP offer, not the browser's
        got = parse(bob.invites[0].request.body)
        assert [profile_family(m.proto) for m in got.media] == ["rtp"]
        assert got.media[0].port == IWF_RTP.port
        # the caller got a WebRTC answer from the IWF's ICE/DTLS endpoint
        answer = parse(call.final.body)
        assert [m.proto for m in answer.media] == ["UDP/TLS/RTP/SAVPF"]
        assert answer.ice_credentials_for(answer.media[0]) is not None
        assert session.calls == ["offer_from_webrtc", "answer_from_ims", "confirm"]
        assert call.dialog is not None
        bye = await alice.send_in_dialog(call.dialog.create_request("BYE"))
        assert bye is not None and bye.status == 200
        await eventually(lambda: "release" in session.calls)
        assert core.scscf.mrf.inserted == 1


async def test_ims_caller_to_a_webrtc_callee(core: LabCore, iwf: FakeIwf) -> None:
    """Seed 004 §6.X.2.3.2: offer_from_ims, answer_from_webrtc, confirm."""
    async with Ue(core, "alice") as alice, Ue(core, "bob", answer=[(200, CHROME_ANSWER)]) as bob:
        assert (await alice.register()).status == 200
        # a WIC behind the gateway: WebSocket contact, reached through the gateway's Path
        bob.path = f"sip:gw@127.0.0.1:{bob.port};lr"
        ws_contact = "<sip:bob@df7jal23ls0d.invalid;transport=ws>"
        assert (await bob.register(contact=ws_contact)).status == 200
        call = await alice.call("sip:bob@ims.test", SDP_PCMU)
        assert call.final is not None and call.final.status == 200, call.final
        got = parse(bob.invites[0].request.body)
        assert [m.proto for m in got.media] == ["UDP/TLS/RTP/SAVPF"]
        answer = parse(call.final.body)
        assert all(profile_family(m.proto) == "rtp" for m in answer.media if not m.is_rejected)
        (session,) = iwf.made
        assert session.calls == ["offer_from_ims", "answer_from_webrtc", "confirm"]


async def test_no_iwf_when_both_ends_do_webrtc(core: LabCore, iwf: FakeIwf) -> None:
    async with Ue(core, "alice") as alice, Ue(core, "bob", contact_params=";+sip.ice") as bob:
        assert (await alice.register()).status == 200
        assert (await bob.register()).status == 200
        call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
        assert call.final is not None and call.final.status == 200
        assert bob.invites[0].request.body == CHROME_OFFER  # untouched
        assert iwf.made == []


async def test_a_failed_call_releases_the_iwf_session(core: LabCore, iwf: FakeIwf) -> None:
    async with Ue(core, "alice") as alice, Ue(core, "bob", answer=[(180, b""), (486, b"")]) as bob:
        assert (await alice.register()).status == 200
        assert (await bob.register()).status == 200
        call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
        assert call.final is not None and call.final.status == 486
        (session,) = iwf.made
        assert session.calls == ["offer_from_webrtc", "release"]


async def test_forking_interworks_only_the_branch_that_needs_it(core: LabCore, iwf: FakeIwf) -> None:
    async with (
        Ue(core, "alice") as alice,
        Ue(core, "bob", answer=[(180, b"")]) as plain,
        Ue(core, "bob", contact_params=";+sip.ice", answer=[(200, CHROME_ANSWER)]) as webrtc,
    ):
        assert (await alice.register()).status == 200
        assert (await plain.register()).status == 200
        assert (await webrtc.register()).status == 200
        call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
        assert call.final is not None and call.final.status == 200
        assert webrtc.invites[0].request.body == CHROME_OFFER
        assert profile_family(parse(plain.invites[0].request.body).media[0].proto) == "rtp"
        (session,) = iwf.made
        await eventually(lambda: "release" in session.calls)  # the plain branch lost (cancelled)
        assert "confirm" not in session.calls


async def test_iwf_refusing_the_offer_gives_its_sip_status(tmp_path: Path) -> None:
    iwf = FakeIwf(MediaError("no codec in common", 488))
    async with (
        running_core(tmp_path, iwf=iwf, media_interworking="auto") as core,
        Ue(core, "alice") as alice,
        Ue(core, "bob") as bob,
    ):
        assert (await alice.register()).status == 200
        assert (await bob.register()).status == 200
        call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
        assert call.final is not None and call.final.status == 488
        assert bob.invites == []
        assert iwf.made[0].calls == ["offer_from_webrtc", "release"]


async def test_media_interworking_off_leaves_sdp_alone(tmp_path: Path) -> None:
    iwf = FakeIwf()
    async with (
        running_core(tmp_path, iwf=iwf, media_interworking="off") as core,
        Ue(core, "alice") as alice,
        Ue(core, "bob") as bob,
    ):
        assert (await alice.register()).status == 200
        assert (await bob.register()).status == 200
        call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
        assert call.final is not None
        assert bob.invites[0].request.body == CHROME_OFFER and iwf.made == []


async def test_embedded_iwf_backend_through_the_scscf(tmp_path: Path) -> None:
    """The same WebRTC -> IMS call with the embedded media IWF (webims.media.embedded)."""
    from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF

    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=46000, port_max=46999))
    await iwf.start()
    try:
        async with (
            running_core(tmp_path, iwf=iwf, media_interworking="auto") as core,
            Ue(core, "alice") as alice,
            Ue(core, "bob") as bob,
        ):
            assert (await alice.register()).status == 200
            assert (await bob.register()).status == 200
            call = await alice.call("sip:bob@ims.test", CHROME_OFFER)
            assert call.final is not None and call.final.status == 200, call.final
            offer = parse(bob.invites[0].request.body)
            assert profile_family(offer.media[0].proto) == "rtp"
            assert 46000 <= offer.media[0].port <= 46999
            answer = parse(call.final.body)
            assert answer.media[0].proto == "UDP/TLS/RTP/SAVPF"
            assert answer.ice_credentials_for(answer.media[0]) is not None
            assert len(iwf.sessions()) == 1
            assert call.dialog is not None
            bye = await alice.send_in_dialog(call.dialog.create_request("BYE"))
            assert bye is not None and bye.status == 200
            await eventually(lambda: iwf.sessions() == [])
    finally:
        await iwf.close()
