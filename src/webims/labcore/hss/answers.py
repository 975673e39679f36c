"""Cx answers built from cached AVPs: the same bytes as :mod:`webims.diameter.cx`'s builders, faster.

``build_uaa`` & co. re-encode the AVPs every answer shares (Vendor-Specific-Application-Id,
Auth-Session-State, Origin-Host/Realm, the result, Server-Capabilities) and the SIP
Digest data item of a user. The HSS answers thousands of requests per second, so
:class:`Answers` encodes those once. The AVP order is the builders' (TS 29.229 §6.1
command formats); tests/labcore/test_hss_answers.py checks byte equality with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from webims.diameter import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    AuthSessionState,
    Avp,
    ExperimentalResultCode,
    Message,
    ServerCapabilities,
    SipAuthDataItem,
    SipDigestAuthenticate,
    make_answer,
    make_avp,
    result_avp,
    vendor_specific_application_id,
)
from webims.diameter.avp import AvpValue
from webims.diameter.base import identity_avp, origin_avps
from webims.diameter.cx_avps import identities_avp


def _header(name: str, sample: AvpValue) -> tuple[int, int, int]:
    """(code, flags, vendor) of AVP ``name`` as make_avp sets them (dictionary V/M rules)."""
    a = make_avp(name, sample)
    return a.code, a.flags, a.vendor_id


def _avp(header: tuple[int, int, int], data: bytes) -> Avp:
    return Avp(header[0], header[1], header[2], data)


_SESSION_ID_FLAGS = _header("Session-Id", "")[1]
_ITEM = _header("SIP-Auth-Data-Item", [])
_ITEM_NUMBER = _header("SIP-Item-Number", 0)
_AUTHENTICATE = _header("SIP-Authenticate", b"")
_AUTHORIZATION = _header("SIP-Authorization", b"")
_CK = _header("Confidentiality-Key", b"")
_IK = _header("Integrity-Key", b"")

#: Digest items kept (one per user); the cache is simply emptied when full.
MAX_DIGEST_ITEMS = 10_000


class Answers:
    """Answer factory for one HSS identity (Origin-Host, Origin-Realm)."""

    def __init__(self, origin_host: str, origin_realm: str, capabilities: ServerCapabilities) -> None:
        self._vsai = vendor_specific_application_id(VENDOR_3GPP, CX_APPLICATION_ID)
        self._state = make_avp("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)
        self._origin = tuple(origin_avps(origin_host, origin_realm))
        self._capabilities = capabilities.to_avp()
        self._results: dict[tuple[bool, int], Avp] = {}
        self._digest: dict[tuple[str, str, str, str, str | None], Avp] = {}
        self._schemes: dict[str, Avp] = {}

    def _result(self, result: int) -> Avp:
        key = (isinstance(result, ExperimentalResultCode), int(result))
        avp = self._results.get(key)
        if avp is None:
            avp = self._results[key] = result_avp(result)
        return avp

    def answer(self, request: Message, result: int, body: Iterable[Avp] = ()) -> Message:
        """``cx_answer``: Session-Id, VSAI, Result-Code/Experimental-Result, Auth-Session-State, Origin-*."""
        session = request.require("Session-Id")
        if session.flags != _SESSION_ID_FLAGS:  # e.g. Kamailio's, without the M bit: ours has it
            session = make_avp("Session-Id", request.require_str("Session-Id"))
        else:
            request.require_str("Session-Id")  # the same check (5004 for bad UTF-8) as building it
        return make_answer(
            request, (session, self._vsai, self._result(result), self._state, *self._origin, *body)
        )

    # --- per command (the optional AVPs in the order of webims.diameter.cx) ---------------------------
    def uaa(
        self, request: Message, *, result: int, server_name: str | None = None, capabilities: bool = False
    ) -> Message:
        body = []
        if server_name is not None:
            body.append(identity_avp("Server-Name", server_name))
        if capabilities:
            body.append(self._capabilities)
        return self.answer(request, result, body)

    def lia(
        self,
        request: Message,
        *,
        result: int,
        server_name: str | None = None,
        capabilities: bool = False,
        wildcarded_public_identity: str | None = None,
    ) -> Message:
        body = []
        if server_name is not None:
            body.append(identity_avp("Server-Name", server_name))
        if capabilities:
            body.append(self._capabilities)
        if wildcarded_public_identity is not None:
            body.append(make_avp("Wildcarded-Public-Identity", wildcarded_public_identity))
        return self.answer(request, result, body)

    def maa(
        self,
        request: Message,
        *,
        result: int,
        user_name: str | None = None,
        public_identity: str | None = None,
        items: Sequence[Avp] = (),
    ) -> Message:
        body = []
        if user_name is not None:
            body.append(make_avp("User-Name", user_name))
        if public_identity is not None:
            body.append(make_avp("Public-Identity", public_identity))
        if items:
            body.append(make_avp("SIP-Number-Auth-Items", len(items)))
            body += items
        return self.answer(request, result, body)

    def saa(
        self,
        request: Message,
        *,
        result: int,
        user_name: str | None = None,
        user_data: str | None = None,
        associated_identities: Sequence[str] = (),
        wildcarded_public_identity: str | None = None,
    ) -> Message:
        body = []
        if user_name is not None:
            body.append(make_avp("User-Name", user_name))
        if user_data is not None:
            body.append(make_avp("User-Data", user_data))
        if associated_identities:
            body.append(identities_avp("Associated-Identities", associated_identities))
        if wildcarded_public_identity is not None:
            body.append(make_avp("Wildcarded-Public-Identity", wildcarded_public_identity))
        return self.answer(request, result, body)

    def aka_item(self, scheme: str, number: int, rand_autn: bytes, xres: bytes, ck: bytes, ik: bytes) -> Avp:
        """SIP-Auth-Data-Item of one AKA vector (TS 29.229 §6.3.13): the same bytes as
        ``SipAuthDataItem(...).to_avp()``, from pre-computed AVP headers."""
        scheme_avp = self._schemes.get(scheme)
        if scheme_avp is None:
            scheme_avp = self._schemes[scheme] = make_avp("SIP-Authentication-Scheme", scheme)
        parts = [
            _avp(_ITEM_NUMBER, number.to_bytes(4, "big")),
            scheme_avp,
            _avp(_AUTHENTICATE, rand_autn),
            _avp(_AUTHORIZATION, xres),
            _avp(_CK, ck),
            _avp(_IK, ik),
        ]
        return _avp(_ITEM, b"".join(a.encode() for a in parts))

    def digest_item(self, scheme: str, realm: str, qop: str, ha1: str, algorithm: str | None) -> Avp:
        """SIP-Auth-Data-Item {SIP-Item-Number 1, scheme, SIP-Digest-Authenticate} (TS 29.229 §6.3.13)."""
        key = (scheme, realm, qop, ha1, algorithm)
        avp = self._digest.get(key)
        if avp is None:
            if len(self._digest) >= MAX_DIGEST_ITEMS:
                self._digest.clear()
            digest = SipDigestAuthenticate(realm=realm, qop=qop, ha1=ha1, algorithm=algorithm)
            avp = SipAuthDataItem(authentication_scheme=scheme, item_number=1, digest=digest).to_avp()
            self._digest[key] = avp
        return avp
