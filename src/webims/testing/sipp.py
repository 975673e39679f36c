"""Run SIPp (Debian ``sip-tester``) scenarios for tests: one bounded call, its logs and exit status.

One runner for every SIPp test (the Kamailio CSCFs, the lab core, the gateway),
synchronous or from asyncio, and the IMS scenarios they share, built as text so that
tests can vary headers and credentials::

    sipp = Sipp(tmp_path, "register-alice", register_scenario(), icscf_address,
                service="alice", keys={"realm": "ims.test", "impi": "alice@ims.test"},
                extra=["-au", "alice@ims.test", "-ap", "secret"])
    result = sipp.run()                  # or: await sipp.run_async() (the loop keeps running)
    assert result.ok, result.report()

A run is one call (``-m 1``) bounded twice: SIPp's own ``-timeout`` (with
``-timeout_error``), and the test's wait ``timeout + 10`` s after which the process
is stopped (:class:`~webims.testing.process.ManagedProcess`: SIGTERM, then SIGKILL
to its session). Ports come from :func:`webims.testing.ports.free_port`. SIPp's
screen (its final statistics) goes to ``<name>_screen.log``, ``-trace_msg`` and
``-trace_err`` to ``<name>_messages.log`` / ``<name>_errors.log`` in the work
directory; :class:`SippResult` holds their tails and the exit status.

The scenarios play UE + P-CSCF on Mw: each REGISTER carries what a P-CSCF adds
(TS 24.229 §5.2.2): Path, ``Supported: path``, P-Visited-Network-ID.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webims.aka.milenage import Milenage

from .ports import free_port, free_port_block
from .process import ManagedProcess

__all__ = [
    "Sipp",
    "SippError",
    "SippNotInstalled",
    "SippResult",
    "call_uac_scenario",
    "call_uas_scenario",
    "message_uac_scenario",
    "message_uas_scenario",
    "register_scenario",
    "register_uac",
    "require_sipp",
    "sipp_safe_rands",
    "subscribe_reg_scenario",
]


def sipp_safe_rands(k: bytes, op: bytes) -> Callable[[], bytes]:
    """An HSS ``rand_source`` for an AKA subscriber that SIPp answers: random RANDs whose RES
    (MILENAGE f2, with this K and OP) has no 0x00 byte. SIPp 3.6.1 computes the AKAv1-MD5
    response with RES as a C string (RFC 3310 §3.4 makes RES the password, as octets), so it
    answers wrongly (403) for about 3 % of RANDs, those whose RES holds a zero byte."""
    milenage = Milenage.from_op(k, op)

    def draw() -> bytes:
        while True:
            rand = secrets.token_bytes(16)
            if b"\0" not in milenage.f2(rand):
                return rand

    return draw


class SippError(RuntimeError):
    """SIPp is missing or could not be started; the message has its screen."""


class SippNotInstalled(SippError):
    pass


def require_sipp() -> str:
    """The sipp program; :class:`SippNotInstalled` (a failure, never a skip) when it is missing."""
    path = shutil.which("sipp")
    if path is None:
        raise SippNotInstalled("sipp is not installed: apt-get install sip-tester (scripts/packages.txt)")
    return path


@dataclass(frozen=True)
class SippResult:
    """How one SIPp run ended: exit status 0 means every step of the scenario matched."""

    returncode: int
    #: The tail of SIPp's screen (its statistics) and of its errors log.
    output: str
    #: The tail of its messages log (``-trace_msg``): every message sent and received.
    messages: str
    #: The test's own bound ran out and the process was stopped.
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def report(self) -> str:
        stopped = " (stopped: no end within the test's bound)" if self.timed_out else ""
        head = f"sipp exit status {self.returncode}{stopped}"
        return f"{head}\n{self.output}\n--- messages ---\n{self.messages}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tail(path: Path, limit: int) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


class Sipp(ManagedProcess):
    """SIPp running one call of ``scenario`` as UAC (toward ``remote``) or UAS (``remote`` None,
    or a UAS that sends its answers to ``remote``).

    ``scenario``: a scenario file (:class:`~pathlib.Path`), or its text (written to
    ``<workdir>/<name>.xml``). ``keys``: ``-key`` values. ``wait_bound``: :meth:`start`
    returns once SIPp holds its UDP port, so that a request sent now reaches it.
    """

    error = SippError
    probe = "a bind of its SIP port"
    poll_interval = 0.05
    #: Characters kept of the screen + errors log, and of the messages log.
    output_limit = 5_000
    messages_limit = 20_000

    def __init__(
        self,
        workdir: Path,
        name: str,
        scenario: str | Path,
        remote: tuple[str, int] | None = None,
        *,
        service: str,
        keys: Mapping[str, str] | None = None,
        local_ip: str = "127.0.0.1",
        local_port: int | None = None,
        media_port: int | None = None,
        extra: Sequence[str] = (),
        timeout: int = 20,
        wait_bound: bool = False,
    ) -> None:
        super().__init__(f"sipp {name}", workdir, workdir / f"{name}_screen.log")
        if isinstance(scenario, Path):
            self.scenario_path = scenario
        else:
            self.scenario_path = workdir / f"{name}.xml"
            workdir.mkdir(parents=True, exist_ok=True)
            self.scenario_path.write_text(scenario)
        self.messages_path = workdir / f"{name}_messages.log"
        self.errors_path = workdir / f"{name}_errors.log"
        self.local_ip = local_ip
        self.local_port = local_port or free_port(local_ip)
        # SIPp binds its audio RTP socket at -mp and its video one at -mp + 2: a block below the
        # ephemeral range, which a port the kernel handed out for local_port cannot be (two
        # free_port() calls once both returned the same port, and SIPp could not bind its RTP)
        self.media_port = media_port or free_port_block(4, local_ip)[0]
        self.wait_bound = wait_bound
        #: How long :meth:`finish` waits for the call to end before stopping SIPp.
        self.wait_timeout = timeout + 10
        self._argv = [
            *([_hostport(*remote)] if remote is not None else []),
            "-sf", str(self.scenario_path), "-s", service, "-i", local_ip,
            "-p", str(self.local_port), "-mp", str(self.media_port),
            "-m", "1", "-l", "1", "-nostdin", "-trace_msg", "-trace_err",
            "-message_file", str(self.messages_path), "-error_file", str(self.errors_path),
            "-timeout", f"{timeout}s", "-timeout_error", "-max_recv_loops", "100",
        ]  # fmt: skip
        for key, value in (keys or {}).items():
            self._argv += ["-key", key, value]
        self._argv += extra

    @property
    def command(self) -> list[str]:
        return [require_sipp(), *self._argv]

    def ready(self) -> bool:
        if not self.wait_bound:
            return True
        family = socket.AF_INET6 if ":" in self.local_ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((self.local_ip, self.local_port))
            except OSError:
                return True  # taken: SIPp is listening
        return False

    def start(self, timeout: float = 10.0) -> None:
        """Start SIPp (and with ``wait_bound``, wait until it listens)."""
        try:
            super().start(timeout)
        except SippError:
            if self.process is None or self.process.poll() is None:
                raise
            # It ended before it was seen ready (a quick call, or an early failure):
            # :meth:`finish` reports how.

    def finish(self) -> SippResult:
        """Wait for the call to end (at most :attr:`wait_timeout` s), then stop SIPp."""
        timed_out = False
        if self.process is not None:
            try:
                self.process.wait(self.wait_timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
        return self._result(timed_out)

    async def finish_async(self) -> SippResult:
        """:meth:`finish` for a test whose event loop must keep running meanwhile."""
        timed_out = False
        if self.process is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait_timeout
            while self.process.poll() is None:
                if loop.time() >= deadline:
                    timed_out = True
                    break
                await asyncio.sleep(self.poll_interval)
        return self._result(timed_out)

    def run(self) -> SippResult:
        self.start()
        return self.finish()

    async def run_async(self) -> SippResult:
        self.start()
        return await self.finish_async()

    def messages_log(self) -> str:
        """The tail of the messages log so far (also while SIPp runs)."""
        return _tail(self.messages_path, self.messages_limit)

    def _result(self, timed_out: bool) -> SippResult:
        status = self.stop(timeout=5.0)
        return SippResult(
            -1 if status is None else status,
            self.log_text()[-self.output_limit :] + _tail(self.errors_path, self.output_limit),
            self.messages_log(),
            timed_out,
        )


# --- scenarios ------------------------------------------------------------------------------------------

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{}">\n'
_VIA = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport"
_REGISTER_HEADERS = (
    "Max-Forwards: 70\n"
    "From: <sip:[service]@[realm]>;tag=[pid]SIPpTag00[call_number]\n"
    "To: <sip:[service]@[realm]>\n"
    "Call-ID: [call_id]\n"
    "Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>\n"
    "Path: <sip:term@[local_ip]:[local_port];lr>\n"
    "Supported: path\n"
    'P-Visited-Network-ID: "[realm]"\n'
    "User-Agent: webims-tests SIPp\n"
)
_TRYING = '<recv response="100" optional="true"/>'
_CONTACT = "Contact: <sip:[service]@[local_ip]:[local_port]>\n"
_SDP = (
    "v=0\n"
    "o=- 1 1 IN IP4 [local_ip]\n"
    "s=-\n"
    "c=IN IP4 [local_ip]\n"
    "t=0 0\n"
    "m=audio [media_port] RTP/AVP 0\n"
    "a=rtpmap:0 PCMU/8000\n"
)


def _register(cseq: int, expires: int, authorization: str) -> str:
    auth = f"{authorization}\n" if authorization else ""
    return (
        '<send retrans="500"><![CDATA[\n'
        "REGISTER sip:[realm] SIP/2.0\n"
        f"{_VIA}\n{_REGISTER_HEADERS}"
        f"CSeq: {cseq} REGISTER\n"
        f"Expires: {expires}\n"
        f"{auth}"
        "Content-Length: 0\n\n"
        "]]></send>\n"
    )


def _checks(*checks: tuple[str, str, str]) -> str:
    """An action checking headers: (variable, header, regexp) each; the scenario must reference them."""
    eregs = "".join(
        f'<ereg regexp="{regexp}" search_in="hdr" header="{header}" check_it="true" assign_to="{variable}"/>'
        for variable, header, regexp in checks
    )
    return f"<action>{eregs}</action>" if eregs else ""


def register_scenario(
    *,
    auth: str = "[authentication]",
    expires: int = 600,
    deregister: bool = True,
    initial_authorization: bool = True,
    integrity_protected: str | None = None,
    first_status: int = 401,
    final_status: int = 200,
    check_service_route: bool = True,
    check_associated_uri: bool = True,
) -> str:
    """REGISTER, 401, REGISTER with ``auth`` (a SIPp [authentication ...] keyword), 200; then
    (``deregister``) the same contact with Expires 0, re-authenticating if challenged.

    ``initial_authorization``: the first REGISTER carries the IMPI in an empty Authorization
    header (TS 24.229 §5.1.1.2.1). ``integrity_protected``: Trusted Node Authentication
    instead (e.g. "auth-done"); no challenge is expected unless ``final_status`` is 401.
    ``first_status``: the answer to the first REGISTER when it is no challenge (403 for an
    unknown user). The 200 must carry a Service-Route to the S-CSCF's "orig" URI and a
    P-Associated-URI (TS 24.229 §5.4.1.2.2), unless told not to check them.
    """
    checked = [
        *([("sr", "Service-Route:", "orig@")] if check_service_route else []),
        *([("pau", "P-Associated-URI:", "sip:.+@ims.test")] if check_associated_uri else []),
    ]
    ok = f'<recv response="200">{_checks(*checked)}</recv>'
    body = [_HEAD.format("ims register").rstrip("\n")]
    empty = 'Authorization: Digest username="[impi]", realm="[realm]", nonce="", uri="sip:[realm]"'
    empty += ', response=""'
    if integrity_protected is not None:
        tna = f'{empty}, integrity-protected="{integrity_protected}"'
        body += [_register(1, expires, tna), _TRYING]
        if final_status != 200:
            return _close([*body, f'<recv response="{final_status}"/>'], [])
        body.append(ok)
        if deregister:
            body += [_register(2, 0, tna), _TRYING, '<recv response="200"/>']
        return _close(body, checked)
    body += [_register(1, expires, empty if initial_authorization else ""), _TRYING]
    if first_status != 401:
        return _close([*body, f'<recv response="{first_status}"/>'], [])
    body += ['<recv response="401" auth="true"/>', _register(2, expires, auth), _TRYING]
    if final_status != 200:
        return _close([*body, f'<recv response="{final_status}"/>'], [])
    body.append(ok)
    if deregister:
        body += [
            _register(3, 0, auth),
            _TRYING,
            '<recv response="401" auth="true" optional="true" next="reauth"/>',
            '<recv response="200" next="done"/>',
            '<label id="reauth"/>',
            _register(4, 0, auth),
            _TRYING,
            '<recv response="200"/>',
            '<label id="done"/>',
        ]
    return _close(body, checked)


def register_uac(
    workdir: Path,
    remote: tuple[str, int],
    user: str,
    password: str,
    *,
    realm: str = "ims.test",
    name: str | None = None,
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
    **scenario: Any,
) -> Sipp:
    """SIPp registering ``user`` (IMPI ``user@realm``, IMPU ``sip:user@realm``) at ``remote``
    with :func:`register_scenario` (``scenario``: its options), answering a Digest or
    AKA challenge as that IMPI with ``password`` (``-au`` / ``-ap``). Not started yet."""
    impi = f"{user}@{realm}"
    return Sipp(
        workdir,
        name or f"register-{user}",
        register_scenario(**scenario),
        remote,
        service=user,
        keys={"realm": realm, "impi": impi},
        local_ip=local_ip,
        local_port=local_port,
        extra=["-au", impi, "-ap", password],
    )


def _close(body: list[str], checked: Sequence[tuple[str, str, str]]) -> str:
    if checked:
        body.append(f'<Reference variables="{",".join(variable for variable, _, _ in checked)}"/>')
    body.append("</scenario>")
    return "\n".join(body) + "\n"


def _request(method: str, cseq: int, extra: str = "", body: str = "", content_type: str = "") -> str:
    """An originating request from [service] to [callee], sent on the Service-Route ([route])."""
    ctype = f"Content-Type: {content_type}\n" if content_type else ""
    return (
        '<send retrans="500"><![CDATA[\n'
        f"{method} sip:[callee]@[realm] SIP/2.0\n"
        f"{_VIA}\n"
        "Route: [route]\n"
        "Max-Forwards: 70\n"
        "From: <sip:[service]@[realm]>;tag=[pid]SIPpTag00[call_number]\n"
        "To: <sip:[callee]@[realm]>\n"
        "Call-ID: [call_id]\n"
        f"CSeq: {cseq} {method}\n"
        "P-Asserted-Identity: <sip:[service]@[realm]>\n"
        f"{extra}{ctype}"
        "Content-Length: [len]\n\n"
        f"{body}"
        "]]></send>\n"
    )


def _reply(status: str, extra: str = "", body: str = "", to_tag: bool = True) -> str:
    tag = ";tag=[pid]SIPpTag01[call_number]" if to_tag else ""
    return (
        "<send><![CDATA[\n"
        f"SIP/2.0 {status}\n"
        "[last_Via:]\n[last_From:]\n"
        f"[last_To:]{tag}\n"
        "[last_Call-ID:]\n[last_CSeq:]\n"
        f"{extra}"
        "Content-Length: [len]\n\n"
        f"{body}"
        "]]></send>\n"
    )


def message_uac_scenario(*, text: str = "hello from webims", final_status: int = 200) -> str:
    """MESSAGE (RFC 3428) from [service] to [callee] via the S-CSCF ([route] = Service-Route)."""
    return (
        _HEAD.format("ims message uac")
        + _request("MESSAGE", 1, body=text, content_type="text/plain")
        + '<recv response="100" optional="true"/>\n'
        + f'<recv response="{final_status}"/>\n</scenario>\n'
    )


def message_uas_scenario(*, expect_text: str) -> str:
    """Receive one MESSAGE whose body contains ``expect_text`` and answer 200."""
    return (
        _HEAD.format("ims message uas") + '<recv request="MESSAGE"><action>'
        f'<ereg regexp="{expect_text}" search_in="body" check_it="true" assign_to="text"/>'
        "</action></recv>\n" + _reply("200 OK") + '<Reference variables="text"/>\n</scenario>\n'
    )


def call_uac_scenario(*, final_status: int = 200) -> str:
    """INVITE [callee], 180, 200, ACK, BYE, 200 (RFC 3261 §13, §15) on the Service-Route;
    or the ``final_status`` failure (ACKed, RFC 3261 §17.1.1.3)."""
    head = (
        _HEAD.format("ims call uac")
        + _request("INVITE", 1, extra=_CONTACT, body=_SDP, content_type="application/sdp")
        + '<recv response="100" optional="true"/>\n'
    )
    if final_status != 200:
        ack = (
            "<send><![CDATA[\n"
            "ACK sip:[callee]@[realm] SIP/2.0\n"
            "[last_Via:]\n"
            "Route: [route]\n"
            "Max-Forwards: 70\n"
            "From: <sip:[service]@[realm]>;tag=[pid]SIPpTag00[call_number]\n"
            "[last_To:]\n"
            "Call-ID: [call_id]\n"
            "CSeq: 1 ACK\n"
            "Content-Length: 0\n\n"
            "]]></send>\n"
        )
        return head + f'<recv response="{final_status}"/>\n' + ack + "</scenario>\n"
    in_dialog = (
        "{method} [next_url] SIP/2.0\n"
        f"{_VIA}\n"
        "[routes]\n"
        "Max-Forwards: 70\n"
        "From: <sip:[service]@[realm]>;tag=[pid]SIPpTag00[call_number]\n"
        "[last_To:]\n"
        "Call-ID: [call_id]\n"
        "CSeq: {cseq}\n"
        "Content-Length: 0\n\n"
    )
    return (
        head
        + '<recv response="180"/>\n'
        + '<recv response="200" rrs="true"/>\n'
        + "<send><![CDATA[\n"
        + in_dialog.format(method="ACK", cseq="1 ACK")
        + "]]></send>\n"
        + '<pause milliseconds="200"/>\n'
        + '<send retrans="500"><![CDATA[\n'
        + in_dialog.format(method="BYE", cseq="2 BYE")
        + "]]></send>\n"
        + '<recv response="200"/>\n</scenario>\n'
    )


def call_uas_scenario(*, check_called_party: bool = True) -> str:
    """Answer one INVITE: 180, 200 with SDP; then ACK, BYE, 200. ``check_called_party``: the
    INVITE must carry the S-CSCF's Record-Route and a P-Called-Party-ID (TS 24.229 §5.4.3.3)."""
    checked = (
        [("pcpi", "P-Called-Party-ID:", "sip:.+@ims.test"), ("rr", "Record-Route:", "lr")]
        if check_called_party
        else []
    )
    reference = f'<Reference variables="{",".join(c[0] for c in checked)}"/>\n' if checked else ""
    return (
        _HEAD.format("ims call uas")
        + f'<recv request="INVITE" rrs="true">{_checks(*checked)}</recv>\n'
        + _reply("180 Ringing", extra="[last_Record-Route:]\n" + _CONTACT)
        + _reply(
            "200 OK", extra="[last_Record-Route:]\n" + _CONTACT + "Content-Type: application/sdp\n", body=_SDP
        )
        + '<recv request="ACK"/>\n'
        + '<recv request="BYE"/>\n'
        + _reply("200 OK", to_tag=False)
        + reference
        + "</scenario>\n"
    )


def subscribe_reg_scenario(*, expires: int = 600) -> str:
    """SUBSCRIBE to [callee]'s reg event (RFC 3680) via the S-CSCF; 200, then the NOTIFY with reginfo."""
    extra = _CONTACT + f"Event: reg\nAccept: application/reginfo+xml\nExpires: {expires}\n"
    return (
        _HEAD.format("ims subscribe reg")
        + _request("SUBSCRIBE", 1, extra=extra)
        + '<recv response="100" optional="true"/>\n'
        + '<recv response="200"/>\n'
        + '<recv request="NOTIFY"><action>'
        '<ereg regexp="reginfo" search_in="body" check_it="true" assign_to="reginfo"/>'
        '<ereg regexp="state=.active." search_in="body" check_it="true" assign_to="active"/>'
        "</action></recv>\n"
        + _reply("200 OK", to_tag=False)
        + '<Reference variables="reginfo,active"/>\n</scenario>\n'
    )
