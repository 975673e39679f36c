"""Start and stop Kamailio 5.6 as an IMS I-CSCF and S-CSCF (and a P-CSCF) on loopback, for interop tests.

Real peers for webims' HSS (Cx) and gateway (Mw): Debian's ``kamailio``,
``kamailio-ims-modules``, ``kamailio-presence-modules`` and
``kamailio-sqlite-modules``. Synchronous and subprocess-based, so it suits pytest
fixtures whether or not the test is async::

    with KamailioIms("127.0.0.1", hss_port, trusted_addresses=["127.0.0.2"], workdir=tmp_path) as ims:
        ims.wait_diameter_open()          # both CSCFs finished CER/CEA with the HSS
        register_via(ims.icscf_uri)       # Mw: REGISTER to the I-CSCF
        ...
    # on failure: ims.log_report() holds both Kamailio logs

What it does (see the templates in ``webims/testing/kamailio/``):

* renders ``icscf.cfg`` / ``scscf.cfg`` (static Kamailio configs adapted from
  Kamailio's misc/examples/ims) plus a generated ``*-params.cfg`` each (listen
  addresses, realm, Server-Name, trusted addresses) and a CDP XML config each
  from ``cdp.xml``, into a work directory; the I-CSCF's S-CSCF list (table
  ``s_cscf`` + ``s_cscf_capabilities``) goes into an SQLite file (db_sqlite);
  with ``with_pcscf=True`` also ``pcscf.cfg`` (a P-CSCF without IPsec, Rx or RTP
  proxy, in front of the I-CSCF: see "P-CSCF" below);
* runs ``kamailio -DD -E -f CFG -Y RUNDIR -P PIDFILE`` in the foreground, its
  output in ``icscf.log`` / ``scscf.log``; waits until it answers SIP OPTIONS;
* stops it with SIGTERM (Kamailio stops its own children; SIGKILL to its process
  group after a grace period). A temporary work directory it made is removed; the
  logs stay readable (:meth:`KamailioIms.log_report`).

Name resolution for Diameter: CDP connects to a peer by the peer's FQDN
(``getaddrinfo``) and nobody resolves the CSCFs' own identities. So the HSS peer's
FQDN in the CDP config is ``hss_host`` itself: an IP literal ("127.0.0.1") needs no
resolver, "localhost" resolves through /etc/hosts everywhere. No /etc/hosts entry
is written. The HSS's Origin-Host may differ from that FQDN (CDP does not compare
them). SIP needs no names either: Server-Name, Service-Route and Path carry IPs.

Trusted Node Authentication: Kamailio 5.6 has none, so the I-CSCF adds a secret
``X-WebIMS-TNA`` header to a REGISTER carrying ``integrity-protected="auth-done"``
when its source address is in ``trusted_addresses`` (and removes that header from
every other REGISTER); the S-CSCF then skips authentication and assigns the user
(SAR). Any other auth-done REGISTER is challenged as usual (401).

Cx as Kamailio 5.6.3 speaks it (observed with the stand-in HSS of tests/kamailio):

* CER: Origin-Host/Realm, Host-IP-Address, Vendor-Id 10415, Product-Name,
  Vendor-Specific-Application-Id {10415, Auth-Application-Id 16777216},
  Supported-Vendor-Id 10415. A CEA answering likewise opens the connection.
  Requests carry no Destination-Host.
* UAR (I-CSCF): User-Name, Public-Identity, Visited-Network-Identifier (the
  P-Visited-Network-ID value verbatim, quotes included; a REGISTER without that
  header gets 400), User-Authorization-Type always 2 (REGISTRATION_AND_CAPABILITIES),
  even for a de-registration. UAA: Experimental-Result 2001 with Server-Capabilities
  (e.g. Mandatory-Capability 0; the I-CSCF then picks from its S-CSCF list) or 2002
  with Server-Name (used as is); 2001 with neither also works (list). An *empty*
  Server-Capabilities group makes CDP drop the whole answer (the UE gets 408).
  5001 (user unknown): the I-CSCF answers 403.
* MAR (S-CSCF): User-Name, Public-Identity, SIP-Number-Auth-Items 1,
  SIP-Auth-Data-Item {SIP-Authentication-Scheme}, Server-Name (= :attr:`server_name`).
  The scheme is "unknown" (lower case) for HSS-Selected, else from the REGISTER's
  algorithm: "Digest-MD5", "Digest-AKAv1-MD5". MAA accepted: Result-Code 2001,
  User-Name, Public-Identity, SIP-Number-Auth-Items, one SIP-Auth-Data-Item with,
  for digest, scheme "SIP Digest" and SIP-Digest-Authenticate {Digest-Realm,
  Digest-QoP "auth", Digest-HA1} (also when "Digest-MD5" was asked); for AKA,
  scheme "Digest-AKAv1-MD5", SIP-Authenticate = RAND||AUTN, SIP-Authorization =
  XRES, Confidentiality-Key, Integrity-Key. (Resynchronisation not exercised.)
* SAR: Public-Identity, Server-Name, User-Name, Server-Assignment-Type (1 at
  registration and TNA, 5 at de-registration, 3 for a terminating request to an
  unregistered user), User-Data-Already-Available (0, or 1 at de-registration),
  plus a non-mandatory AVP 494 with Vendor-Id 50 holding the SIP Call-ID (ignore it).
  SAA accepted: Result-Code 2001, User-Name, User-Data; the smallest User-Data
  Kamailio takes is ``<IMSSubscription><PrivateID>..</PrivateID><ServiceProfile>
  <PublicIdentity><Identity>sip:..</Identity></PublicIdentity></ServiceProfile>
  </IMSSubscription>``. For a de-registration Result-Code 2001 alone.
* LIR (I-CSCF): Public-Identity only. LIA: 2001 + Server-Name routes to it;
  Experimental-Result 2003 + Server-Capabilities routes via the list (then the
  S-CSCF sends SAR type 3 and answers 480 as no contact is registered);
  5001 -> 404 (set here; ims_icscf's own answer is 604); 5003 -> 480.
* RTR (to the S-CSCF): with Public-Identity it answers RTA 2001 (yet 5.6.3 leaves
  the contacts registered); with only User-Name it never answers. PPR is never
  answered (unsupported).

P-CSCF (``with_pcscf=True``; ims_usrloc_pcscf + ims_registrar_pcscf, seed 004's
operator P-CSCF that webims' gateway registers through as a UE): REGISTERs go to the
I-CSCF with ``Path: <sip:term@HOST:PORT;lr>``, ``Supported: path`` and
``P-Visited-Network-ID``; a 200 saves the contact with its Service-Route and
P-Associated-URI (``pcscf_save``); a 401 loses ``ck``/``ik``. Originating requests
from a registered contact get ``P-Asserted-Identity`` (``pcscf_assert_identity`` of
the P-Preferred-Identity, else of the From URI, else the default IMPU) and follow the
Service-Route (forced when they do not); requests arriving on the Path go to the
Request-URI (the registered contact). ``trusted_addresses`` then names who may send
it ``integrity-protected="auth-done"`` REGISTERs (others get 403); the I-CSCF trusts
the P-CSCF's address for TNA. ``pcscf_reginfo``: it SUBSCRIBEs to the reg event of
each registered user (pua, in memory) and handles the NOTIFYs. ims_registrar_pcscf 5.6.3
does not start without ims_ipsec_pcscf, which deletes every IPsec SA and policy of its
network namespace when it starts: :meth:`KamailioIms.start` refuses a P-CSCF in the
machine's own namespace (run it, and what talks to it, under :mod:`webims.testing.netns`).

Kamailio quirks met here (Debian 5.6.3): ims_usrloc_scscf needs the presence and
ims_dialog modules loaded; ``save()`` with 2 arguments crashes the worker, 4
arguments work; ims_auth sends the 401 *before* storing the auth vector, so an
answer within about a millisecond is challenged again: the I-CSCF here holds 401s
for ``challenge_delay`` (10 ms) to close that window; the S-CSCF answers 420 to a
REGISTER with Path but no ``Supported: path``; it grants 10% less expiry than asked
(600 -> 540); a de-registration with ``Contact: *`` leaves the contacts valid
(de-register each contact instead). SIPp 3.6.1 (Debian ``sip-tester``) takes
``aka_K``/``aka_OP``/``aka_AMF`` as raw text (16/16/2 characters, not hex) and
computes the AKA response with RES as a C string, so it fails (403) whenever RES
contains a 0x00 byte: an HSS serving SIPp in tests must avoid such RANDs.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import ipaddress
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from string import Template

from .ports import free_port
from .process import ManagedProcess, StartStop

#: Debian packages the harness needs (scripts/packages.txt lists them for CI).
DEBIAN_PACKAGES = ("kamailio", "kamailio-ims-modules", "kamailio-presence-modules", "kamailio-sqlite-modules")
#: Modules of those packages that the configs load (besides Kamailio's core modules).
REQUIRED_MODULES = (
    "ims_icscf",
    "ims_usrloc_pcscf",
    "ims_registrar_pcscf",
    "ims_ipsec_pcscf",
    "pua",
    "ims_registrar_scscf",
    "ims_usrloc_scscf",
    "ims_auth",
    "presence",
    "db_sqlite",
)
#: Kamailio's auth algorithms for a REGISTER that names none (ims_auth).
AUTH_ALGORITHMS = ("HSS-Selected", "MD5", "AKAv1-MD5", "AKAv2-MD5")

_TEMPLATES = "kamailio"
_LOG_TAIL = 30_000


class KamailioError(RuntimeError):
    """Kamailio did not start, did not become ready, or failed; the message has its log."""


class KamailioNotInstalled(KamailioError):
    """The kamailio binary or one of its IMS modules is missing (install DEBIAN_PACKAGES)."""


def _template(name: str) -> str:
    return importlib.resources.files("webims.testing").joinpath(_TEMPLATES, name).read_text("utf-8")


def _cfg_string(value: str) -> str:
    """A Kamailio cfg string literal (the preprocessor's #!define value)."""
    if any(c in value for c in '"\\\n\r'):
        raise ValueError(f"unsupported character in Kamailio cfg string {value!r}")
    return f'"{value}"'


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def trusted_regex(addresses: Iterable[str]) -> str:
    """A regex (POSIX ERE, no backslashes) matching exactly the given IP addresses as $si prints them."""
    alternatives = [str(ipaddress.ip_address(a)).replace(".", "[.]") for a in addresses]
    if not alternatives:
        return "^$"  # $si is never empty: nothing is trusted
    return "^(" + "|".join(alternatives) + ")$"


def log_sections(funcargs: Mapping[str, object], limit: int = 20_000) -> list[tuple[str, str]]:
    """For a failing test's report (a ``pytest_runtest_makereport`` hook): the logs of every
    :class:`KamailioIms` among its fixture values."""
    return [
        ("kamailio logs", value.log_report(limit))
        for value in funcargs.values()
        if isinstance(value, KamailioIms)
    ]


def in_loopback_only_namespace() -> bool:
    """Whether this process's network namespace has no interface but ``lo`` (one made by
    :mod:`webims.testing.netns`, not the machine's own): read from ``/proc/self/net/dev``,
    which lists the interfaces of the reader's namespace. False when it cannot be read."""
    try:
        lines = Path("/proc/self/net/dev").read_text("ascii").splitlines()[2:]
    except OSError:
        return False
    names = {line.split(":", 1)[0].strip() for line in lines if ":" in line}
    return names == {"lo"}


def sip_options_ping(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Send one SIP OPTIONS over UDP to sip:host:port; the response status code, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        local_port = sock.getsockname()[1]
        uri_host = _uri_host(host)
        branch = "z9hG4bK" + uuid.uuid4().hex
        request = (
            f"OPTIONS sip:{uri_host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {uri_host}:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{uri_host}>;tag={uuid.uuid4().hex[:10]}\r\n"
            f"To: <sip:{uri_host}:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@webims.testing\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            while True:
                data = sock.recv(65535)
                match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
                if match and branch.encode() in data:
                    status = int(match.group(1))
                    if status >= 200:
                        return status
        except OSError:  # timeout, ICMP port unreachable
            return None


class KamailioProcess(ManagedProcess):
    """One Kamailio process: its config file, SIP address, log, runtime dir and control socket."""

    error = KamailioError
    probe = "SIP OPTIONS"
    log_limit = _LOG_TAIL

    def __init__(
        self,
        name: str,
        config: Path,
        workdir: Path,
        host: str,
        sip_port: int,
        *,
        kamailio: str = "kamailio",
        shm_mb: int = 64,
        pkg_mb: int = 8,
    ) -> None:
        super().__init__(name, workdir, workdir / f"{name}.log")
        self.config = config
        self.host = host
        self.sip_port = sip_port
        self.kamailio = kamailio
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        # Runtime dir (-Y) with the ctl socket: short, as unix socket paths must be < 108 bytes.
        self.rundir = Path(tempfile.mkdtemp(prefix=f"webims-{name}-"))
        self.pid_path = self.rundir / "kamailio.pid"
        self.ctl_socket = self.rundir / "kamailio_ctl"

    @property
    def command(self) -> list[str]:
        return [
            self.kamailio, "-f", str(self.config), "-DD", "-E", "-Y", str(self.rundir),
            "-P", str(self.pid_path), "-w", str(self.workdir),
            "-m", str(self.shm_mb), "-M", str(self.pkg_mb),
        ]  # fmt: skip

    def ready(self) -> bool:
        return sip_options_ping(self.host, self.sip_port) == 200

    def start(self, timeout: float = 30.0) -> None:
        """Start in the foreground and wait until it answers SIP OPTIONS."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        super().start(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Kamailio then stops its children); SIGKILL after ``timeout``. Returns the exit status."""
        try:
            return super().stop(timeout)
        finally:
            shutil.rmtree(self.rundir, ignore_errors=True)

    def rpc(self, command: str, *args: str, timeout: float = 10.0) -> str:
        """Run a Kamailio RPC command through kamcmd (binrpc on the ctl socket); its output."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        result = subprocess.run(
            [kamcmd, "-s", f"unixs:{self.ctl_socket}", command, *args],
            capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise KamailioError(
                f"{self.name}: kamcmd {command} failed: {result.stderr.decode(errors='replace')}"
            )
        return result.stdout.decode(errors="replace")

    def diameter_peers(self) -> dict[str, str]:
        """FQDN -> CDP peer state ("I_Open", "R_Open", "Closed", "Wait_Conn_Ack"...)."""
        peers: dict[str, str] = {}
        fqdn: str | None = None
        for line in self.rpc("cdp.list_peers").splitlines():
            key, _, value = line.strip().partition(":")
            if key == "FQDN":
                fqdn = value.strip()
            elif key == "State" and fqdn is not None:
                peers[fqdn] = value.strip()
        return peers


class KamailioIms(StartStop):
    """A Kamailio I-CSCF and S-CSCF pair on ``host``, using the HSS at ``hss_host``:``hss_port``.

    Ports left at 0 are chosen free. ``trusted_addresses``: source IPs whose
    ``integrity-protected="auth-done"`` REGISTERs are accepted without
    authentication (TNA). ``auth_algorithm``: what the S-CSCF asks the HSS for
    when a REGISTER names no algorithm ("HSS-Selected": the HSS decides).
    ``scscf_capabilities``: the S-CSCF's capabilities in the I-CSCF's list, which
    a UAA's Server-Capabilities must match. ``workdir``: where configs and logs go
    (a temporary directory, removed by :meth:`stop`, when not given).
    ``with_pcscf``: also a P-CSCF in front of the I-CSCF (:attr:`pcscf_uri`); then
    ``trusted_addresses`` are trusted by the P-CSCF, which the I-CSCF trusts.
    ``pcscf_reginfo``: the P-CSCF subscribes to each registered user's reg event.
    """

    def __init__(
        self,
        hss_host: str = "127.0.0.1",
        hss_port: int = 3868,
        *,
        realm: str = "ims.test",
        hss_realm: str | None = None,
        host: str = "127.0.0.1",
        icscf_port: int = 0,
        scscf_port: int = 0,
        icscf_diameter_port: int = 0,
        scscf_diameter_port: int = 0,
        with_pcscf: bool = False,
        pcscf_port: int = 0,
        pcscf_reginfo: bool = True,
        icscf_identity: str | None = None,
        scscf_identity: str | None = None,
        trusted_addresses: Sequence[str] = (),
        auth_algorithm: str = "HSS-Selected",
        scscf_capabilities: Sequence[int] = (0,),
        min_expires: int = 10,
        max_expires: int = 604800,
        workdir: str | os.PathLike[str] | None = None,
        children: int = 2,
        debug: int = 2,
        diameter_workers: int = 2,
        diameter_reconnect: int = 2,
        diameter_timeout: int = 5,
        challenge_delay: float = 0.01,
        kamailio: str = "kamailio",
    ) -> None:
        if auth_algorithm not in AUTH_ALGORITHMS:
            raise ValueError(f"auth_algorithm must be one of {AUTH_ALGORITHMS}")
        self.hss_host = hss_host
        self.hss_port = hss_port
        self.realm = realm
        self.hss_realm = hss_realm or realm
        self.host = str(ipaddress.ip_address(host))
        self.icscf_port = icscf_port or free_port(self.host)
        self.scscf_port = scscf_port or free_port(self.host)
        self.icscf_diameter_port = icscf_diameter_port or free_port(self.host)
        self.scscf_diameter_port = scscf_diameter_port or free_port(self.host)
        self.with_pcscf = with_pcscf
        self.pcscf_port = (pcscf_port or free_port(self.host)) if with_pcscf else 0
        self.pcscf_reginfo = pcscf_reginfo
        self.icscf_identity = icscf_identity or f"icscf.{realm}"
        self.scscf_identity = scscf_identity or f"scscf.{realm}"
        self.trusted_addresses = tuple(str(ipaddress.ip_address(a)) for a in trusted_addresses)
        self.auth_algorithm = auth_algorithm
        self.scscf_capabilities = tuple(scscf_capabilities)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.children = children
        self.debug = debug
        self.diameter_workers = diameter_workers
        self.diameter_reconnect = diameter_reconnect
        self.diameter_timeout = diameter_timeout
        self.challenge_delay = challenge_delay
        self.kamailio = kamailio
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="webims-kamailio-"))
        )
        self.tna_token = secrets.token_hex(16)
        self.icscf = KamailioProcess(
            "icscf", self.workdir / "icscf.cfg", self.workdir, self.host, self.icscf_port, kamailio=kamailio
        )
        self.scscf = KamailioProcess(
            "scscf", self.workdir / "scscf.cfg", self.workdir, self.host, self.scscf_port, kamailio=kamailio
        )
        self.pcscf: KamailioProcess | None = None
        if with_pcscf:
            self.pcscf = KamailioProcess(
                "pcscf",
                self.workdir / "pcscf.cfg",
                self.workdir,
                self.host,
                self.pcscf_port,
                kamailio=kamailio,
            )

    @property
    def processes(self) -> tuple[KamailioProcess, ...]:
        """The Kamailio processes, in start order: S-CSCF, I-CSCF, then the P-CSCF if any."""
        return (self.scscf, self.icscf) + ((self.pcscf,) if self.pcscf is not None else ())

    # --- addresses -----------------------------------------------------------------------------------
    @property
    def icscf_uri(self) -> str:
        """Where a P-CSCF (the gateway, SIPp) sends REGISTERs: the I-CSCF's SIP URI."""
        return f"sip:{_uri_host(self.host)}:{self.icscf_port}"

    @property
    def scscf_uri(self) -> str:
        """The S-CSCF's SIP URI; also its Server-Name on Cx (what the HSS stores and returns)."""
        return f"sip:{_uri_host(self.host)}:{self.scscf_port}"

    @property
    def server_name(self) -> str:
        return self.scscf_uri

    @property
    def service_route(self) -> str:
        """The Service-Route the S-CSCF returns in the 200 to REGISTER (orig requests go there)."""
        return f"<sip:orig@{_uri_host(self.host)}:{self.scscf_port};lr>"

    @property
    def pcscf_uri(self) -> str:
        """The P-CSCF's SIP URI (``with_pcscf``): where a UE (the gateway behind a P-CSCF) registers."""
        if self.pcscf is None:
            raise KamailioError("no P-CSCF: KamailioIms(with_pcscf=True)")
        return f"sip:{_uri_host(self.host)}:{self.pcscf_port}"

    @property
    def pcscf_path(self) -> str:
        """The Path entry the P-CSCF adds to REGISTERs (RFC 3327): its terminating side."""
        return f"<sip:term@{_uri_host(self.host)}:{self.pcscf_port};lr>"

    @property
    def pcscf_address(self) -> tuple[str, int]:
        return (self.host, self.pcscf_port)

    @property
    def icscf_address(self) -> tuple[str, int]:
        return (self.host, self.icscf_port)

    @property
    def scscf_address(self) -> tuple[str, int]:
        return (self.host, self.scscf_port)

    # --- lifecycle -------------------------------------------------------------------------------------
    def check_installed(self) -> None:
        """Raise :class:`KamailioNotInstalled` unless kamailio and the modules it needs are present."""
        binary = shutil.which(self.kamailio)
        if binary is None:
            raise KamailioNotInstalled(
                f"{self.kamailio} not found: apt-get install {' '.join(DEBIAN_PACKAGES)}"
            )
        info = subprocess.run([binary, "-I"], capture_output=True, timeout=30, check=False)
        match = re.search(rb"Default paths to modules: *(\S+)", info.stdout + info.stderr)
        if match is None:
            return  # an unusual build: let a failing start tell
        missing = [m for m in REQUIRED_MODULES if not (Path(match.group(1).decode()) / f"{m}.so").exists()]
        if missing:
            raise KamailioNotInstalled(
                f"Kamailio modules {missing} missing: apt-get install {' '.join(DEBIAN_PACKAGES)}"
            )

    def render(self) -> None:
        """Write the configuration files and the I-CSCF's SQLite database into the work directory."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for process in self.processes:
            (self.workdir / f"{process.name}.cfg").write_text(_template(f"{process.name}.cfg"), "utf-8")
        (self.workdir / "icscf-params.cfg").write_text(self._icscf_params(), "utf-8")
        (self.workdir / "scscf-params.cfg").write_text(self._scscf_params(), "utf-8")
        if self.pcscf is not None:
            (self.workdir / "pcscf-params.cfg").write_text(self._pcscf_params(self.pcscf), "utf-8")
        (self.workdir / "icscf.xml").write_text(
            self._cdp_xml(self.icscf_identity, self.icscf_diameter_port), "utf-8"
        )
        (self.workdir / "scscf.xml").write_text(
            self._cdp_xml(self.scscf_identity, self.scscf_diameter_port), "utf-8"
        )
        self._write_scscf_list(self.workdir / "icscf.sqlite")
        if self.pcscf is not None and self.pcscf_reginfo:
            self._write_pua_table(self.workdir / "pcscf.sqlite")

    def start(self, timeout: float = 30.0) -> None:
        """Render the configs, start the S-CSCF, the I-CSCF (and the P-CSCF); wait until they answer SIP."""
        self.check_installed()
        if self.pcscf is not None and not in_loopback_only_namespace():
            raise KamailioError(
                "the Kamailio P-CSCF runs only in a network namespace that has nothing but "
                "loopback (webims.testing.netns): ims_registrar_pcscf needs ims_ipsec_pcscf, which deletes "
                "the IPsec SAs and policies of the namespace it starts in"
            )
        self.render()
        try:
            for process in self.processes:
                process.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop them (logs stay readable through :meth:`log_report`); remove an own temporary workdir."""
        for process in reversed(self.processes):
            process.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_diameter_open(self, timeout: float = 20.0) -> None:
        """Wait until both CSCFs have an open Diameter connection (CER/CEA done) to the HSS."""
        deadline = time.monotonic() + timeout
        states: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            states = {p.name: p.diameter_peers() for p in (self.icscf, self.scscf)}
            if all(s.get(self.hss_host, "").endswith("_Open") for s in states.values()):
                return
            time.sleep(0.2)
        raise KamailioError(f"Diameter peers not open within {timeout} s: {states}\n{self.log_report()}")

    def log_report(self, limit: int = _LOG_TAIL) -> str:
        """The logs' tails, for a failing test's report."""
        return "\n".join(p.log_tail(limit) for p in self.processes)

    def registered_contacts(self, impu: str) -> str:
        """The S-CSCF's usrloc record of ``impu`` (RPC ulscscf.showimpu), as kamcmd prints it."""
        return self.scscf.rpc("ulscscf.showimpu", impu)

    def pcscf_records(self) -> int:
        """How many contacts the P-CSCF's usrloc holds (RPC ulpcscf.status, "Records"; 5.6.3 has
        no RPC listing them)."""
        if self.pcscf is None:
            raise KamailioError("no P-CSCF: KamailioIms(with_pcscf=True)")
        status = self.pcscf.rpc("ulpcscf.status")
        match = re.search(r"Records:\s*(\d+)", status)
        if match is None:
            raise KamailioError(f"pcscf: unexpected ulpcscf.status output: {status!r}")
        return int(match.group(1))

    # --- rendering -------------------------------------------------------------------------------------
    def _common_params(self, process: KamailioProcess) -> list[str]:
        h = _uri_host(self.host)
        port = process.sip_port
        return [
            "# generated by webims.testing.kamailio",
            f"#!define NETWORKNAME {_cfg_string(self.realm)}",
            f"#!define TNA_TOKEN {_cfg_string(self.tna_token)}",
            f"#!define CTL_SOCKET {_cfg_string('unix:' + str(process.ctl_socket))}",
            f"listen=udp:{h}:{port}",
            f"listen=tcp:{h}:{port}",
            f"alias={self.realm}",
            f"children={self.children}",
            f"tcp_children={self.children}",
            f"debug={self.debug}",
        ]

    def _icscf_params(self) -> str:
        lines = self._common_params(self.icscf)
        lines += [
            f"#!define DB_URL {_cfg_string('sqlite:///' + str(self.workdir / 'icscf.sqlite'))}",
            f"#!define CDP_CONFIG {_cfg_string(str(self.workdir / 'icscf.xml'))}",
            f"#!define TRUSTED_RE {_cfg_string(trusted_regex(self._icscf_trusted))}",
            f"#!define CHALLENGE_DELAY_US {int(self.challenge_delay * 1_000_000)}",
        ]
        return "\n".join(lines) + "\n"

    @property
    def _icscf_trusted(self) -> tuple[str, ...]:
        """Whom the I-CSCF trusts for TNA: behind a P-CSCF, that P-CSCF (which checks the sender)."""
        return self.trusted_addresses + ((self.host,) if self.pcscf is not None else ())

    def _pcscf_params(self, pcscf: KamailioProcess) -> str:
        lines = self._common_params(pcscf)
        lines += [
            f"#!define PCSCF_URI {_cfg_string(self.pcscf_uri)}",
            f"#!define PATH_HDR {_cfg_string(self.pcscf_path)}",
            f"#!define ICSCF_URI {_cfg_string(self.icscf_uri)}",
            f"#!define TRUSTED_RE {_cfg_string(trusted_regex(self.trusted_addresses))}",
        ]
        if self.pcscf_reginfo:
            lines += [
                "#!define WITH_REGINFO",
                f"#!define PUA_DB_URL {_cfg_string('sqlite:///' + str(self.workdir / 'pcscf.sqlite'))}",
            ]
        return "\n".join(lines) + "\n"

    def _scscf_params(self) -> str:
        lines = self._common_params(self.scscf)
        lines += [
            f"#!define SCSCF_URI {_cfg_string(self.scscf_uri)}",
            f"#!define ICSCF_URI {_cfg_string(self.icscf_uri)}",
            f"#!define CDP_CONFIG {_cfg_string(str(self.workdir / 'scscf.xml'))}",
            f"#!define AUTH_ALGORITHM {_cfg_string(self.auth_algorithm)}",
            f"#!define MIN_EXPIRES {int(self.min_expires)}",
            f"#!define MAX_EXPIRES {int(self.max_expires)}",
            f"#!define DEFAULT_EXPIRES {min(3600, int(self.max_expires))}",
        ]
        return "\n".join(lines) + "\n"

    def _cdp_xml(self, identity: str, diameter_port: int) -> str:
        return Template(_template("cdp.xml")).substitute(
            fqdn=identity,
            realm=self.realm,
            tc=self.diameter_reconnect,
            workers=self.diameter_workers,
            transaction_timeout=self.diameter_timeout,
            hss_fqdn=self.hss_host,
            hss_realm=self.hss_realm,
            hss_port=self.hss_port,
            diameter_port=diameter_port,
            host=self.host,
        )

    def _write_scscf_list(self, path: Path) -> None:
        """The I-CSCF's S-CSCF list (Kamailio's icscf.sql schema), holding our S-CSCF."""
        path.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(
                """
                CREATE TABLE nds_trusted_domains (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, trusted_domain VARCHAR(83) NOT NULL DEFAULT '');
                CREATE TABLE s_cscf (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(83) NOT NULL DEFAULT '',
                    s_cscf_uri VARCHAR(83) NOT NULL DEFAULT '');
                CREATE TABLE s_cscf_capabilities (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, id_s_cscf INTEGER NOT NULL DEFAULT 0,
                    capability INTEGER NOT NULL DEFAULT 0);
                """
            )
            db.execute("INSERT INTO nds_trusted_domains (trusted_domain) VALUES (?)", (self.realm,))
            db.execute(
                "INSERT INTO s_cscf (id, name, s_cscf_uri) VALUES (1, ?, ?)", ("scscf", self.scscf_uri)
            )
            db.executemany(
                "INSERT INTO s_cscf_capabilities (id_s_cscf, capability) VALUES (1, ?)",
                [(c,) for c in self.scscf_capabilities],
            )
            db.commit()

    @staticmethod
    def _write_pua_table(path: Path) -> None:
        """pua's table (Kamailio's presence-create.sql, version 7): checked at start-up, unused in
        db_mode 0."""
        path.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(
                """
                CREATE TABLE version (
                    id INTEGER PRIMARY KEY NOT NULL, table_name VARCHAR(32) NOT NULL,
                    table_version INTEGER DEFAULT 0 NOT NULL);
                INSERT INTO version (table_name, table_version) VALUES ('pua', 7);
                CREATE TABLE pua (
                    id INTEGER PRIMARY KEY NOT NULL, pres_uri VARCHAR(255) NOT NULL,
                    pres_id VARCHAR(255) NOT NULL, event INTEGER NOT NULL, expires INTEGER NOT NULL,
                    desired_expires INTEGER NOT NULL, flag INTEGER NOT NULL, etag VARCHAR(128) NOT NULL,
                    tuple_id VARCHAR(64), watcher_uri VARCHAR(255) NOT NULL, call_id VARCHAR(255) NOT NULL,
                    to_tag VARCHAR(128) NOT NULL, from_tag VARCHAR(128) NOT NULL, cseq INTEGER NOT NULL,
                    record_route TEXT, contact VARCHAR(255) NOT NULL, remote_contact VARCHAR(255) NOT NULL,
                    version INTEGER NOT NULL, extra_headers TEXT NOT NULL);
                """
            )
            db.commit()
