"""The IMS leg's forks in a WIC-originated call (RFC 3261 §12.1.2, §13.2.2.4): :class:`Fork`, one
early dialog of the IMS leg, and :class:`LateAnswers`, what becomes of a 2xx after the first.

A forking proxy in the IMS may bring back several 2xx to the gateway's INVITE; the
first one is the call (:mod:`.call_orig`), each later one is ACKed — as RFC 3261
§13.2.2.4 requires of a UAC — and ended with BYE. When the INVITE had no offer
(delayed offer, :mod:`.delayed_offer`) each such 2xx carries an offer of its own,
and its ACK must carry the answer (RFC 3261 §13.2.1 and §13.2.2.4: the ACK is sent for
every 2xx; an offer in a 2xx is answered in the ACK, RFC 3264 §5): the gateway answers
with every stream rejected
(:func:`~.sdp_media.rejecting_answer`: each ``m=`` line at port 0, RFC 3264 §6),
which is a valid answer to any offer whatever its codecs (the answer to the first
fork's offer need not be: another offer, other codecs, other ``m=`` lines) and brings
no media up for the moment until the BYE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webims.sdp import SdpError, SessionDescription
from webims.sip import Dialog, DialogError, ParseError, Request, Response

from .b2bua import reason_header
from .prack import RSeqTracker
from .sdp_media import SDP, LegSdp, parse_sdp, rejecting_answer

if TYPE_CHECKING:
    from .sessions import SessionManager
    from .state import Binding

__all__ = ["Fork", "LateAnswers"]


class Fork:
    """One early dialog of the IMS leg (one forked branch, RFC 3261 §12.1.2).

    With media interworking in the IMS (``media = "ims"``) each fork that sends an early
    answer gets a WIC early dialog of its own (``wic_tag``, its own ``o=`` line in
    ``wic_sdp``): the WIC (JsSIP) keeps one early dialog per To tag, as it would behind
    a forking proxy, and the 2xx picks the one that is confirmed (RFC 3261 §13.2.2.4).
    """

    def __init__(self, dialog: Dialog) -> None:
        self.dialog = dialog
        self.rseq = RSeqTracker()
        self.answer: SessionDescription | None = None  # its SDP answer (in a 18x or the 2xx)
        self.wic_tag: str | None = None  # the To tag of its WIC early dialog, once it has one
        self.wic_sdp: LegSdp | None = None  # that dialog's SDP versions (None: the WIC leg's own)
        self.wic_dialog: Dialog | None = None  # that dialog, when it is not the WIC leg's first one


class LateAnswers:
    """``on_extra_final`` of the IMS INVITE: a 2xx after the first final response (§13.2.2.4).

    The SIP layer keeps this callback while the client transaction is Accepted (Timer M,
    64*T1, RFC 6026 §8.4), long after the call may have ended; so it holds what ACK and
    BYE need (the INVITE, the confirmed IMS dialog), not the call and its media.
    """

    def __init__(self, mgr: SessionManager, binding: Binding | None = None) -> None:
        self.mgr = mgr
        self.binding = binding  # behind a P-CSCF its ACK and BYE leave from the UE's flow
        self.invite: Request | None = None  # the INVITE last sent (a 422 retry replaces it)
        self.dialog: Dialog | None = None  # the IMS leg's dialog, once a 2xx made it

    def __call__(self, response: Response) -> None:
        """Its retransmission (ACK again), or another fork's (ACK, then BYE)."""
        if not 200 <= response.status < 300 or self.invite is None:
            return
        dialog = self.dialog
        if dialog is not None and response.to.tag == dialog.id.remote_tag:
            ack = dialog.ack_for(response)
            if ack is not None:
                self.mgr.send_ack_ims(ack, self.binding)
            return
        self.mgr.spawn(self._end_fork(self.invite, response))

    async def _end_fork(self, invite: Request, response: Response) -> None:
        try:
            dialog = Dialog.from_uac(invite, response)
        except (DialogError, ParseError):
            return
        mgr = self.mgr
        body = b""
        if not invite.body:  # delayed offer: this 2xx's offer is answered in the ACK (module docstring)
            try:
                offer = parse_sdp(response.body, response.content_type)
            except SdpError:
                offer = None
            if offer is not None and offer.media:
                body = rejecting_answer(offer, mgr.sdp_address).to_bytes()
        headers = [("Content-Type", SDP)] if body else []
        mgr.send_ack_ims(dialog.create_ack(invite, headers=headers, body=body), self.binding)
        bye = dialog.create_request(
            "BYE", headers=[("Reason", reason_header(200, "Call completed elsewhere"))]
        )
        await mgr.send_ims(bye, binding=self.binding)
