"""A self-signed certificate for 127.0.0.1, so the google-ads client's TLS channel reaches the sandbox unchanged.

`GoogleAdsClient.get_service` always opens a TLS channel with the default root certificates, and gRPC reads
those once per process from GRPC_DEFAULT_SSL_ROOTS_FILE_PATH when set. So one certificate serves the whole
process: it is generated on first use, written (0600) to a temporary folder, and the variable points at it.
Only the sandbox calls this (it replaces the process's trusted roots, which would cut it off from Google).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOTS_VARIABLE = "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"


@dataclass(frozen=True)
class Certificate:
    key_pem: bytes
    cert_pem: bytes
    path: Path  # the certificate file gRPC trusts


_lock = threading.Lock()
_certificate: Certificate | None = None


def sandbox_certificate() -> Certificate:
    """The process's sandbox certificate, trusted by every gRPC channel this process opens from now on."""
    global _certificate
    with _lock:
        if _certificate is None:
            _certificate = _generate()
        os.environ[ROOTS_VARIABLE] = str(_certificate.path)
        return _certificate


def _generate() -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gtg google ads sandbox")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    folder = Path(tempfile.mkdtemp(prefix="gtg-google-ads-sandbox-"))
    path = folder / "sandbox-ca.pem"
    path.write_bytes(cert_pem)
    path.chmod(0o600)
    return Certificate(key_pem, cert_pem, path)
