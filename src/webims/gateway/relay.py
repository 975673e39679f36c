"""Requests within a call that the B2BUA relays to its other leg as they are (issue 7).

Besides the offer/answer and session-timer requests that :mod:`.b2bua` handles itself,
a call's dialogs carry requests the gateway only passes across, each on the other
leg's dialog (its Call-ID, tags, route set and its own CSeq numbers, RFC 3261
§12.2.1.1), the answer coming back on the transaction it belongs to:

- REFER (RFC 3515 §2.4.2): ``Refer-To`` passed on, and ``Referred-By`` (RFC 3892)
  kept; a pool WIC naming itself by its web address becomes its allocated IMPU (seed
  004 §6.X.2.2.5), as in From. A ``Replaces`` (RFC 3891) inside a ``Refer-To`` that
  names a dialog of the gateway (attended transfer between two calls of the gateway)
  is rewritten to that call's dialog on the far side. ``Target-Dialog`` (RFC 4538)
  naming the leg's own dialog is rewritten to the other leg's dialog, else dropped;
- NOTIFY (RFC 6665 §4.1.2, the refer event package's ``message/sipfrag`` of RFC 3515
  §2.4.5) with ``Event`` and ``Subscription-State``; the ``id`` of ``Event: refer``
  (the REFER's CSeq number, RFC 3515 §2.4.6) becomes the number of the REFER the
  other side sent;
- SUBSCRIBE within the dialog (RFC 6665 §4.1.2.1; ``Event``, ``Expires``, ``Accept``);
- MESSAGE within the dialog (RFC 3428 §4) and INFO (RFC 6086 §4.2: DTMF
  ``application/dtmf-relay`` or any Info-Package) with their bodies;
- OPTIONS within the dialog (RFC 3261 §11: a probe of the far end; our Allow in the 2xx).

Toward the IMS the identity is asserted as for the dialog's other requests
(P-Asserted-Identity as the P-CSCF, P-Preferred-Identity behind one, TS 24.229
§5.2.6.3.3; a WIC's own assertion never passes, RFC 3325 §5); toward a WIC the
IMS's P-Asserted-Identity passes unless the peer asked for privacy (RFC 3325 §7).
A 408 or 481 answer on the other leg ends the call (RFC 3261 §12.2.1.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from webims.endpoint import IncomingRequest
from webims.sip import DialogError, DialogId, NameAddr, ParseError, Request, parse_name_addr, parse_uri

from .identity import assert_identity, same_identity, strip_untrusted

if TYPE_CHECKING:
    from .b2bua import Call, Leg

__all__ = ["RELAYED_METHODS", "relay_request"]

#: Methods passed across the B2BUA within a call (module docstring).
RELAYED_METHODS = frozenset({"REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "INFO", "OPTIONS"})

#: Header fields of a relayed request that go on to the other leg (the rest is the dialog's).
REQUEST_HEADERS = (
    "Refer-To", "Referred-By", "Refer-Sub", "Event", "Subscription-State", "Expires", "Accept",
    "Accept-Encoding", "Accept-Language", "Allow-Events", "Info-Package", "Recv-Info",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Type", "Require",
    "Supported", "Reason", "Subject", "Priority", "Date", "In-Reply-To",
)  # fmt: skip
#: What the answer brings back to the leg the request came from.
RESPONSE_HEADERS = (
    "Warning", "Retry-After", "Content-Type", "Content-Disposition", "Expires", "Min-Expires",
    "Refer-Sub", "Allow-Events", "Accept", "Unsupported", "Require", "Supported", "Reason",
    "Recv-Info", "Error-Info",
)  # fmt: skip
#: Methods whose 2xx carries our Contact (target refresh requests, RFC 6665 §4.1.2.1, §4.1.2.2).
_CONTACT_IN_2XX = frozenset({"SUBSCRIBE", "NOTIFY", "REFER"})


async def relay_request(call: Call, leg: Leg, incoming: IncomingRequest) -> None:
    """Pass ``incoming`` (received on ``leg``) to the other leg and its answer back."""
    from .b2bua import ALLOW, Side, reason_header

    request = incoming.request
    other = leg.other
    if other.dialog is None or other.dialog.terminated:
        incoming.respond(481, "Call/Transaction Does Not Exist (the other side has no dialog)")
        return
    headers = [(n, v) for n in REQUEST_HEADERS for v in request.headers.get_all(n)]
    headers = [(n, v) for n, v in headers if n.lower() != "content-type" or request.body]
    headers = _map_headers(call, leg, headers)
    if request.method == "REFER":
        headers.append(("Contact", other.contact()))  # REFER makes a subscription (RFC 3515 §2.4.1)
    try:
        relayed = other.dialog.create_request(request.method, headers=headers, body=request.body)
    except DialogError:
        incoming.respond(481)
        return
    if request.method == "REFER":
        call.refer_ids[(other.side, relayed.cseq.seq)] = request.cseq.seq
    if other.side is Side.IMS:
        strip_untrusted(relayed)
        assert_identity(relayed, call.identity, as_pcscf=call.mgr.gw.ims.as_pcscf)
    elif not _private(request):
        for value in request.headers.get_all("P-Asserted-Identity"):
            relayed.headers.add("P-Asserted-Identity", value)
    response = await other.send(relayed)
    back = [(n, v) for n in RESPONSE_HEADERS for v in response.headers.get_all(n)]
    if 200 <= response.status < 300 and request.method in _CONTACT_IN_2XX:
        back.append(("Contact", leg.contact()))
    if request.method == "OPTIONS":
        back.append(("Allow", ALLOW))
    body = response.body if response.headers.get("Content-Type") else b""
    if not body:
        back = [(n, v) for n, v in back if n.lower() != "content-type"]
    incoming.respond(response.status, response.reason, headers=back, body=body)
    if response.status in (408, 481) and not call.ended:
        await call.end(reason_header(response.status, response.reason), failed=other)


def _private(request: Request) -> bool:
    values = {p.strip().lower() for v in request.headers.get_all("Privacy") for p in v.split(";")}
    return bool(values & {"id", "header", "user"})


def _map_headers(call: Call, leg: Leg, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in headers:
        key = name.lower()
        if key == "referred-by":
            value = _referred_by(call, leg, value)
        elif key == "refer-to":
            value = _refer_to(call, value)
        elif key == "event":
            value = _refer_event_id(call, leg, value)
        elif key == "target-dialog":
            mapped = _target_dialog(leg, value)
            if mapped is None:
                continue
            value = mapped
        out.append((name, value))
    return out


def _refer_event_id(call: Call, leg: Leg, value: str) -> str:
    """``Event: refer;id=N`` names the REFER by its CSeq number (RFC 3515 §2.4.6), which is not
    the same on the two legs: the number of the REFER the other side sent."""
    package, sep, params = value.partition(";")
    if not sep or package.strip().lower() != "refer":
        return value
    out = []
    for param in params.split(";"):
        name, eq, number = param.partition("=")
        if eq and name.strip().lower() == "id" and number.strip().isdigit():
            original = call.refer_ids.get((leg.side, int(number.strip())))
            if original is not None:
                param = f"{name}={original}"
        out.append(param)
    return package + sep + ";".join(out)


def _referred_by(call: Call, leg: Leg, value: str) -> str:
    """Pool mode: the WIC's web address in Referred-By becomes its IMPU (as From, seed 004 §6.X.2.2.5)."""
    from .b2bua import Side

    binding = call.binding
    if leg.side is not Side.WIC or binding.mode != "pool":
        return value
    try:
        referrer = parse_name_addr(value)
    except ParseError:
        return value
    if not same_identity(str(referrer.uri), binding.aor):
        return value
    try:
        impu = parse_uri(binding.impu)
    except ParseError:
        return value
    return str(NameAddr(impu, referrer.display, dict(referrer.params)))


