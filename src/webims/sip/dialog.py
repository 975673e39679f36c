"""SIP dialogs (RFC 3261 §12, with §13, §14, §15 and the basics of RFC 5057), sans-IO.

A :class:`Dialog` is the state two user agents share: its id (Call-ID, local
tag, remote tag), the local and remote sequence numbers, the remote target, the
route set and the secure flag (§12.1).  It is created by a UAC from a 101-199
response with a To tag (early) or a 2xx (confirmed) (§12.1.2), and by a UAS from
the INVITE and the response it sends (§12.1.1).  It builds requests within itself
(§12.2.1.1, loose and strict routing), the ACK for a 2xx (§13.2.2.4), checks the
CSeq of incoming requests (§12.2.2), refreshes the remote target (§12.2.1.2,
§12.2.2) and ends on BYE (§15) or on a dialog-terminating response (§12.2.1.2,
RFC 5057 §5.1).

:class:`DialogSet` follows one outgoing INVITE through forking: several early
dialogs with distinct To tags, one or more of them confirmed by 2xx responses
(§13.2.2.4).  :class:`DialogTable` finds the dialog of an incoming message.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .headers import NameAddr, Via, parse_via
from .message import Request, Response
from .transaction import new_branch
from .uri import URI, SipURI

__all__ = [
    "DIALOG_TERMINATING",
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogSet",
    "DialogState",
    "DialogTable",
]

# Requests that refresh the remote target: INVITE (§12.2), UPDATE (RFC 3311 §5.1),
# SUBSCRIBE and NOTIFY (RFC 6665 §4.1.2.2, §4.2.1.1).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})

# Responses to a request within a dialog that end it: 481 and 408 (§12.2.1.2) and
# the "dialog terminating" class of RFC 5057 §5.1.  (A dialog here carries a single
# usage, so RFC 5057's usage-terminating responses end the dialog as well.)
DIALOG_TERMINATING = frozenset({404, 408, 410, 416, 481, 482, 483, 484, 485, 502, 604})

_CREDENTIALS = ("Authorization", "Proxy-Authorization")


class DialogError(Exception):
    """A message that cannot create or belong to this dialog, or a request the dialog
    must not send in its state (a programming error of the caller)."""


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID, local tag, remote tag (§12)."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: Request) -> DialogId | None:
        """The id of the dialog a received request belongs to (To tag is ours), if any."""
        local, remote = request.to.tag, request.from_.tag
        if local is None or remote is None:
            return None
        return cls(request.call_id, local, remote)

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The id of the dialog a received response belongs to (From tag is ours), if any."""
        local, remote = response.from_.tag, response.to.tag
        if local is None or remote is None:
            return None
        return cls(response.call_id, local, remote)


def _with_branch(via: Via | str) -> str:
    parsed = parse_via(via) if isinstance(via, str) else via
    if not parsed.branch:
        parsed = parsed.with_param("branch", new_branch())
    return str(parsed)


def _first_contact(message: Request | Response) -> NameAddr | None:
    contacts = message.contact
    return contacts[0] if contacts else None


