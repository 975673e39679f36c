"""SIPp (Debian ``sip-tester``) scenarios against the lab I-CSCF/S-CSCF, run from asyncio.

SIPp plays UE + P-CSCF on Mw: its REGISTER carries Path, ``Supported: path`` and
P-Visited-Network-ID (TS 24.229 §5.2.2). Scenarios are built as text and written
to the test's directory; every run is bounded (``-m 1``, ``-timeout``), and the
lab core keeps running in the test's event loop while SIPp runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from webims.testing.ports import free_port

SIPP = shutil.which("sipp")

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


def require_sipp() -> str:
    if SIPP is None:
        pytest.fail("sipp is not installed: apt-get install sip-tester (scripts/packages.txt)")
    return SIPP


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


def register_scenario(
    *,
    auth: str = "[authentication]",
    expires: int = 600,
    deregister: bool = True,
    integrity_protected: str | None = None,
    final_status: int = 200,
    first_status: int = 401,
) -> str:
    """REGISTER (empty Authorization with the IMPI, TS 24.229 §5.1.1.2.1), 401, REGISTER with
    ``auth``, 200 carrying Service-Route and P-Associated-URI; then (``deregister``)
    Expires 0, re-authenticating if challenged. ``integrity_protected``: Trusted Node
    Authentication instead (no challenge expected unless ``final_status`` says so).
    ``first_status``: the answer to the first REGISTER when it is not a challenge (403...)."""
    body = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="ims register">']
    checks = (
        '<action><ereg regexp="orig@" search_in="hdr" header="Service-Route:" check_it="true" '
        'assign_to="sr"/>'
        '<ereg regexp="sip:.+@ims.test" search_in="hdr" header="P-Associated-URI:" check_it="true" '
        'assign_to="pau"/></action>'
    )
    empty = (
        'Authorization: Digest username="[impi]", realm="[realm]", nonce="", uri="sip:[realm]", response=""'
    )
    if integrity_protected is not None:
        tna = (
            'Authorization: Digest username="[impi]", realm="[realm]", nonce="", uri="sip:[realm]", '
            f'response="", integrity-protected="{integrity_protected}"'
        )
        body.append(_register(1, expires, tna))
        body.append('<recv response="100" optional="true"/>')
        if final_status != 200:
            body.append(f'<recv response="{final_status}"/>')
            return _close(body, False)
        body.append(f'<recv response="200">{checks}</recv>')
        if deregister:
            body.append(_register(2, 0, tna))
            body.append('<recv response="100" optional="true"/>')
            body.append('<recv response="200"/>')
        return _close(body, True)
    body.append(_register(1, expires, empty))
    body.append('<recv response="100" optional="true"/>')
    if first_status != 401:
        body.append(f'<recv response="{first_status}"/>')
        return _close(body, False)
    body.append('<recv response="401" auth="true"/>')
    body.append(_register(2, expires, auth))
    body.append('<recv response="100" optional="true"/>')
    if final_status != 200:
        body.append(f'<recv response="{final_status}"/>')
        return _close(body, False)
    body.append(f'<recv response="200">{checks}</recv>')
    if deregister:
        body.append(_register(3, 0, auth))
        body.append('<recv response="100" optional="true"/>')
        body.append('<recv response="401" auth="true" optional="true" next="reauth"/>')
        body.append('<recv response="200" next="done"/>')
        body.append('<label id="reauth"/>')
        body.append(_register(4, 0, auth))
        body.append('<recv response="100" optional="true"/>')
        body.append('<recv response="200"/>')
        body.append('<label id="done"/>')
    return _close(body, True)


def _close(body: list[str], references: bool) -> str:
    if references:
        body.append('<Reference variables="sr,pau"/>')
    body.append("</scenario>")
    return "\n".join(body) + "\n"


_SDP = (
    "v=0\n"
    "o=- 1 1 IN IP4 [local_ip]\n"
    "s=-\n"
    "c=IN IP4 [local_ip]\n"
    "t=0 0\n"
    "m=audio [media_port] RTP/AVP 0\n"
    "a=rtpmap:0 PCMU/8000\n"
)


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


def call_uac_scenario(*, final_status: int = 200) -> str:
    """INVITE [callee], 180, 200, ACK, BYE, 200 (RFC 3261 §13, §15) on the Service-Route;
    or the ``final_status`` failure (ACKed by the transaction, as SIPp does for non-2xx)."""
    contact = "Contact: <sip:[service]@[local_ip]:[local_port]>\n"
    head = (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims call uac">\n'
        + _request("INVITE", 1, extra=contact, body=_SDP, content_type="application/sdp")
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


def call_uas_scenario() -> str:
    """Answer one INVITE (checking the S-CSCF's Record-Route and P-Called-Party-ID):
    180, 200 with SDP; then ACK, BYE, 200."""
    contact = "Contact: <sip:[service]@[local_ip]:[local_port]>\n"
    checks = (
        '<action><ereg regexp="sip:.+@ims.test" search_in="hdr" header="P-Called-Party-ID:" '
        'check_it="true" assign_to="pcpi"/>'
        '<ereg regexp="lr" search_in="hdr" header="Record-Route:" check_it="true" assign_to="rr"/></action>'
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims call uas">\n'
        f'<recv request="INVITE" rrs="true">{checks}</recv>\n'
        + _reply("180 Ringing", extra="[last_Record-Route:]\n" + contact)
        + _reply(
            "200 OK", extra="[last_Record-Route:]\n" + contact + "Content-Type: application/sdp\n", body=_SDP
        )
        + '<recv request="ACK"/>\n'
        + '<recv request="BYE"/>\n'
        + _reply("200 OK", to_tag=False)
        + '<Reference variables="pcpi,rr"/>\n</scenario>\n'
    )


@dataclass
class SippResult:
    returncode: int
    output: str
    messages: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def report(self) -> str:
        return (
            f"sipp exit status {self.returncode}\n{self.output}\n--- messages ---\n{self.messages[-20000:]}"
        )


class Sipp:
    """One SIPp process running one call of a scenario (``-m 1``), bounded in time."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        scenario: str,
        remote: tuple[str, int],
        *,
        service: str,
        keys: dict[str, str],
        local_ip: str = "127.0.0.1",
        local_port: int | None = None,
        extra: list[str] | None = None,
        timeout: int = 20,
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.path = workdir / f"{name}.xml"
        self.path.write_text(scenario)
        self.local_port = local_port or free_port(local_ip)
        self.command = [
            require_sipp(),
            f"{remote[0]}:{remote[1]}",
            "-sf",
            str(self.path),
            "-s",
            service,
            "-i",
            local_ip,
            "-p",
            str(self.local_port),
            "-m",
            "1",
            "-l",
            "1",
            "-nostdin",
            "-trace_msg",
            "-trace_err",
            "-timeout",
            f"{timeout}s",
            "-timeout_error",
            "-max_recv_loops",
            "100",
        ]
        for key, value in keys.items():
            self.command += ["-key", key, value]
        self.command += extra or []
        self.timeout = timeout + 10
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, cwd=self.workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        return self

    async def finish(self) -> SippResult:
        assert self.proc is not None
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), self.timeout)
        except TimeoutError:
            self.proc.kill()
            out, _ = await self.proc.communicate()
        messages = "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}_*messages.log"))
        )
        errors = "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}_*errors.log"))
        )
        code = self.proc.returncode if self.proc.returncode is not None else -1
        return SippResult(code, out.decode(errors="replace")[-5000:] + errors, messages)

    async def run(self) -> SippResult:
        await self.start()
        return await self.finish()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
