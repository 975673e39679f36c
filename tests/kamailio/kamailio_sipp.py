"""Run SIPp (Debian ``sip-tester``) scenarios against the Kamailio CSCFs, acting as P-CSCF + UE.

Scenarios are built here as text (so tests can vary headers and credentials) and
written into the test's temporary directory. Each REGISTER carries what a P-CSCF
adds on Mw (TS 24.229 §5.2.2): Path, ``Supported: path``, P-Visited-Network-ID.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from webims.testing.ports import free_port

SIPP = shutil.which("sipp") or "/usr/bin/sipp"

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
    initial_authorization: bool = True,
    integrity_protected: str | None = None,
    final_status: int = 200,
    challenged: bool = True,
    check_service_route: bool = True,
) -> str:
    """REGISTER, 401, REGISTER with ``auth`` (a SIPp [authentication ...] keyword), 200;
    then (``deregister``) the same contact with Expires 0, re-authenticating if challenged.

    ``initial_authorization``: the first REGISTER carries the IMPI in an empty
    Authorization header (TS 24.229 §5.1.1.2.1). ``integrity_protected``: register
    with Trusted Node Authentication instead (e.g. "auth-done"); no challenge is
    expected unless ``final_status`` is 401. ``challenged=False``: ``final_status``
    answers the first REGISTER (e.g. 403 for an unknown user).
    """
    body = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="ims register">']
    empty_auth = (
        'Authorization: Digest username="[impi]", realm="[realm]", nonce="", uri="sip:[realm]", response=""'
    )
    service_route = (
        '<action><ereg regexp="orig@" search_in="hdr" header="Service-Route:" '
        'check_it="true" assign_to="sr"/></action>'
        if check_service_route
        else ""
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
        body.append(f'<recv response="200">{service_route}</recv>')
        if deregister:
            body.append(_register(2, 0, tna))
            body.append('<recv response="100" optional="true"/>')
            body.append('<recv response="200"/>')
        return _close(body, check_service_route)
    body.append(_register(1, expires, empty_auth if initial_authorization else ""))
    body.append('<recv response="100" optional="true"/>')
    if not challenged:
        body.append(f'<recv response="{final_status}"/>')
        return _close(body, False)
    body.append('<recv response="401" auth="true"/>')
    body.append(_register(2, expires, auth))
    body.append('<recv response="100" optional="true"/>')
    if final_status != 200:
        body.append(f'<recv response="{final_status}"/>')
        return _close(body, False)
    body.append(f'<recv response="200">{service_route}</recv>')
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
    return _close(body, check_service_route)


def _close(body: list[str], references_sr: bool) -> str:
    if references_sr:
        body.append('<Reference variables="sr"/>')
    body.append("</scenario>")
    return "\n".join(body) + "\n"


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


def sipp_command(
    scenario: Path,
    remote: tuple[str, int],
    *,
    service: str,
    keys: dict[str, str],
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    port = local_port or free_port(local_ip)
    cmd = [
        SIPP, f"{remote[0]}:{remote[1]}", "-sf", str(scenario), "-s", service, "-i", local_ip,
        "-p", str(port), "-m", "1", "-l", "1", "-nostdin", "-trace_msg", "-trace_err",
        "-timeout", "20", "-timeout_error", "-max_recv_loops", "100",
    ]  # fmt: skip
    for key, value in keys.items():
        cmd += ["-key", key, value]
    return cmd + (extra or [])


def run_sipp(
    scenario_text: str,
    remote: tuple[str, int],
    workdir: Path,
    *,
    name: str,
    service: str,
    keys: dict[str, str],
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
    extra: list[str] | None = None,
    timeout: float = 40.0,
) -> SippResult:
    """Run one call of a scenario to completion; exit status 0 means every step matched."""
    scenario = workdir / f"{name}.xml"
    scenario.write_text(scenario_text)
    cmd = sipp_command(
        scenario, remote, service=service, keys=keys, local_ip=local_ip, local_port=local_port, extra=extra
    )
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return finish_sipp(proc, workdir, name, timeout)


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


def message_uac_scenario(*, text: str = "hello from webims", final_status: int = 200) -> str:
    """MESSAGE (RFC 3428) from [service] to [callee] via the S-CSCF ([route] = Service-Route)."""
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims message uac">\n'
        + _request("MESSAGE", 1, body=text, content_type="text/plain")
        + '<recv response="100" optional="true"/>\n'
        + f'<recv response="{final_status}"/>\n</scenario>\n'
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


def message_uas_scenario(*, expect_text: str) -> str:
    """Receive one MESSAGE whose body contains ``expect_text`` and answer 200."""
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims message uas">\n'
        '<recv request="MESSAGE"><action>'
        f'<ereg regexp="{expect_text}" search_in="body" check_it="true" assign_to="text"/>'
        "</action></recv>\n" + _reply("200 OK") + '<Reference variables="text"/>\n</scenario>\n'
    )


def call_uac_scenario() -> str:
    """INVITE [callee], 180, 200, ACK, BYE, 200 (RFC 3261 §13, §15) via the S-CSCF."""
    contact = "Contact: <sip:[service]@[local_ip]:[local_port]>\n"
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
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims call uac">\n'
        + _request("INVITE", 1, extra=contact, body=_SDP, content_type="application/sdp")
        + '<recv response="100" optional="true"/>\n'
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
    """Answer one INVITE: 180, 200 with SDP; then ACK, BYE, 200."""
    contact = "Contact: <sip:[service]@[local_ip]:[local_port]>\n"
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims call uas">\n'
        '<recv request="INVITE" rrs="true"/>\n'
        + _reply("180 Ringing", extra="[last_Record-Route:]\n" + contact)
        + _reply(
            "200 OK", extra="[last_Record-Route:]\n" + contact + "Content-Type: application/sdp\n", body=_SDP
        )
        + '<recv request="ACK"/>\n'
        + '<recv request="BYE"/>\n'
        + _reply("200 OK", to_tag=False)
        + "</scenario>\n"
    )


def start_sipp(
    scenario_text: str,
    remote: tuple[str, int],
    workdir: Path,
    *,
    name: str,
    service: str,
    keys: dict[str, str],
    local_ip: str,
    local_port: int,
    extra: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a SIPp (e.g. a UAS waiting for a request) in the background; see :func:`finish_sipp`."""
    scenario = workdir / f"{name}.xml"
    scenario.write_text(scenario_text)
    cmd = sipp_command(
        scenario, remote, service=service, keys=keys, local_ip=local_ip, local_port=local_port, extra=extra
    )
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_bound(proc, local_ip, local_port)
    return proc


def _wait_bound(proc: subprocess.Popen[bytes], ip: str, port: int, timeout: float = 10.0) -> None:
    """Return once SIPp holds its UDP port (so a request sent now reaches it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((ip, port))
            except OSError:
                return  # taken: SIPp is listening
        time.sleep(0.05)


def finish_sipp(proc: subprocess.Popen[bytes], workdir: Path, name: str, timeout: float = 30.0) -> SippResult:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    messages = "\n".join(p.read_text(errors="replace") for p in sorted(workdir.glob(f"{name}_*messages.log")))
    errors = "\n".join(p.read_text(errors="replace") for p in sorted(workdir.glob(f"{name}_*errors.log")))
    return SippResult(proc.returncode, out.decode(errors="replace")[-5000:] + errors, messages)


def subscribe_reg_scenario(*, expires: int = 600) -> str:
    """SUBSCRIBE to [callee]'s reg event (RFC 3680) via the S-CSCF; 200, then the NOTIFY with reginfo."""
    extra = (
        "Contact: <sip:[service]@[local_ip]:[local_port]>\n"
        "Event: reg\n"
        "Accept: application/reginfo+xml\n"
        f"Expires: {expires}\n"
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ims subscribe reg">\n'
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
