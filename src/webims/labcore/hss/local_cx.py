"""Cx between the HSS and the CSCFs of the same process, without Diameter messages.

The lab core runs the HSS beside its I-CSCF and S-CSCF (:func:`webims.labcore.start_labcore`).
Over TCP each Cx request is built AVP by AVP, checked and read by the HSS, and its answer
built and read again by the CSCF: per registration (UAR, MAR, UAR, SAR) that costs more
than the procedures themselves. :class:`LocalCx` runs the same procedures of
:class:`~webims.labcore.hss.cx_handlers.CxHandlers` (TS 29.228 §6.1.1 UAR, §6.1.2 SAR,
§6.3 MAR) on the request's values and gives the CSCF the typed answer it would have read
from the Diameter answer (:mod:`webims.diameter.cx_parse`): the same result codes (a
:class:`~webims.diameter.DiameterError` gives its Result-Code, as its error answer does;
an internal failure DIAMETER_UNABLE_TO_COMPLY), Server-Name, Server-Capabilities,
User-Data and authentication items.

As for the requests of one read from a TCP connection, the requests of one loop
iteration are one batch of the store's row cache, and their registration changes are
written before their answers are delivered (in the next iteration, :meth:`LocalCx.run`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from webims.diameter import (
    AUTH_SCHEME_SIP_DIGEST,
    VENDOR_3GPP,
    DiameterError,
    ExperimentalResultCode,
    MultimediaAuthAnswer,
    Result,
    ResultCode,
    ServerAssignmentAnswer,
    ServerAssignmentType,
    SipAuthDataItem,
    UserAuthorizationAnswer,
    UserAuthorizationType,
)

from .connection import ConnectionClosed
from .cx_handlers import RESYNC_LENGTH, CxHandlers
from .cx_outcomes import Origin, Refused
from .user_data import ImsSubscription

__all__ = ["LocalCx"]

log = logging.getLogger("webims.labcore.hss")

_T = TypeVar("_T")
_UAT_VALUES = frozenset(int(v) for v in UserAuthorizationType)
_SAT_VALUES = frozenset(int(v) for v in ServerAssignmentType)


class LocalCx:
    """Typed UAR, SAR and MAR for CSCFs in this process (see the module docstring).

    Each method returns a future of the answer; it fails with
    :class:`~webims.labcore.hss.connection.ConnectionClosed` only when no answer could
    be made at all (as a lost connection would).
    """

    def __init__(self, cx: CxHandlers) -> None:
        self.cx = cx
        self.subscribers = cx.subscribers
        self.origin_host = cx.config.origin_host
        self.origin_realm = cx.config.origin_realm
        self.requests = 0
        self._pending: list[tuple[asyncio.Future[Any], object | None]] = []
        self._results: dict[tuple[bool, int], Result] = {}

    # --- batches ----------------------------------------------------------------------------------------
    def run(self, procedure: Callable[[], _T | None]) -> asyncio.Future[_T]:
        """Run ``procedure`` in this loop iteration's batch; its value once the batch is stored
        (None, or an exception: :class:`ConnectionClosed`, "the HSS did not answer")."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        if not self._pending:
            self.subscribers.begin_batch()
            loop.call_soon(self._end_batch)
        self.requests += 1
        value: object | None
        try:
            value = procedure()
        except Exception:
            log.exception("HSS: a local Cx request failed")
            value = None
        self._pending.append((future, value))
        return future

    def _end_batch(self) -> None:
        done, self._pending = self._pending, []
        try:
            self.subscribers.end_batch()
        finally:
            for future, value in done:
                if future.done():
                    continue
                if value is None:
                    future.set_exception(ConnectionClosed("the HSS did not answer"))
                else:
                    future.set_result(value)

    # --- answers ----------------------------------------------------------------------------------------
    def _result(self, code: int) -> Result:
        """Result-Code, or Experimental-Result (3GPP) for an ExperimentalResultCode, as the
        HSS's answer carries it (:func:`webims.diameter.base.result_avp`) and a CSCF reads it."""
        experimental = isinstance(code, ExperimentalResultCode)
        key = (experimental, int(code))
        result = self._results.get(key)
        if result is None:
            result = Result(None, int(code), VENDOR_3GPP) if experimental else Result(int(code), None, None)
            self._results[key] = result
        return result

    def _refusal(self, exc: Exception) -> int:
        if isinstance(exc, Refused):
            return exc.result
        if isinstance(exc, DiameterError):
            return exc.result_code  # its error answer carries this Result-Code (RFC 6733 §7.1)
        log.error("HSS: local Cx request failed", exc_info=exc)
        return ResultCode.DIAMETER_UNABLE_TO_COMPLY

    def _uaa(
        self, session_id: str, code: int, name: str | None = None, caps: bool = False
    ) -> UserAuthorizationAnswer:
        return UserAuthorizationAnswer(
            session_id,
            self.origin_host,
            self.origin_realm,
            self._result(code),
            name,
            self.cx.capabilities if caps else None,
        )

    def _saa(
        self,
        session_id: str,
        code: int,
        user_name: str | None = None,
        user_data: str | None = None,
        associated: tuple[str, ...] = (),
        wildcard: str | None = None,
    ) -> ServerAssignmentAnswer:
        return ServerAssignmentAnswer(
            session_id,
            self.origin_host,
            self.origin_realm,
            self._result(code),
            user_name=user_name,
            user_data=user_data.encode() if user_data is not None else None,
            charging_information=None,
            associated_identities=associated,
            loose_route_indication=None,
            associated_registered_identities=(),
            server_name=None,
            wildcarded_public_identity=wildcard,
            priviledged_sender_indication=None,
        )

    def _maa(
        self,
        session_id: str,
        code: int,
        user_name: str | None = None,
        public_identity: str | None = None,
        items: tuple[SipAuthDataItem, ...] = (),
    ) -> MultimediaAuthAnswer:
        return MultimediaAuthAnswer(
            session_id,
            self.origin_host,
            self.origin_realm,
            self._result(code),
            user_name,
            public_identity,
            len(items) if items else None,
            items,
        )

    # --- procedures -------------------------------------------------------------------------------------
    def uar(
        self,
        session_id: str,
        user_name: str,
        public_identity: str,
        visited_network_identifier: str,
        user_authorization_type: int,
    ) -> asyncio.Future[UserAuthorizationAnswer]:
        """UAR (TS 29.228 §6.1.1)."""

        def procedure() -> UserAuthorizationAnswer:
            try:
                if user_authorization_type not in _UAT_VALUES:
                    raise DiameterError(ResultCode.DIAMETER_INVALID_AVP_VALUE, "User-Authorization-Type")
                a = self.cx.authorize(
                    user_name, public_identity, visited_network_identifier, user_authorization_type
                )
            except Exception as exc:
                return self._uaa(session_id, self._refusal(exc))
            return self._uaa(session_id, a.result, a.server_name, a.capabilities)

        return self.run(procedure)

    def sar(
        self,
        session_id: str,
        origin: Origin,
        server_name: str,
        server_assignment_type: int,
        user_name: str | None,
        public_identities: Sequence[str],
        user_data_already_available: int,
    ) -> asyncio.Future[tuple[ServerAssignmentAnswer, ImsSubscription | None]]:
        """SAR (TS 29.228 §6.1.2); ``origin``: the S-CSCF's Origin-Host and Origin-Realm. With the
        answer, what its User-Data reads as when the HSS has that object (else None)."""

        def procedure() -> tuple[ServerAssignmentAnswer, ImsSubscription | None]:
            try:
                if server_assignment_type not in _SAT_VALUES:
                    raise DiameterError(ResultCode.DIAMETER_INVALID_AVP_VALUE, "Server-Assignment-Type")
                a = self.cx.assign(
                    user_name,
                    tuple(public_identities),
                    None,
                    server_name,
                    server_assignment_type,
                    user_data_already_available,
                    origin,
                )
            except Exception as exc:
                return self._saa(session_id, self._refusal(exc)), None
            saa = self._saa(
                session_id,
                a.result,
                a.user_name,
                a.user_data,
                a.associated_identities,
                a.wildcarded_public_identity,
            )
            return saa, a.subscription

        return self.run(procedure)

    def mar(
        self,
        session_id: str,
        origin: Origin,
        server_name: str,
        user_name: str,
        public_identity: str,
        item: SipAuthDataItem,
        count: int,
    ) -> asyncio.Future[MultimediaAuthAnswer]:
        """MAR (TS 29.228 §6.3) with the S-CSCF's SIP-Auth-Data-Item (the scheme it asks for,
        RAND||AUTS in SIP-Authorization for a resynchronisation) and SIP-Number-Auth-Items."""

        def procedure() -> MultimediaAuthAnswer:
            cx = self.cx
            try:
                impi, match = cx.user(user_name, public_identity)
                scheme = cx.scheme_for(impi, item.authentication_scheme or "")
                resync = item.authorization if scheme != AUTH_SCHEME_SIP_DIGEST else None
                if resync is not None and len(resync) != RESYNC_LENGTH:
                    raise DiameterError(ResultCode.DIAMETER_INVALID_AVP_VALUE, "SIP-Authorization")
                data = cx.auth_data(impi, match, public_identity, scheme, resync, server_name, count, origin)
            except Exception as exc:
                return self._maa(session_id, self._refusal(exc))
            if data.digest is not None:
                items: tuple[SipAuthDataItem, ...] = (
                    SipAuthDataItem(authentication_scheme=scheme, item_number=1, digest=data.digest),
                )
            else:
                items = tuple(
                    SipAuthDataItem(
                        authentication_scheme=scheme,
                        item_number=n,
                        authenticate=v.rand + v.autn,
                        authorization=v.xres,
                        confidentiality_key=v.ck,
                        integrity_key=v.ik,
                    )
                    for n, v in enumerate(data.vectors, 1)
                )
            return self._maa(
                session_id, ResultCode.DIAMETER_SUCCESS, data.user_name, data.public_identity, items
            )

        return self.run(procedure)
