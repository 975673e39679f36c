"""TLS contexts, and a self-signed certificate for loopback and demo use.

:func:`ensure_self_signed` makes (once) an ECDSA P-256 key and a self-signed
certificate for ``localhost``/``127.0.0.1``/``::1`` in a directory — the demo's
"self-signed certificate made on first run" (DESIGN.md §4) and the tests' TLS
and WSS certificate.  Not for production: real deployments bring their own.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CERT_FILE",
    "DEFAULT_HOSTS",
    "KEY_FILE",
    "client_context",
    "ensure_self_signed",
    "make_self_signed",
    "server_context",
]

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def _san(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_self_signed(hosts: Iterable[str] = DEFAULT_HOSTS, *, common_name: str = "webims (self-signed)",
                     valid_days: int = 825) -> tuple[bytes, bytes]:
    """A new (certificate PEM, private key PEM) pair for ``hosts`` (DNS names or IP
    addresses in subjectAltName, RFC 5280 §4.2.1.6)."""
    hosts = list(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert_pem, key_pem


def _usable(cert_path: Path, hosts: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1):
        return False
    present = set(_san(hosts))
    return present <= set(san)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_self_signed(directory: str | os.PathLike[str], hosts: Iterable[str] = DEFAULT_HOSTS,
                       ) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in ``directory``: the existing pair when it is still
    valid for a day and covers ``hosts``, else a new one (key file mode 0600)."""
    hosts = list(hosts)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if key_path.exists() and _usable(cert_path, hosts):
        return cert_path, key_path
    cert_pem, key_pem = make_self_signed(hosts)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o644)
    return cert_path, key_path


def server_context(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server TLS context (TLS >= 1.2, RFC 3261 §26.3.1 asks for TLS on SIP)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file))
    return context


def client_context(cafile: str | os.PathLike[str] | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """A client TLS context: the system CAs, or only ``cafile`` (e.g. the
    self-signed certificate); ``verify=False`` checks nothing (tests, labs)."""
    context = ssl.create_default_context(cafile=os.fspath(cafile) if cafile is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
