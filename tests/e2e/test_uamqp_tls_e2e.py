"""uamqp's TLS under qemu: our aarch64 wheel completes a verified TLS handshake with a local server.

The test makes its own CA and a server certificate for 127.0.0.1 (cryptography), serves TLS with the
host's Python `ssl` on 127.0.0.1, and runs uamqp's own AMQPS stack (SendClient -> azure-c-shared-
utility's tlsio_openssl -> the wheel's grafted libssl/libcrypto) in Debian's arm64 CPython under
qemu-aarch64, with `verify=` the test CA. The server proves the handshake: it receives uamqp's AMQP
SASL protocol header through TLS. A second client that trusts another CA must refuse the server's
certificate (the handshake never completes): verification is on, not merely a TLS connection.

Builds uamqp 1.6.11 from its PyPI sdist (pinned by sha256) with `wheelfarm build`:
`.venv/bin/pytest -m e2e tests/e2e/test_uamqp_tls_e2e.py`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from builder.build.runtest import prepare_site, target_env
from builder.build.toolchain.host import ensure_qemu, test_sysroot
from builder.common.buildlog import BuildLog

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "uamqp.toml"
SDIST_SHA256 = "6bab2fb249cb2ca312795093747227de3f09648f8dad77f432b49a45e5bc403d"
AMQP_SASL_HEADER = b"AMQP\x03\x01\x00\x00"

CLIENT = """
import sys, time
import uamqp
from uamqp import authentication, c_uamqp
port, ca = int(sys.argv[1]), sys.argv[2]
auth = authentication.SASLAnonymous("127.0.0.1", port=port, verify=ca)
client = uamqp.SendClient(f"amqps://127.0.0.1:{port}/wheelfarm", auth=auth)
client.open()
deadline = time.monotonic() + 120
try:
    while time.monotonic() < deadline and not client.client_ready():
        time.sleep(0.05)
except Exception as exc:  # the test server hangs up after the protocol header
    print("client stopped:", type(exc).__name__)
finally:
    client.close()
maps = open("/proc/self/maps").read()
print("libssl from the wheel:", any("uamqp.libs/libssl" in l for l in maps.splitlines()))
"""


def _ca(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _write_pki(root: Path) -> dict[str, Path]:
    """A CA, a server certificate for IP 127.0.0.1 signed by it, and an unrelated second CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key, ca_cert = _ca("wheelfarm test CA")
    _other_key, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = {
        "ca": root / "ca.pem",
        "other_ca": root / "other-ca.pem",
        "cert": root / "server.pem",
        "key": root / "server.key",
    }
    files["ca"].write_bytes(ca_cert.public_bytes(pem))
    files["other_ca"].write_bytes(other_cert.public_bytes(pem))
    files["cert"].write_bytes(cert.public_bytes(pem))
    files["key"].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class TLSServer:
    """One TLS connection on 127.0.0.1: handshake, then read the client's first 8 bytes."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.result: dict[str, object] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(300)
        conn, _ = self.sock.accept()
        conn.settimeout(120)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.result.update(version=tls.version(), cipher=tls.cipher()[0])
                data = b""
                while len(data) < 8 and (chunk := tls.recv(8 - len(data))):
                    data += chunk
                self.result["received"] = data
        except (ssl.SSLError, OSError) as exc:
            self.result["error"] = str(exc)
        finally:
            self.sock.close()


@pytest.fixture(scope="module")
def uamqp_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uamqp")
    proc = subprocess.run(
        ["wheelfarm", "build", str(RECIPE), "--python", "3.11", "--target",
         "manylinux_2_17_aarch64", "--out", str(out / "out"), "--log-dir", str(out / "logs"),
         "--json"],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    (result,) = json.loads(proc.stdout)["results"]
    assert result["status"] == "tested", result["message"]
    assert result["sdist_sha256"] == SDIST_SHA256
    return Path(result["wheel"])


def _run_client(wheel: Path, port: int, ca: Path, work: Path) -> str:
    sysroot = test_sysroot("3.11")
    assert sysroot is not None
    qemu = ensure_qemu()
    with BuildLog(work / "client.log") as log:
        site = prepare_site(
            wheel, "3.11", ["certifi>=2017.4.17"], ["manylinux2014_aarch64"], work, log
        )
    env = target_env(qemu, sysroot, "3.11", site, work)
    script = work / "client.py"
    script.write_text(CLIENT)
    proc = subprocess.run(
        [qemu, "-L", sysroot, sysroot / "usr/bin/python3.11", "-s", script, str(port), str(ca)],
        env=env, cwd=work, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.e2e
@pytest.mark.timeout(3600)
@pytest.mark.slow
def test_uamqp_completes_a_verified_tls_handshake_under_qemu(
    uamqp_wheel: Path, tmp_path: Path
) -> None:
    pki = _write_pki(tmp_path)
    server = TLSServer(pki["cert"], pki["key"])
    out = _run_client(uamqp_wheel, server.port, pki["ca"], tmp_path / "trusting")
    server.thread.join(60)
    assert server.result.get("received") == AMQP_SASL_HEADER, (server.result, out)
    assert server.result["version"] in ("TLSv1.2", "TLSv1.3")
    assert "libssl from the wheel: True" in out


@pytest.mark.e2e
@pytest.mark.timeout(3600)
@pytest.mark.slow
def test_uamqp_refuses_a_server_its_ca_did_not_sign(uamqp_wheel: Path, tmp_path: Path) -> None:
    pki = _write_pki(tmp_path)
    server = TLSServer(pki["cert"], pki["key"])
    out = _run_client(uamqp_wheel, server.port, pki["other_ca"], tmp_path / "distrusting")
    server.thread.join(60)
    # The handshake never completed: azure-c-shared-utility's tlsio closes the socket when
    # verification fails (the server sees EOF mid-handshake; OpenSSL clients may send "unknown ca").
    assert "version" not in server.result and "received" not in server.result, (server.result, out)
    error = str(server.result.get("error", "")).lower()
    assert "unexpected_eof" in error or "unknown ca" in error, server.result
