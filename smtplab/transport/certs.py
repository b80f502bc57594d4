"""The lab's TLS certificate: self-signed for localhost, made on first use, kept for reuse.

STARTTLS needs a certificate; a workbench should not ask for one. :func:`lab_certificate`
makes a self-signed one for ``localhost``, ``127.0.0.1`` and ``::1`` (valid for a year) in
``~/.cache/smtplab`` (or ``$SMTPLAB_CACHE``) the first time it is needed, and reuses it after.
Clients verify it by loading the same file as their CA (``ssl.create_default_context(
cafile=...)``), or do not verify, as most SMTP clients do for opportunistic STARTTLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path


def cache_directory() -> Path:
    return Path(os.environ.get("SMTPLAB_CACHE") or Path.home() / ".cache" / "smtplab")


def lab_certificate(directory: Path | None = None) -> tuple[Path, Path]:
    """``(certificate, key)`` PEM files, made now if missing or expiring within a day."""
    directory = directory or cache_directory()
    cert, key = directory / "lab-cert.pem", directory / "lab-key.pem"
    if not (cert.exists() and key.exists() and _valid_for_a_day(cert)):
        directory.mkdir(parents=True, exist_ok=True)
        _make(cert, key)
    return cert, key


def server_context(directory: Path | None = None) -> ssl.SSLContext:
    """A server-side TLS context with the lab certificate."""
    cert, key = lab_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def unverified_client_context() -> ssl.SSLContext:
    """A client-side context that encrypts without checking the server's certificate: what
    ``smtplib`` does by default (opportunistic TLS), and all a lab's own certificate allows."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _valid_for_a_day(cert: Path) -> bool:
    from cryptography import x509

    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    remaining = loaded.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return remaining > datetime.timedelta(days=1)


def _make(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtplab lab certificate")])
    now = datetime.datetime.now(datetime.UTC)
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    # Write the key first and only readable by its owner; each file appears whole (rename).
    key_bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(key, key_bytes, 0o600)
    _write_atomically(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(tmp, path)
