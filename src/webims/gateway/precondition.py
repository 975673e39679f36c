"""QoS preconditions (RFC 3312, RFC 4032) on the IMS leg, kept by the gateway for the WIC.

A WIC (JsSIP) knows nothing of ``a=curr``/``a=des``/``a=conf``; the gateway plays
the IMS UE's (NI-O, TS 23.228 §5.6.4) or the terminating side's (NI-T, §5.7.4) part
in the segmented ``qos`` model (TS 24.229 §6.1.2): "local" is the gateway's own
segment — its media resources, reserved once the media IWF (or, with media
interworking in the IMS, the WIC's own stack) has taken the codec negotiation's
result — and "remote" is the IMS peer's segment as the peer reports it.

:class:`QosState` is the gateway's view, sans-IO: what to write in an offer or an
answer, what a received offer/answer says, whether every mandatory precondition
is met (RFC 3312 §5; the callee may only be alerted then, §6) and whether the peer
must be told of a change of our status with an UPDATE (RFC 3312 §5.1.1, §8: the
peer asked for confirmation with ``a=conf``, or its desired status for our segment
is mandatory and it has not yet heard that it is met).
"""

from __future__ import annotations

from collections.abc import Sequence

from webims.sdp import Precondition, SessionDescription, preconditions_met, qos_answer, qos_offer

__all__ = ["QosState", "apply_preconditions", "preconditions_of", "strip_preconditions"]


def preconditions_of(sdp: SessionDescription | None) -> list[Precondition]:
    """The ``qos`` lines of the first active m-line that has any (all streams share one status)."""
    if sdp is None:
        return []
    for media in sdp.media:
        if media.is_rejected:
            continue
        found = [p for p in media.preconditions if p.type == "qos"]
        if found:
            return found
    return []


def apply_preconditions(sdp: SessionDescription, lines: Sequence[Precondition]) -> SessionDescription:
    """``sdp`` with ``lines`` on each active audio/video m-line (old ones replaced)."""
    for media in sdp.media:
        if not media.is_rejected and media.is_rtp:
            media.set_preconditions(lines)
    return sdp


def strip_preconditions(sdp: SessionDescription) -> SessionDescription:
    for media in sdp.media:
        media.set_preconditions(())
    return sdp


def _current(lines: Sequence[Precondition], status_type: str) -> str:
    for p in lines:
        if p.kind == "curr" and p.status_type == status_type:
            return p.direction
    return "none"


def _strength(lines: Sequence[Precondition], status_type: str) -> str | None:
    for p in lines:
        if p.kind == "des" and p.status_type == status_type:
            return p.strength
    return None


class QosState:
    """The gateway's precondition status toward one IMS peer (module docstring)."""

    def __init__(self, *, local_strength: str = "mandatory", remote_strength: str = "optional") -> None:
        self.active = False
        self.local = "none"  # our segment (a=curr:qos local)
        self.remote = "none"  # the peer's segment, as the peer last reported it
        self.local_strength = local_strength  # desired strength of our segment (our view)
        self.remote_strength = remote_strength
        self.told_local = "none"  # what the peer last heard of our segment
        self.peer_wants_confirmation = False  # the peer's a=conf:qos remote ... (RFC 3312 §5.1.1)
        self.peer_offer: list[Precondition] = []

    # -- our SDP -------------------------------------------------------------------------------
    def offer_lines(self) -> list[Precondition]:
        """The lines of an offer (initial INVITE, UPDATE): TS 24.229 §6.1.2."""
        self.active = True
        self.told_local = self.local
        return qos_offer(
            self.local,
            self.remote,
            local_strength=self.local_strength,
            remote_strength=self.remote_strength,
        )

    def answer_lines(self, *, confirm: bool = False) -> list[Precondition]:
        """The lines of our answer to the peer's last offer (RFC 3312 §6 via :func:`qos_answer`)."""
        self.told_local = self.local
        lines = qos_answer(self.peer_offer, self.local, local_strength=self.local_strength, confirm=confirm)
        return lines

    # -- the peer's SDP ------------------------------------------------------------------------
    def take_offer(self, lines: Sequence[Precondition]) -> bool:
        """The peer's offer; returns whether it uses preconditions."""
        if not any(p.kind == "des" for p in lines):
            return False
        self.active = True
        self.peer_offer = list(lines)
        self._take(lines)
        return True

    def take_answer(self, lines: Sequence[Precondition]) -> bool:
        """The peer's answer to our offer; False when it ignored the preconditions."""
        if not any(p.kind == "des" for p in lines):
            return False
        self._take(lines)
        return True

    def _take(self, lines: Sequence[Precondition]) -> None:
        # The peer's "local" is our "remote" and the other way round (RFC 3312 §6).
        self.remote = _current(lines, "local")
        theirs_of_us = _strength(lines, "remote")
        theirs_of_them = _strength(lines, "local")
        rank = {"none": 1, "optional": 2, "mandatory": 3, "failure": 4}
        if theirs_of_us and rank.get(theirs_of_us, 0) > rank.get(self.local_strength, 0):
            self.local_strength = theirs_of_us  # strengths only go up (RFC 4032 §5)
        if theirs_of_them and rank.get(theirs_of_them, 0) > rank.get(self.remote_strength, 0):
            self.remote_strength = theirs_of_them
        self.peer_wants_confirmation = any(
            p.kind == "conf" and p.status_type == "remote" and p.direction != "none" for p in lines
        )

    # -- decisions -----------------------------------------------------------------------------
    def reserved(self) -> None:
        """Our resources are in place (the IWF took the answer; RFC 3312 §5.1)."""
        self.local = "sendrecv"

    def met(self) -> bool:
        if not self.active:
            return True
        view = [
            Precondition("curr", "local", self.local),
            Precondition("curr", "remote", self.remote),
            Precondition("des", "local", "sendrecv", self.local_strength),
            Precondition("des", "remote", "sendrecv", self.remote_strength),
        ]
        return preconditions_met(view)

    def failed(self) -> bool:
        return self.local_strength == "failure" or self.remote_strength == "failure"

    def must_tell_peer(self) -> bool:
        """Whether an UPDATE must report our segment's new status (RFC 3312 §5.1.1, §8)."""
        if not self.active or self.local == self.told_local:
            return False
        return self.peer_wants_confirmation or self.local_strength == "mandatory"
