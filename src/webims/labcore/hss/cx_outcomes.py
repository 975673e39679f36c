"""What the HSS's Cx procedures decide, before it becomes a Diameter message (TS 29.228 §6).

:class:`~webims.labcore.hss.cx_handlers.CxHandlers` turns these into UAA, SAA and MAA
messages; :class:`~webims.labcore.hss.local_cx.LocalCx` into the typed answers a CSCF in
the same process reads (:mod:`webims.diameter.cx_parse`), without a Diameter message.
"""

from __future__ import annotations

from dataclasses import dataclass

from webims.aka import AuthenticationVector
from webims.diameter import Message, SipDigestAuthenticate

from .user_data import ImsSubscription

__all__ = ["Assignment", "AuthData", "Authorization", "Deregistration", "Origin", "Refused"]

#: Origin-Host and Origin-Realm of a request (the S-CSCF's, stored with its name).
Origin = tuple[str | None, str | None]


class Refused(Exception):
    """A procedure ends with this Result-Code (or Experimental-Result-Code) and no other AVP."""

    def __init__(self, result: int) -> None:
        super().__init__(f"refused with {result}")
        self.result = result


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a UAA carries (TS 29.228 §6.1.1): the result, Server-Name or Server-Capabilities."""

    result: int
    server_name: str | None = None
    capabilities: bool = False


@dataclass(frozen=True, slots=True)
class Assignment:
    """What an SAA carries (TS 29.228 §6.1.2); ``user_data`` is the Annex E document."""

    result: int
    user_name: str | None = None
    user_data: str | None = None
    associated_identities: tuple[str, ...] = ()
    wildcarded_public_identity: str | None = None
    #: what reading ``user_data`` gives, when the HSS has it (``documents.reads_back``)
    subscription: ImsSubscription | None = None


@dataclass(frozen=True, slots=True)
class AuthData:
    """What a successful MAA carries (TS 29.228 §6.3): the SIP Digest item or the AKA vectors."""

    user_name: str
    public_identity: str
    scheme: str
    digest: SipDigestAuthenticate | None = None
    vectors: tuple[AuthenticationVector, ...] = ()


@dataclass(frozen=True, slots=True)
class Deregistration:
    """An RTR to send (TS 29.228 §6.1.3) and the identities to mark not registered once answered."""

    request: Message
    destination_host: str
    impus: tuple[str, ...]
