"""Cx procedures of the HSS (TS 29.228 §6, TS 29.229 §6.1): request Message in, answer Message out.

:meth:`CxHandlers.handle` answers every Cx request that passed the peer's CCF check
(:func:`webims.diameter.check_message`); it never raises. A :class:`DiameterError`
raised while reading the request (a bad enumerated value, a malformed AVP inside a
Grouped one) becomes the error answer it carries (RFC 6733 §7); any other exception
becomes DIAMETER_UNABLE_TO_COMPLY (5012) and is logged.

Before the procedure: Destination-Host/Realm must be ours (3002/3003, RFC 6733 §6.1.4)
and answer-only AVPs (Result-Code, Experimental-Result, Failed-AVP) in a request get
DIAMETER_AVP_NOT_ALLOWED 5008 with the AVP (RFC 6733 §7.1.5, §10.1).

Procedure table (the TS 29.228 clause beside each one):

====  ===============================================================  ==========
cmd   behaviour                                                        TS 29.228
====  ===============================================================  ==========
UAR   5001 unknown, 5002 IMPI/IMPU not linked, 5003 (Result-Code)      §6.1.1.1
      all identities of the implicit set barred, 5004 visited network
      refused; 2001 FIRST_REGISTRATION + Server-Capabilities, 2002
      SUBSEQUENT + Server-Name (registered, unregistered, or a name
      stored by MAR / *_STORE_SERVER_NAME); de-registration: 2001 +
      Server-Name or 5003 IDENTITY_NOT_REGISTERED; capabilities: 2001
SAR   REGISTRATION/RE_REGISTRATION -> registered (+User-Data),          §6.1.2.1
      UNREGISTERED_USER -> unregistered (+User-Data), *_DEREGISTRATION
      -> not registered (2004 when the name is not kept), AUTHENTICATION_
      FAILURE/TIMEOUT -> name cleared unless registered, NO_ASSIGNMENT ->
      User-Data (5012 from another S-CSCF); 5005 IDENTITY_ALREADY_
      REGISTERED for another S-CSCF, 5007 for unsupported types
LIR   registered/unregistered -> 2001 + Server-Name; not registered     §6.1.4.1
      with unregistered services (or originating) -> 2003 + Server-Name
      or Server-Capabilities; otherwise 5003; wildcard ranges answer
      Wildcarded-Public-Identity
MAR   SIP Digest (also for Kamailio's "Digest-MD5", "Digest",           §6.3.1
      "HTTP_DIGEST_MD5"), Digest-AKAv1/v2-MD5, "Unknown" -> HSS choice;
      RAND||AUTS in SIP-Authorization -> resynchronisation (TS 33.102
      §6.3.5); stores the S-CSCF name (not on resync); 5006 scheme
====  ===============================================================  ==========

S-CSCF name, registration state and SQN live in :class:`SubscriberStore`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import TypedDict

from webims.aka import (
    AuthenticationVector,
    AutsMacFailure,
    generate_vector,
    next_sqn,
    resync_sqn,
    verify_auts,
)
from webims.diameter import (
    AUTH_SCHEME_AKAV1_MD5,
    AUTH_SCHEME_AKAV2_MD5,
    AUTH_SCHEME_SIP_DIGEST,
    CX_APPLICATION_ID,
    CommandCode,
    DeregistrationReason,
    DiameterError,
    ExperimentalResultCode,
    LocationInfoRequest,
    Message,
    ResultCode,
    ServerAssignmentRequest,
    ServerAssignmentType,
    ServerCapabilities,
    SipDigestAuthenticate,
    UserAuthorizationRequest,
    UserAuthorizationType,
    UserDataAlreadyAvailable,
    build_ppr,
    build_rtr,
    error_answer,
    example_avp,
)

from .answers import Answers
from .cx_outcomes import Assignment, AuthData, Authorization, Deregistration, Origin, Refused
from .documents import UserDataDocuments
from .settings import HssConfig
from .store import AkaState, ImpiRecord, ImpuMatch, ImpuRecord, RegState, SubscriberStore

log = logging.getLogger("webims.labcore.hss")

_X = ExperimentalResultCode
_SAT = ServerAssignmentType
_DEREGISTRATIONS = frozenset(
    {
        _SAT.TIMEOUT_DEREGISTRATION,
        _SAT.USER_DEREGISTRATION,
        _SAT.ADMINISTRATIVE_DEREGISTRATION,
        _SAT.DEREGISTRATION_TOO_MUCH_DATA,
    }
)
_STORE_NAME = frozenset(
    {_SAT.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME, _SAT.USER_DEREGISTRATION_STORE_SERVER_NAME}
)
#: Kamailio ims_auth auth_scheme_types[] (5.6) and TS 29.229 §6.3.8 names, lower-cased.
_DIGEST_SCHEMES = frozenset({"sip digest", "digest-md5", "digest", "http_digest_md5", "md5"})
_AKA_SCHEMES = {"digest-akav1-md5": AUTH_SCHEME_AKAV1_MD5, "digest-akav2-md5": AUTH_SCHEME_AKAV2_MD5}
_UNKNOWN_SCHEMES = frozenset({"", "unknown", "hss-selected"})
_SAT_VALUES = frozenset(int(v) for v in ServerAssignmentType)
_UAT_VALUES = frozenset(int(v) for v in UserAuthorizationType)
#: AVPs that only answers carry (RFC 6733 §10.1 gives them "0" for requests).
_ANSWER_ONLY = ("Result-Code", "Experimental-Result", "Failed-AVP", "Error-Reporting-Host")
#: SIP-Authorization of a resynchronisation: RAND (16) || AUTS (14), TS 29.229 §6.3.10.
RESYNC_LENGTH = 30


class _Origin(TypedDict):
    origin_host: str
    origin_realm: str


class CxHandlers:
    """The HSS side of Cx. ``rand_source`` draws RAND for AKA vectors (tests inject a fixed one)."""

    def __init__(
        self,
        subscribers: SubscriberStore,
        config: HssConfig,
        *,
        rand_source: Callable[[], bytes] | None = None,
    ) -> None:
        self.subscribers = subscribers
        self.config = config
        self.rand_source = rand_source if rand_source is not None else (lambda: secrets.token_bytes(16))
        self._origin: _Origin = {"origin_host": config.origin_host, "origin_realm": config.origin_realm}
        #: Server-Capabilities of a UAA/LIA that asks the I-CSCF to select an S-CSCF
        self.capabilities = ServerCapabilities(
            mandatory=config.mandatory_capabilities, server_names=tuple(config.scscf_names)
        )
        self._a = Answers(config.origin_host, config.origin_realm, self.capabilities)
        self._refusals: dict[int, Callable[..., Message]] = {
            CommandCode.USER_AUTHORIZATION: self._a.uaa,
            CommandCode.SERVER_ASSIGNMENT: self._a.saa,
            CommandCode.LOCATION_INFO: self._a.lia,
            CommandCode.MULTIMEDIA_AUTH: self._a.maa,
        }
        self._documents = UserDataDocuments()
        self._handlers: dict[int, Callable[[Message], Message]] = {
            CommandCode.USER_AUTHORIZATION: self.uar,
            CommandCode.SERVER_ASSIGNMENT: self.sar,
            CommandCode.LOCATION_INFO: self.lir,
            CommandCode.MULTIMEDIA_AUTH: self.mar,
        }

    # --- entry point ---------------------------------------------------------------------------------
    def handle(self, request: Message) -> Message | None:
        """The answer to a Cx request (None only for a request that cannot be answered at all)."""
        try:
            if request.application_id != CX_APPLICATION_ID:
                raise DiameterError(ResultCode.DIAMETER_APPLICATION_UNSUPPORTED, "not a Cx request")
            handler = self._handlers.get(request.command_code)
            if handler is None:
                # RTR/PPR go from the HSS to the S-CSCF (TS 29.229 §6.1.9, §6.1.11), never to us.
                raise DiameterError(
                    ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
                    f"the HSS does not serve command {request.command_code}",
                )
            self._check_destination(request)
            self._check_answer_only(request)
            return handler(request)
        except Refused as r:
            return self._refusals[request.command_code](request, result=r.result)
        except DiameterError as exc:
            return error_answer(exc.with_context(request=request), **self._origin)
        except Exception:
            log.exception("Cx request %d failed", request.command_code)
            exc2 = DiameterError(ResultCode.DIAMETER_UNABLE_TO_COMPLY, "internal error", request=request)
            return error_answer(exc2, **self._origin)

    def _check_destination(self, request: Message) -> None:
        """RFC 6733 §6.1.4: a request for another host or realm is not ours to answer."""
        host = request.get_str("Destination-Host")
        if host is not None and host.lower() != self.config.origin_host.lower():
            raise DiameterError(
                ResultCode.DIAMETER_UNABLE_TO_DELIVER, f"Destination-Host {host} is not this HSS"
            )
        realm = request.get_str("Destination-Realm")
        if realm is not None and realm.lower() != self.config.origin_realm.lower():
            raise DiameterError(ResultCode.DIAMETER_REALM_NOT_SERVED, f"realm {realm} not served")

    @staticmethod
    def _check_answer_only(request: Message) -> None:
        """RFC 6733 §7.1.5 (5008) and §10.1: result and error AVPs belong in answers, never in a request."""
        for name in _ANSWER_ONLY:
            avp = request.find(name)
            if avp is not None:
                raise DiameterError(
                    ResultCode.DIAMETER_AVP_NOT_ALLOWED, f"{name} in a request", failed_avp=avp.encode()
                )

    # --- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _enum(request: Message, name: str, value: int, allowed: frozenset[int]) -> None:
        """RFC 6733 §7.1.5: an unknown enumerated value is DIAMETER_INVALID_AVP_VALUE with the AVP."""
        if value not in allowed:
            avp = request.find(name)
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_AVP_VALUE,
                f"{name} {value} is not a known value",
                failed_avp=avp.encode() if avp is not None else None,
            )

    def user(self, impi_name: str, identity: str) -> tuple[ImpiRecord, ImpuMatch]:
        """The IMPI and IMPU of a request: :class:`Refused` 5001 when either is unknown, 5002
        when they are not linked."""
        found = self.subscribers.user(impi_name, identity)
        if found.impi is None or found.match is None:
            raise Refused(_X.DIAMETER_ERROR_USER_UNKNOWN)
        if not found.linked:
            raise Refused(_X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)
        return found.impi, found.match

    def _stored_name(self, impi: str, rec: ImpuRecord) -> str | None:
        """The S-CSCF serving this user: the IMPU's, else one of the IMPI's other identities."""
        if rec.scscf_name:
            return rec.scscf_name
        for other in self.subscribers.impus_of(impi):
            if other.scscf_name and other.reg_state is not RegState.NOT_REGISTERED:
                return other.scscf_name
        return None

    # --- UAR / UAA (TS 29.228 §6.1.1) --------------------------------------------------------------------
    def uar(self, request: Message) -> Message:
        u = UserAuthorizationRequest.from_message(request)
        self._enum(request, "User-Authorization-Type", u.user_authorization_type, _UAT_VALUES)
        vni = u.visited_network_identifier.decode("utf-8", "replace")
        a = self.authorize(u.user_name, u.public_identity, vni, u.user_authorization_type)
        return self._a.uaa(request, result=a.result, server_name=a.server_name, capabilities=a.capabilities)

    def authorize(self, user_name: str, public_identity: str, vni: str, uat: int) -> Authorization:
        """The UAR procedure (§6.1.1.1) on the request's values; raises :class:`Refused`."""
        impi, match = self.user(user_name, public_identity)
        rec = match.record
        if uat != UserAuthorizationType.DE_REGISTRATION:
            if rec.barred and all(x.barred for x in self.subscribers.implicit_set(rec.irs)):
                # §6.1.1.1 step 3: no non-barred identity to register with.
                return Authorization(ResultCode.DIAMETER_AUTHORIZATION_REJECTED)
            if not self._roaming_allowed(impi, vni):
                return Authorization(_X.DIAMETER_ERROR_ROAMING_NOT_ALLOWED)
        if uat == UserAuthorizationType.REGISTRATION_AND_CAPABILITIES:
            return Authorization(ResultCode.DIAMETER_SUCCESS, capabilities=True)
        if uat == UserAuthorizationType.DE_REGISTRATION:
            if rec.reg_state is not RegState.NOT_REGISTERED and rec.scscf_name:
                return Authorization(ResultCode.DIAMETER_SUCCESS, server_name=rec.scscf_name)
            return Authorization(_X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)
        name = self._stored_name(impi.impi, rec)
        if name is not None:
            return Authorization(_X.DIAMETER_SUBSEQUENT_REGISTRATION, server_name=name)
        return Authorization(_X.DIAMETER_FIRST_REGISTRATION, capabilities=True)

    def _roaming_allowed(self, impi: ImpiRecord, vni: str) -> bool:
        """Visited-Network-Identifier policy (TS 29.228 §6.1.1.1 step 4); the home network always passes."""
        home = {impi.realm.lower(), self.config.origin_realm.lower()}
        if vni.lower() in home:
            return True
        allowed = impi.visited_networks or self.config.allowed_visited_networks
        return "*" in allowed or vni.lower() in {a.lower() for a in allowed}

    # --- MAR / MAA (TS 29.228 §6.3) -----------------------------------------------------------------
    def mar(self, request: Message) -> Message:
        # Direct reads (not MultimediaAuthRequest.from_message): this is the hottest command.
        public_identity = request.require_str("Public-Identity")
        impi, match = self.user(request.require_str("User-Name"), public_identity)
        item = request.require_group("SIP-Auth-Data-Item")
        scheme = self.scheme_for(impi, item.get_str("SIP-Authentication-Scheme") or "")
        resync = item.get_bytes("SIP-Authorization") if scheme != AUTH_SCHEME_SIP_DIGEST else None
        if resync is not None and len(resync) != RESYNC_LENGTH:
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_AVP_VALUE,
                f"SIP-Authorization of {len(resync)} bytes is not RAND||AUTS",
                failed_avp=request.require("SIP-Auth-Data-Item").encode(),
            )
        server_name = request.require_str("Server-Name")
        count = request.require_int("SIP-Number-Auth-Items") if scheme != AUTH_SCHEME_SIP_DIGEST else 1
        origin = (request.origin_host, request.origin_realm)
        data = self.auth_data(impi, match, public_identity, scheme, resync, server_name, count, origin)
        if data.digest is not None:
            d = data.digest
            items = [self._a.digest_item(scheme, d.realm, d.qop, d.ha1, d.algorithm)]
        else:
            items = [
                self._a.aka_item(scheme, n, v.rand + v.autn, v.xres, v.ck, v.ik)
                for n, v in enumerate(data.vectors, 1)
            ]
        return self._a.maa(
            request,
            result=ResultCode.DIAMETER_SUCCESS,
            user_name=data.user_name,
            public_identity=data.public_identity,
            items=items,
        )

    def scheme_for(self, impi: ImpiRecord, asked: str) -> str:
        """The SIP-Authentication-Scheme to answer ``asked`` with; :class:`Refused` 5006 if none."""
        scheme = self._choose_scheme(impi, asked.strip().lower())
        if scheme is None:
            raise Refused(_X.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED)
        return scheme

    def auth_data(
        self,
        impi: ImpiRecord,
        match: ImpuMatch,
        public_identity: str,
        scheme: str,
        resync: bytes | None,
        server_name: str,
        count: int,
        origin: Origin,
    ) -> AuthData:
        """The MAR procedure (§6.3.1) once the request is read (``origin``: its Origin-Host and
        -Realm): stores the S-CSCF name, then the SIP Digest item or ``count`` AKA vectors
        (RAND||AUTS in ``resync``: after resynchronisation); raises :class:`Refused`."""
        self._store_server_name(match.record, server_name, origin, resync=resync is not None)
        if scheme == AUTH_SCHEME_SIP_DIGEST:
            ha1 = impi.ha1()
            assert ha1 is not None
            digest = SipDigestAuthenticate(impi.realm, self.config.digest_qop, ha1, impi.digest_algorithm)
            return AuthData(impi.impi, public_identity, scheme, digest=digest)
        vectors = self._vectors(impi.impi, max(1, min(count, self.config.max_auth_items)), resync)
        if vectors is None:
            # TS 33.102 §6.3.5: MAC-S does not verify, the resynchronisation is refused.
            raise Refused(ResultCode.DIAMETER_AUTHORIZATION_REJECTED)
        return AuthData(impi.impi, public_identity, scheme, vectors=tuple(vectors))

    def _choose_scheme(self, impi: ImpiRecord, asked: str) -> str | None:
        aka = impi.has_aka
        digest = impi.has_digest
        if asked in _AKA_SCHEMES:
            return _AKA_SCHEMES[asked] if aka else None
        if asked in _DIGEST_SCHEMES:
            # Kamailio asks "Digest-MD5" (algorithm MD5) but then wants the password in
            # SIP-Authorization; we keep only HA1, so we answer "SIP Digest" + Digest-HA1,
            # which Kamailio 5.6 handles (AUTH_SIP_DIGEST: HA1 used as is).
            return AUTH_SCHEME_SIP_DIGEST if digest else None
        if asked in _UNKNOWN_SCHEMES:
            preferred = self.config.unknown_scheme
            if preferred == AUTH_SCHEME_SIP_DIGEST:
                return AUTH_SCHEME_SIP_DIGEST if digest else (AUTH_SCHEME_AKAV1_MD5 if aka else None)
            return preferred if aka else (AUTH_SCHEME_SIP_DIGEST if digest else None)
        return None

    def _vectors(self, impi: str, count: int, resync: bytes | None) -> list[AuthenticationVector] | None:
        bits = self.config.sqn_ind_bits
        rand_source = self.rand_source

        def generate(state: AkaState) -> tuple[int, list[AuthenticationVector] | None]:
            sqn_he = state.sqn
            if resync is not None:
                try:
                    sqn_ms = verify_auts(state.k, state.opc, resync[:16], resync[16:])
                except AutsMacFailure:
                    log.warning("MAR resynchronisation for %s: AUTS MAC-S does not verify", impi)
                    return sqn_he, None
                sqn_he = resync_sqn(sqn_he, sqn_ms, ind_bits=bits)
            vectors = []
            for _ in range(count):
                sqn_he = next_sqn(sqn_he, ind_bits=bits)
                vectors.append(generate_vector(state.k, state.opc, state.amf, sqn_he, rand=rand_source()))
            return sqn_he, vectors

        vectors: list[AuthenticationVector] | None = None
        result = self.subscribers.aka_update(impi, generate)
        if result is not None:
            vectors = result
        return vectors

    def _store_server_name(self, rec: ImpuRecord, name: str, origin: Origin, *, resync: bool) -> None:
        """§6.3.1, §8.1: MAR stores the S-CSCF name; a resynchronisation never overwrites it."""
        if rec.scscf_name == name or (resync and rec.scscf_name):
            return
        impus = [x.impu for x in self.subscribers.implicit_set(rec.irs)]
        self.subscribers.set_registration(
            impus,
            rec.reg_state,
            scscf_name=name,
            scscf_host=origin[0],
            scscf_realm=origin[1],
        )

    # --- SAR / SAA (TS 29.228 §6.1.2) -----------------------------------------------------------------
    def sar(self, request: Message) -> Message:
        s = ServerAssignmentRequest.from_message(request)
        self._enum(request, "Server-Assignment-Type", s.server_assignment_type, _SAT_VALUES)
        a = self.assign(
            s.user_name,
            s.public_identities,
            s.wildcarded_public_identity,
            s.server_name,
            s.server_assignment_type,
            s.user_data_already_available,
            (request.origin_host, request.origin_realm),
        )
        return self._a.saa(
            request,
            result=a.result,
            user_name=a.user_name,
            user_data=a.user_data,
            associated_identities=a.associated_identities,
            wildcarded_public_identity=a.wildcarded_public_identity,
        )

    def assign(
        self,
        user_name: str | None,
        public_identities: Sequence[str],
        wildcarded_public_identity: str | None,
        server_name: str,
        sat: int,
        user_data_already_available: int,
        origin: Origin,
    ) -> Assignment:
        """The SAR procedure (§6.1.2.1) on the request's values (``origin``: its Origin-Host and
        -Realm, kept with the S-CSCF name); raises :class:`Refused` and :class:`DiameterError`."""
        if sat in (_SAT.AAA_USER_DATA_REQUEST, _SAT.PGW_UPDATE, _SAT.RESTORATION):
            return Assignment(_X.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE)
        identities = list(public_identities)
        if wildcarded_public_identity and not identities:
            identities = [wildcarded_public_identity]
        if sat in (_SAT.REGISTRATION, _SAT.RE_REGISTRATION) and user_name is None:
            raise DiameterError(
                ResultCode.DIAMETER_MISSING_AVP,
                "User-Name is required for a registration (TS 29.228 Table 6.1.2.1)",
                failed_avp=_example("User-Name"),
            )
        impi, targets, wildcard, first_set = self._sar_targets(user_name, identities)
        first = targets[0]
        stored = first.scscf_name
        other_scscf = stored is not None and stored != server_name
        if sat in (_SAT.REGISTRATION, _SAT.RE_REGISTRATION, _SAT.UNREGISTERED_USER):
            if other_scscf and first.reg_state is not RegState.NOT_REGISTERED:
                return Assignment(_X.DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED)
            state = RegState.REGISTERED
            if sat == _SAT.UNREGISTERED_USER and first.reg_state is not RegState.REGISTERED:
                state = RegState.UNREGISTERED
            self._assign(origin, targets, state, server_name)
            send = user_data_already_available == UserDataAlreadyAvailable.USER_DATA_NOT_AVAILABLE
            return self._saa_with_data(public_identities, impi, first, wildcard, first_set, send=send)
        if sat == _SAT.NO_ASSIGNMENT:
            if stored != server_name:
                return Assignment(ResultCode.DIAMETER_UNABLE_TO_COMPLY)
            return self._saa_with_data(public_identities, impi, first, wildcard, first_set, send=True)
        if other_scscf and first.reg_state is not RegState.NOT_REGISTERED:
            # A de-registration from an S-CSCF that does not serve the user changes nothing.
            return Assignment(ResultCode.DIAMETER_UNABLE_TO_COMPLY)
        result: int = ResultCode.DIAMETER_SUCCESS
        if sat in _DEREGISTRATIONS:
            self._clear(targets, keep_name=None)
        elif sat in _STORE_NAME:
            if self.config.keep_server_name:
                self._clear(targets, keep_name=server_name, origin=origin)
            else:
                self._clear(targets, keep_name=None)
                result = _X.DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED
        elif sat in (_SAT.AUTHENTICATION_FAILURE, _SAT.AUTHENTICATION_TIMEOUT):
            # Registered users keep their S-CSCF; otherwise the name MAR stored is removed.
            unregistered = [t for t in targets if t.reg_state is RegState.NOT_REGISTERED]
            self._clear(unregistered, keep_name=None)
        return Assignment(result, user_name=impi.impi if user_name else None)

    def _sar_targets(
        self, user_name: str | None, identities: list[str]
    ) -> tuple[ImpiRecord, list[ImpuRecord], str | None, list[ImpuRecord] | None]:
        """The IMPI, the IMPUs (whole implicit sets) a SAR acts on, the wildcard matched, and the
        rows of the first identity's implicit set in provisioning order (None without identities)."""
        if not identities:
            impi = self.subscribers.impi(user_name) if user_name is not None else None
            if user_name is not None and impi is None:
                raise Refused(_X.DIAMETER_ERROR_USER_UNKNOWN)
            if impi is None:
                raise DiameterError(
                    ResultCode.DIAMETER_MISSING_AVP,
                    "a SAR needs Public-Identity or User-Name",
                    failed_avp=_example("Public-Identity"),
                )
            return impi, self.subscribers.impus_of(impi.impi), None, None
        impi = None
        first_set: list[ImpuRecord] | None = None
        targets: list[ImpuRecord] = []
        wildcard: str | None = None
        seen_sets: set[str] = set()
        for n, identity in enumerate(identities):
            if user_name is not None:
                found = self.subscribers.user(user_name, identity)  # one query: IMPI, IMPU, link
                if found.impi is None or found.match is None:
                    raise Refused(_X.DIAMETER_ERROR_USER_UNKNOWN)
                if not found.linked:
                    raise Refused(_X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)
                impi, match = found.impi, found.match
            else:
                lookup = self.subscribers.lookup_impu(identity)
                if lookup is None:
                    raise Refused(_X.DIAMETER_ERROR_USER_UNKNOWN)
                match = lookup
                if impi is None:
                    owners = self.subscribers.impis_of(match.record.impu)
                    impi = self.subscribers.impi(owners[0]) if owners else None
                    if impi is None:
                        raise Refused(_X.DIAMETER_ERROR_USER_UNKNOWN)
                elif not self.subscribers.is_linked(impi.impi, match.record.impu):
                    raise Refused(_X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)
            if n == 0:
                wildcard = match.wildcard
            if match.record.irs in seen_sets:
                continue
            seen_sets.add(match.record.irs)
            irs = self.subscribers.implicit_set(match.record.irs)
            if first_set is None:
                first_set = irs
            # The identity named in the request goes first (its state decides).
            named = match.record.impu
            targets += [r for r in irs if r.impu == named] + [r for r in irs if r.impu != named]
        assert impi is not None
        return impi, targets, wildcard, first_set

    def _assign(self, origin: Origin, targets: list[ImpuRecord], state: RegState, name: str) -> None:
        host, realm = origin
        if all(
            t.reg_state is state and t.scscf_name == name and t.scscf_host == host and t.scscf_realm == realm
            for t in targets
        ):
            return  # nothing changes (re-registration): no write
        self.subscribers.set_registration(
            [t.impu for t in targets], state, scscf_name=name, scscf_host=host, scscf_realm=realm
        )

    def _clear(
        self, targets: list[ImpuRecord], *, keep_name: str | None, origin: Origin | None = None
    ) -> None:
        if not targets:
            return
        host = origin[0] if origin is not None and keep_name else None
        realm = origin[1] if origin is not None and keep_name else None
        self.subscribers.set_registration(
            [t.impu for t in targets],
            RegState.NOT_REGISTERED,
            scscf_name=keep_name,
            scscf_host=host,
            scscf_realm=realm,
        )

    def _saa_with_data(
        self,
        public_identities: Sequence[str],
        impi: ImpiRecord,
        first: ImpuRecord,
        wildcard: str | None,
        rows: list[ImpuRecord] | None,
        *,
        send: bool,
    ) -> Assignment:
        specific = public_identities[0] if wildcard is not None and public_identities else None
        data, subscription = None, None
        if send:
            rows = self.subscribers.implicit_set(first.irs) if rows is None else rows
            data, subscription = self._documents.subscription(impi, rows, specific)
        owners = self.subscribers.impis_of(first.impu)
        return Assignment(
            ResultCode.DIAMETER_SUCCESS,
            user_name=impi.impi,
            user_data=data,
            associated_identities=tuple(owners) if len(owners) > 1 else (),
            wildcarded_public_identity=wildcard,
            subscription=subscription,
        )

    def user_data(
        self,
        impi: ImpiRecord,
        irs: str,
        *,
        specific_identity: str | None = None,
        records: Sequence[ImpuRecord] | None = None,
    ) -> str:
        """The TS 29.228 Annex E document for the implicit registration set ``irs`` of ``impi``.

        ``specific_identity``: an identity that matched a wildcarded range; it is listed
        first as a NON_DISTINCT_IMPU carrying its WildcardedIMPU (so an S-CSCF that only
        reads Identity, like Kamailio's, still finds it). ``records``: the set's rows when
        the caller already has them, in provisioning order.
        """
        rows = self.subscribers.implicit_set(irs) if records is None else records
        return self._documents.document(impi, rows, specific_identity)

    # --- LIR / LIA (TS 29.228 §6.1.4) -----------------------------------------------------------------
    def lir(self, request: Message) -> Message:
        li = LocationInfoRequest.from_message(request)
        if li.user_authorization_type is not None:
            self._enum(request, "User-Authorization-Type", li.user_authorization_type, _UAT_VALUES)
        match = self.subscribers.lookup_impu(li.public_identity)
        if match is None:
            return self._a.lia(request, result=_X.DIAMETER_ERROR_USER_UNKNOWN)
        rec = match.record
        wildcard = match.wildcard
        if li.user_authorization_type == UserAuthorizationType.REGISTRATION_AND_CAPABILITIES:
            return self._a.lia(
                request,
                result=ResultCode.DIAMETER_SUCCESS,
                capabilities=True,
                wildcarded_public_identity=wildcard,
            )
        if rec.reg_state is not RegState.NOT_REGISTERED and rec.scscf_name:
            return self._a.lia(
                request,
                result=ResultCode.DIAMETER_SUCCESS,
                server_name=rec.scscf_name,
                wildcarded_public_identity=wildcard,
            )
        if rec.unreg_services or li.originating_request:
            if rec.scscf_name:
                return self._a.lia(
                    request,
                    result=_X.DIAMETER_UNREGISTERED_SERVICE,
                    server_name=rec.scscf_name,
                    wildcarded_public_identity=wildcard,
                )
            return self._a.lia(
                request,
                result=_X.DIAMETER_UNREGISTERED_SERVICE,
                capabilities=True,
                wildcarded_public_identity=wildcard,
            )
        return self._a.lia(request, result=_X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)

    # --- HSS-initiated requests: RTR (§6.1.3) and PPR (§6.2.2) ---------------------------------------
    def deregistration(
        self,
        impi_name: str,
        *,
        session_id: str,
        reason: DeregistrationReason,
        impus: Sequence[str] = (),
    ) -> Deregistration | None:
        """The RTR for ``impi`` toward its S-CSCF, or None when none of its identities is assigned.

        ``impus`` limits it to those identities (with their implicit sets); by default
        every assigned identity of the IMPI is de-registered.
        """
        impi = self.subscribers.impi(impi_name)
        if impi is None:
            return None
        assigned = [r for r in self.subscribers.impus_of(impi.impi) if r.scscf_name and r.scscf_host]
        if impus:
            wanted_sets = {r.irs for r in assigned if r.impu in impus}
            assigned = [r for r in assigned if r.irs in wanted_sets]
        if not assigned:
            return None
        host = assigned[0].scscf_host
        realm = assigned[0].scscf_realm or self.config.origin_realm
        assert host is not None
        targets = [r for r in assigned if r.scscf_host == host]
        rtr = build_rtr(
            session_id=session_id,
            destination_host=host,
            destination_realm=realm,
            user_name=impi.impi,
            deregistration_reason=reason,
            # Listed even when all are meant (TS 29.229 allows it): Kamailio 5.6 does not
            # answer an RTR that carries only User-Name.
            public_identities=[r.impu for r in targets],
            **self._origin,
        )
        return Deregistration(rtr, host, tuple(r.impu for r in targets))

    def registration_terminated(self, impus: Sequence[str]) -> None:
        """After a successful RTA: the identities are not registered and have no S-CSCF (§6.1.3.1)."""
        self.subscribers.set_registration(impus, RegState.NOT_REGISTERED, scscf_name=None)

    def profile_push(self, impi_name: str, *, session_id: str) -> tuple[Message, str] | None:
        """A PPR with the current User-Data for the S-CSCF serving ``impi`` (§6.2.2), or None."""
        impi = self.subscribers.impi(impi_name)
        if impi is None:
            return None
        assigned = [r for r in self.subscribers.impus_of(impi.impi) if r.scscf_name and r.scscf_host]
        if not assigned:
            return None
        first = assigned[0]
        assert first.scscf_host is not None
        ppr = build_ppr(
            session_id=session_id,
            destination_host=first.scscf_host,
            destination_realm=first.scscf_realm or self.config.origin_realm,
            user_name=impi.impi,
            user_data=self.user_data(impi, first.irs),
            **self._origin,
        )
        return ppr, first.scscf_host


def _example(name: str) -> bytes:
    return example_avp(name).encode()