class Dialog:
    """One dialog (§12).  Create it with :meth:`from_uac` or :meth:`from_uas`."""

    def __init__(self, *, id: DialogId, state: DialogState, is_uac: bool, local: NameAddr,
                 remote: NameAddr, remote_target: URI, route_set: list[NameAddr], secure: bool,
                 local_seq: int | None, remote_seq: int | None, invite_seq: int,
                 local_target: NameAddr | None = None) -> None:
        self.id = id
        self.state = state
        self.is_uac = is_uac  # this side sent the request that created the dialog
        self.local = local  # local URI with the local tag: our From within the dialog
        self.remote = remote  # remote URI with the remote tag: our To within the dialog
        self.remote_target = remote_target
        self.route_set = route_set
        self.secure = secure
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.invite_seq = invite_seq  # CSeq number of the dialog-creating request
        self.local_target = local_target  # our Contact, sent in target refresh requests
        self.last_ack: Request | None = None

    def __repr__(self) -> str:
        return f"<Dialog {self.id} {self.state.value}>"

    # -- creation ---------------------------------------------------------------------
    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """UAC side (§12.1.2): from the request sent and a 101-199 (early) or 2xx
        (confirmed) response carrying a To tag."""
        status = response.status
        remote_tag, local_tag = response.to.tag, request.from_.tag
        if not 100 < status < 300 or remote_tag is None or local_tag is None:
            raise DialogError(f"a {status} response without To tag creates no dialog")
        contact = _first_contact(response)
        return cls(
            id=DialogId(request.call_id, local_tag, remote_tag),
            state=DialogState.EARLY if status < 200 else DialogState.CONFIRMED,
            is_uac=True,
            local=request.from_,
            remote=response.to,
            remote_target=contact.uri if contact is not None else request.uri,
            route_set=list(reversed(response.record_route)),
            secure=request.uri.scheme == "sips",
            local_seq=request.cseq.seq,
            remote_seq=None,
            invite_seq=request.cseq.seq,
            local_target=_first_contact(request),
        )

    @classmethod
    def from_uas(cls, request: Request, response: Response) -> Dialog:
        """UAS side (§12.1.1): from the request received and the 101-199 (early) or 2xx
        (confirmed) response sent, which carries our To tag and Contact."""
        status = response.status
        local_tag, remote_tag = response.to.tag, request.from_.tag
        if not 100 < status < 300 or local_tag is None or remote_tag is None:
            raise DialogError(f"a {status} response without To tag creates no dialog")
        contact = _first_contact(request)
        if contact is None:
            raise DialogError("a dialog-creating request needs a Contact (§8.1.1.8)")
        return cls(
            id=DialogId(request.call_id, local_tag, remote_tag),
            state=DialogState.EARLY if status < 200 else DialogState.CONFIRMED,
            is_uac=False,
            local=response.to,
            remote=request.from_,
            remote_target=contact.uri,
            route_set=list(request.record_route),
            secure=request.uri.scheme == "sips",
            local_seq=None,
            remote_seq=request.cseq.seq,
            invite_seq=request.cseq.seq,
            local_target=_first_contact(response),
        )

    # -- state ------------------------------------------------------------------------
    @property
    def early(self) -> bool:
        return self.state is DialogState.EARLY

    @property
    def confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def terminate(self) -> None:
        """End the dialog (BYE done, a request within it timed out (§12.2.1.2), the UA's choice)."""
        self.state = DialogState.TERMINATED

    # -- requests within the dialog (§12.2.1.1) ----------------------------------------
    def request_uri_and_route(self) -> tuple[URI, list[NameAddr]]:
        """Request-URI and Route values for the next request (§12.2.1.1).

        Loose routing (first route has ``lr``) or no route set: the remote target and the
        route set.  A strict router first: its URI as Request-URI (without the parameters
        a Request-URI may not carry), the rest of the route set, then the remote target.
        """
        routes = self.route_set
        if not routes:
            return self.remote_target, []
        first = routes[0].uri
        if isinstance(first, SipURI) and "lr" in first.params:
            return self.remote_target, list(routes)
        uri: URI = first
        if isinstance(first, SipURI) and (first.headers is not None or "method" in first.params):
            params = {k: v for k, v in first.params.items() if k != "method"}  # §19.1.1 Table 1
            uri = first.replace(headers=None, params=params)
        return uri, [*routes[1:], NameAddr(self.remote_target)]

    def _build(self, method: str, seq: int, *, via: Via | str | None,
               headers: Iterable[tuple[str, str]], body: bytes) -> Request:
        uri, routes = self.request_uri_and_route()
        out: list[tuple[str, str]] = []
        if via is not None:
            out.append(("Via", _with_branch(via)))
        out += [
            ("Max-Forwards", "70"),
            ("From", str(self.local)),
            ("To", str(self.remote)),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        out += [("Route", str(route)) for route in routes]
        if method in TARGET_REFRESH_METHODS and self.local_target is not None:
            out.append(("Contact", str(self.local_target)))  # §12.2.1.1: SHOULD
        out += headers
        return Request(method, uri, out, body)

    def create_request(self, method: str, *, via: Via | str | None = None,
                       headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Request:
        """A new request within the dialog (§12.2.1.1): the local CSeq number goes up by
        one.  ``via`` (our sent-by) gets a fresh branch when it has none; leave it None
        when the transport adds the Via.  Not for ACK (:meth:`create_ack`) or CANCEL
        (``transaction.make_cancel``)."""
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"{method} does not take a new CSeq number (§12.2.1.1)")
        if self.terminated:
            raise DialogError("the dialog is terminated")
        if method == "BYE" and self.early and not self.is_uac:
            raise DialogError("the callee must not send BYE on an early dialog (§15)")
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1  # §8.1.1.5: any start
        return self._build(method, self.local_seq, via=via, headers=headers, body=body)

    def create_ack(self, invite: Request, *, via: Via | str | None = None,
                   headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Request:
        """The ACK for a 2xx to ``invite`` (§13.2.2.4): built as any request within the
        dialog but with the INVITE's CSeq number and credentials.  Kept as
        :attr:`last_ack` to be sent again for each retransmission of that 2xx."""
        creds = [(name, value) for name in _CREDENTIALS for value in invite.headers.get_all(name)]
        ack = self._build("ACK", invite.cseq.seq, via=via, headers=[*creds, *headers], body=body)
        self.last_ack = ack
        return ack

    def ack_for(self, response: Response) -> Request | None:
        """The ACK already sent for this 2xx (a retransmission, §13.2.2.4), if any."""
        ack = self.last_ack
        if ack is not None and ack.cseq.seq == response.cseq.seq and response.cseq.method == "INVITE":
            return ack
        return None

    # -- responses to our requests ------------------------------------------------------
    def receive_response(self, response: Response) -> None:
        """A response to a request this side sent within (or to create) the dialog."""
        if DialogId.of_response(response) != self.id:
            raise DialogError("the response belongs to another dialog")
        status, method = response.status, response.cseq.method
        if status < 200:
            if self.early and method == "INVITE":
                self._refresh_target(response)  # the remote target may move in early dialogs
            return
        if self.early and method == "INVITE" and response.cseq.seq == self.invite_seq:
            if status >= 300:
                self.terminate()  # §13.2.2.3: a non-2xx final ends every early dialog
                return
            # §13.2.2.4: confirm, recompute the route set from the 2xx, take its Contact
            self.state = DialogState.CONFIRMED
            if self.is_uac:
                self.route_set = list(reversed(response.record_route))
            self._refresh_target(response)
            return
        if method == "BYE" or status in DIALOG_TERMINATING:
            self.terminate()  # §15.1.1; §12.2.1.2, RFC 5057 §5.1
            return
        if 200 <= status < 300 and method in TARGET_REFRESH_METHODS and response.cseq.seq == self.local_seq:
            self._refresh_target(response)  # §12.2.1.2 (not for a late 2xx to an older request)

    def _refresh_target(self, message: Request | Response) -> None:
        contact = _first_contact(message)
        if contact is not None:
            self.remote_target = contact.uri

    # -- requests from the peer (§12.2.2) --------------------------------------------
    def receive_request(self, request: Request) -> Response | None:
        """A request received within the dialog.  Returns the 500 to send when it is
        out of order (§12.2.2), else None after updating the dialog: remote CSeq,
        remote target on a target refresh request, termination on BYE."""
        if DialogId.of_request(request) != self.id:
            raise DialogError("the request belongs to another dialog")
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None  # same CSeq number as the request they belong to
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return request.response(500, "Server Internal Error - CSeq out of order")
        self.remote_seq = seq
        if method in TARGET_REFRESH_METHODS:
            self._refresh_target(request)
        if method == "BYE":
            self.terminate()  # §15.1.2
        return None

    def response_sent(self, response: Response) -> None:
        """This side (the UAS of the dialog-creating INVITE, or of a request within the
        dialog) sent ``response``: a 2xx to the INVITE confirms an early dialog, a
        non-2xx final response to it ends it (§12.1.1, §13.3.1)."""
        if self.early and response.cseq.method == "INVITE" and response.cseq.seq == self.invite_seq:
            if 200 <= response.status < 300:
                self.state = DialogState.CONFIRMED
                contact = _first_contact(response)
                if contact is not None:
                    self.local_target = contact
            elif response.status >= 300:
                self.terminate()


class DialogSet:
    """The dialogs one outgoing INVITE creates (§12.1.2, §13.2.2.4): forking proxies can
    return several early dialogs (distinct To tags) and more than one 2xx."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.dialogs: dict[str, Dialog] = {}  # by remote (To) tag
        self.final: Response | None = None  # the first final response

    def receive_response(self, response: Response) -> Dialog | None:
        """A response to the INVITE; returns the dialog it created or updated, if any."""
        status = response.status
        if status >= 200 and self.final is None:
            self.final = response
        tag = response.to.tag
        if status >= 300:  # §13.2.2.3: every early dialog ends
            for dialog in self.dialogs.values():
                if dialog.early:
                    dialog.terminate()
            return self.dialogs.get(tag) if tag is not None else None
        if tag is None or status == 100:
            return None  # §12.1: only 101-199 and 2xx with a To tag create dialogs
        known = self.dialogs.get(tag)
        if known is None:
            created = self.dialogs[tag] = Dialog.from_uac(self.request, response)
            return created
        known.receive_response(response)
        return known

    @property
    def early(self) -> list[Dialog]:
        return [d for d in self.dialogs.values() if d.early]

    @property
    def confirmed(self) -> list[Dialog]:
        return [d for d in self.dialogs.values() if d.confirmed]

    def terminate_early(self) -> list[Dialog]:
        """End the early dialogs still open (once one is confirmed, if the UA wishes)."""
        ended = self.early
        for dialog in ended:
            dialog.terminate()
        return ended


class DialogTable:
    """Dialogs by id, to find the one an incoming request or response belongs to."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def get(self, id: DialogId) -> Dialog | None:
        return self._dialogs.get(id)

    def for_request(self, request: Request) -> Dialog | None:
        """The dialog of a received request (§12.2.2); None means 481 for a request
        with a To tag (except ACK, which is then dropped)."""
        id = DialogId.of_request(request)
        return self._dialogs.get(id) if id is not None else None

    def for_response(self, response: Response) -> Dialog | None:
        id = DialogId.of_response(response)
        return self._dialogs.get(id) if id is not None else None

    def purge(self) -> list[Dialog]:
        """Forget the terminated dialogs; returns them."""
        gone = [d for d in self._dialogs.values() if d.terminated]
        for dialog in gone:
            del self._dialogs[dialog.id]
        return gone

    def __contains__(self, id: object) -> bool:
        return id in self._dialogs

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __len__(self) -> int:
        return len(self._dialogs)
