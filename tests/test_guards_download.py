"""Downloads refuse plain http:// unless a manifest says ``allow_http: true``, and an https://
URL that redirects to http:// is refused too: a real TLS server on loopback (self-signed
certificate made here) redirects to a real plain-HTTP server. Mutants that forced
``allow_http`` on or skipped the check after a redirect passed the older tests."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from layer_builder.build.extension import load_manifest
from layer_builder.build.launcher import resolve_extension
from layer_builder.download import fetch, fetch_json, make_session
from layer_builder.errors import DownloadError
from tests.helpers.http_server import FakeServer, Reply
from tests.helpers.manifests import ELF, SHA, template_manifest

BLOB = b"the pinned bytes\n" * 8
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class TlsServer:
    """An HTTPS server on 127.0.0.1; ``answer(path)`` gives (status, headers, body)."""

    def __init__(
        self,
        certificate: tuple[Path, Path],
        answer: Callable[[str], tuple[int, dict[str, str], bytes]],
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def plain() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


@pytest.fixture
def redirector(certificate: tuple[Path, Path], plain: FakeServer) -> Iterator[TlsServer]:
    """Answers every GET with a 302 to the same path on the plain-HTTP server."""
    srv = TlsServer(certificate, lambda path: (302, {"Location": plain.base + path}, b""))
    yield srv
    srv.close()


@pytest.fixture
def session(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[requests.Session]:
    # Trust the test certificate only; requests lets these variables override session.verify.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, str(certificate[0]))
    sess = make_session(retries=0)
    sess.verify = str(certificate[0])
    yield sess
    sess.close()


def test_https_redirecting_to_http_is_refused(
    redirector: TlsServer, plain: FakeServer, session: requests.Session, tmp_path: Path
) -> None:
    plain.route("/relay", Reply(body=BLOB))
    url = redirector.base + "/relay"
    with pytest.raises(
        DownloadError,
        match=rf"^{plain.base}/relay: refusing plain http:// download; use https://",
    ):
        fetch(url, BLOB_SHA, cache_dir=tmp_path / "cache", session=session)
    assert list((tmp_path / "cache" / "sha256").iterdir()) == []  # nothing kept
    # The control: the same redirect is followed when the manifest allows http.
    path = fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path / "cache", session=session)
    assert path.read_bytes() == BLOB


def test_https_redirecting_to_http_is_refused_for_json(
    redirector: TlsServer, plain: FakeServer, session: requests.Session
) -> None:
    plain.route("/apps/relay/latest", Reply(body=b'{"version": "1.0.0"}'))
    url = redirector.base + "/apps/relay/latest"
    with pytest.raises(DownloadError, match="refusing plain http:// download"):
        fetch_json(url, session=session)
    assert fetch_json(url, allow_http=True, session=session) == {"version": "1.0.0"}


def test_a_manifest_without_allow_http_refuses_an_http_source(
    plain: FakeServer, tmp_path: Path
) -> None:
    plain.route("/relay/1.0.0/relay-Linux-x86_64", Reply(body=ELF["x86_64"]))
    text = template_manifest(tmp_path, plain, {"x86_64": SHA["x86_64"]}).read_text()
    assert "allow_http: true\n" in text
    (tmp_path / "ext.yml").write_text(text.replace("allow_http: true\n", ""))
    manifest = load_manifest(tmp_path / "ext.yml")
    assert manifest.allow_http is False
    with pytest.raises(DownloadError, match=r"refusing plain http:// download; use https://"):
        resolve_extension(manifest, "x86_64", cache_dir=tmp_path / "cache")
    assert plain.requests == []  # refused before any request


def test_https_downloads_are_retried(
    certificate: tuple[Path, Path], session: requests.Session, tmp_path: Path
) -> None:
    answers = [(502, {}, b"bad gateway"), (504, {}, b"timeout"), (200, {}, BLOB)]
    seen: list[str] = []

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        seen.append(path)
        return answers.pop(0)

    srv = TlsServer(certificate, answer)
    try:
        retrying = make_session(retries=2, backoff_factor=0)
        retrying.verify = session.verify
        path = fetch(srv.base + "/relay", BLOB_SHA, cache_dir=tmp_path, session=retrying)
        retrying.close()
    finally:
        srv.close()
    assert path.read_bytes() == BLOB and seen == ["/relay"] * 3