def _refer_to(call: Call, value: str) -> str:
    """A Replaces (RFC 3891 §6.1) embedded in Refer-To that names a dialog of the gateway's:
    the same call's dialog on the far side (attended transfer across the B2BUA)."""
    start = value.find("?")
    if start < 0 or "replaces=" not in value.lower():
        return value
    end = value.find(">", start)
    end = len(value) if end < 0 else end
    query = value[start + 1 : end]
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, _, raw = part.partition("=")
        if name.lower() != "replaces":
            continue
        mapped = _map_replaces(call, unquote(raw))
        if mapped is not None:
            parts[i] = f"{name}={quote(mapped, safe='')}"
    return value[: start + 1] + "&".join(parts) + value[end:]


def _map_replaces(call: Call, replaces: str) -> str | None:
    """``call-id;to-tag=..;from-tag=..`` of a leg of any of the gateway's calls -> the other leg's."""
    call_id, *params = [p.strip() for p in replaces.split(";")]
    tags = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params)}
    to_tag, from_tag = tags.get("to-tag"), tags.get("from-tag")
    if not to_tag or not from_tag:
        return None
    for dialog_id in (DialogId(call_id, to_tag, from_tag), DialogId(call_id, from_tag, to_tag)):
        found = call.mgr.dialogs.get(dialog_id)
        if found is None:
            continue
        far = found[1].other.dialog
        if far is None:
            return None
        extra = [p for p in params if p.partition("=")[0].strip().lower() not in ("to-tag", "from-tag")]
        # seen from the far side's peer: its own tag is the remote tag of our dialog with it
        out = f"{far.id.call_id};to-tag={far.id.remote_tag};from-tag={far.id.local_tag}"
        return ";".join([out, *extra])
    return None


def _target_dialog(leg: Leg, value: str) -> str | None:
    """Target-Dialog (RFC 4538 §7) naming ``leg``'s dialog -> the other leg's; else None (dropped)."""
    dialog, far = leg.dialog, leg.other.dialog
    if dialog is None or far is None:
        return None
    call_id, *params = [p.strip() for p in value.split(";")]
    tags = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params)}
    if call_id != dialog.id.call_id or {tags.get("local-tag"), tags.get("remote-tag")} != {
        dialog.id.local_tag,
        dialog.id.remote_tag,
    }:
        return None
    # the tags as the sender (now the gateway on the far leg) sees them, RFC 4538 §7
    return f"{far.id.call_id};local-tag={far.id.local_tag};remote-tag={far.id.remote_tag}"
