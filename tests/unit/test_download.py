"""Downloads against a real HTTP server on loopback: pins, cache, retries, refusals."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import urllib3.util.retry

from layer_builder import download
from layer_builder.build.extension import load_manifest
from layer_builder.build.launcher import resolve_extension
from layer_builder.download import (
    default_cache_dir,
    display_url,
    fetch,
    fetch_json,
    fetch_unpinned,
    make_session,
    normalize_sha256,
    redact,
)
from layer_builder.errors import ChecksumError, DownloadError
from tests.helpers.http_server import FakeServer, Reply, Request
from tests.helpers.manifests import ELF, SHA, template_manifest

# ---------------------------------------------------------------------- a scripted server


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


@pytest.fixture
def fast_session() -> Iterator[Any]:
    session = make_session(retries=2, backoff_factor=0)
    yield session
    session.close()


BLOB = b"relay binary bytes\n" * 1000
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


# -------------------------------------------------------------------------------- tests


def test_download_verifies_and_caches(server: FakeServer, tmp_path: Path) -> None:
    url = server.route("/relay", Reply(body=BLOB))
    path = fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path)
    assert path.read_bytes() == BLOB
    assert path == tmp_path / "sha256" / BLOB_SHA
    assert server.requests[0].headers["user-agent"].startswith("layer-builder/")

    again = fetch(url, BLOB_SHA.upper(), allow_http=True, cache_dir=tmp_path)
    assert again == path
    assert server.hits("/relay") == 1  # the cache answered


def test_corrupted_cache_is_rehashed_and_replaced(server: FakeServer, tmp_path: Path) -> None:
    url = server.route("/relay", Reply(body=BLOB))
    path = fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path)
    path.write_bytes(b"tampered")
    assert fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path).read_bytes() == BLOB
    assert server.hits("/relay") == 2


def test_checksum_mismatch_names_everything_and_caches_nothing(
    server: FakeServer, tmp_path: Path
) -> None:
    url = server.route("/relay", Reply(body=b"something else"))
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError, match=f"expected {BLOB_SHA}") as exc:
        fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path)
    msg = str(exc.value)
    assert url in msg and f"expected {BLOB_SHA}" in msg and f"got {wrong}" in msg
    assert cache_files(tmp_path) == []


def test_plain_http_is_refused_unless_allowed(server: FakeServer, tmp_path: Path) -> None:
    url = server.route("/relay", Reply(body=BLOB))
    with pytest.raises(DownloadError, match=r"refusing plain http:// .*`allow_http: true`") as exc:
        fetch(url, BLOB_SHA, cache_dir=tmp_path)
    assert url in str(exc.value)
    with pytest.raises(DownloadError, match="allow_http"):
        fetch_json(url)
    with pytest.raises(DownloadError, match="unsupported URL scheme 'file'"):
        fetch("file:///etc/passwd", BLOB_SHA, cache_dir=tmp_path)
    assert server.requests == []


def test_server_error_is_retried(server: FakeServer, tmp_path: Path, fast_session: Any) -> None:
    url = server.route("/relay", Reply(500, b"oops"), Reply(body=BLOB))
    path = fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path, session=fast_session)
    assert path.read_bytes() == BLOB
    assert server.hits("/relay") == 2


def test_persistent_errors_give_up_with_the_status(
    server: FakeServer, tmp_path: Path, fast_session: Any
) -> None:
    url = server.route("/relay", Reply(503))
    with pytest.raises(DownloadError, match=r"/relay: HTTP 503"):
        fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path, session=fast_session)
    assert server.hits("/relay") == 3  # first try + 2 retries
    missing = server.base + "/nope"
    with pytest.raises(DownloadError, match=r"/nope: HTTP 404"):
        fetch(missing, BLOB_SHA, allow_http=True, cache_dir=tmp_path, session=fast_session)
    assert cache_files(tmp_path) == []


def test_connection_refused_is_a_download_error(tmp_path: Path, fast_session: Any) -> None:
    srv = FakeServer()
    url = srv.base + "/gone"
    srv.close()  # nothing listens there any more
    with pytest.raises(DownloadError, match=r"/gone: download failed: .*refused"):
        fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path, session=fast_session)


def test_oversized_download_is_stopped(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", 100)
    url = server.route("/big", Reply(body=BLOB))
    with pytest.raises(DownloadError, match="larger than 100 bytes"):
        fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path)
    assert cache_files(tmp_path) == []


def test_fetch_unpinned_returns_the_digest(server: FakeServer, tmp_path: Path) -> None:
    url = server.route("/relay", Reply(body=BLOB))
    path, digest = fetch_unpinned(url, allow_http=True, cache_dir=tmp_path)
    assert digest == BLOB_SHA and path.read_bytes() == BLOB
    # The next pinned fetch is a cache hit.
    assert fetch(url, digest, allow_http=True, cache_dir=tmp_path) == path
    assert server.hits("/relay") == 1


def test_registry_json(server: FakeServer) -> None:
    doc = b'{"version": "25.1.0", "files": {"relay-Linux-x86_64": {"url": "https://x/r"}}}'
    url = server.route("/apps/relay/25.1.0", Reply(body=doc))
    assert fetch_json(url, allow_http=True)["files"]["relay-Linux-x86_64"]["url"] == "https://x/r"
    bad = server.route("/apps/relay/html", Reply(body=b"<html>"))
    with pytest.raises(DownloadError, match=r"/apps/relay/html: not a JSON document"):
        fetch_json(bad, allow_http=True)


def test_credentials_never_reach_messages(server: FakeServer, tmp_path: Path) -> None:
    server.route("/private", Reply(403))
    url = server.base.replace("http://", "http://user:hunter2@") + "/private?token=s3cret"
    with pytest.raises(DownloadError, match="HTTP 403") as exc:
        fetch(url, BLOB_SHA, allow_http=True, cache_dir=tmp_path)
    assert "hunter2" not in str(exc.value) and "s3cret" not in str(exc.value)
    assert "HTTP 403" in str(exc.value)
    assert display_url("https://u:p@h.example:8443/a/b?sig=x#f") == "https://h.example:8443/a/b?..."


def test_bad_pin_is_refused_before_downloading(server: FakeServer, tmp_path: Path) -> None:
    url = server.route("/relay", Reply(body=BLOB))
    with pytest.raises(ChecksumError, match="is not 64 hex digits"):
        fetch(url, "NOT-PINNED", allow_http=True, cache_dir=tmp_path)
    assert server.requests == []


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAYER_BUILDER_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LAYER_BUILDER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "layer-builder"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "layer-builder"


# ------------------------------------------------------------------------------------------------
# Download edges against a real HTTP server on loopback: the size limits at their
# boundaries and over several chunks, which statuses are retried, Retry-After, the caller's
# session, where partial files live, redirects, and the exact error texts.


MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_normalize_sha256() -> None:
    assert normalize_sha256(" " + "AB" * 32 + "\n") == "ab" * 32
    assert normalize_sha256("g" * 64) is None  # 64 characters, not hex
    assert normalize_sha256("ab" * 31) is None  # hex, too short
    with pytest.raises(ChecksumError, match="is not 64 hex digits") as exc:
        fetch("https://u:p@dl.example/relay?sig=1", "abc")
    assert (
        str(exc.value) == "https://dl.example/relay?...: pinned sha256 'abc' is not 64 hex digits"
    )


def test_display_url_without_a_host() -> None:
    assert display_url("file:///etc/passwd") == "file:///etc/passwd"
    with pytest.raises(DownloadError, match="unsupported URL scheme") as exc:
        fetch("ftp://u:p@h.example/x", "a" * 64)
    assert str(exc.value) == "ftp://h.example/x: unsupported URL scheme 'ftp' (need https://)"


def test_download_size_limit_at_the_boundary_and_across_chunks(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"x" * (2 * MIB + 10)  # three 1 MiB chunks
    url = server.route("/relay", Reply(body=body))
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", len(body))
    assert fetch(url, sha(body), allow_http=True, cache_dir=tmp_path).read_bytes() == body
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", len(body) - 1)
    with pytest.raises(DownloadError, match="larger than") as exc:
        fetch_unpinned(url, allow_http=True, cache_dir=tmp_path / "other")
    assert str(exc.value) == f"{url}: larger than {len(body) - 1} bytes"
    assert list((tmp_path / "other" / "sha256").iterdir()) == []


def test_json_size_limit_at_the_boundary_and_across_chunks(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = b'{"pad": "' + b"p" * (2 * MIB) + b'"}'
    url = server.route("/doc", Reply(body=doc))
    monkeypatch.setattr(download, "MAX_JSON_BYTES", len(doc))
    assert len(fetch_json(url, allow_http=True)["pad"]) == 2 * MIB
    monkeypatch.setattr(download, "MAX_JSON_BYTES", len(doc) - 1)
    with pytest.raises(DownloadError, match="JSON document larger") as exc:
        fetch_json(url, allow_http=True)
    assert str(exc.value) == f"{url}: JSON document larger than 10 MiB"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_these_statuses_are_retried(server: FakeServer, tmp_path: Path, status: int) -> None:
    url = server.route("/relay", Reply(status, b"busy"), Reply(body=b"ok"))
    session = make_session(retries=1, backoff_factor=0)
    assert fetch(url, sha(b"ok"), allow_http=True, cache_dir=tmp_path, session=session)
    assert server.hits("/relay") == 2
    session.close()


def test_retry_after_is_honoured(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    url = server.route("/relay", Reply(429, b"slow down", {"Retry-After": "7"}), Reply(body=b"ok"))
    session = make_session(retries=1, backoff_factor=0)
    fetch(url, sha(b"ok"), allow_http=True, cache_dir=tmp_path, session=session)
    session.close()
    assert slept == [7.0]


def test_the_callers_session_is_used(server: FakeServer, tmp_path: Path) -> None:
    session = make_session(retries=0)
    session.headers["X-Marker"] = "mine"
    url = server.route("/relay", Reply(body=b"ok"))
    fetch(url, sha(b"ok"), allow_http=True, cache_dir=tmp_path, session=session)
    fetch_unpinned(url, allow_http=True, cache_dir=tmp_path / "u", session=session)
    doc = server.route("/doc", Reply(body=b"{}"))
    assert fetch_json(doc, allow_http=True, session=session) == {}
    session.close()
    assert [r.headers.get("x-marker") for r in server.requests] == ["mine"] * 3


def test_partial_downloads_live_in_the_cache(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The system temporary directory does not exist: the partial file must not go there.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    cache = tmp_path / "cache"
    during: list[list[str]] = []

    def answer(req: Request) -> Reply:
        during.append([p.name[:9] for p in (cache / "sha256").iterdir()])
        return Reply(body=b"ok")

    url = server.route("/relay", answer)
    path = fetch(url, sha(b"ok"), allow_http=True, cache_dir=cache)
    assert during == [[".partial-"]]
    assert sorted(p.name for p in path.parent.iterdir()) == [sha(b"ok")]


def test_an_http_redirect_is_followed_when_http_is_allowed(
    server: FakeServer, tmp_path: Path
) -> None:
    server.route("/final", Reply(body=b"ok"))
    url = server.route("/moved", Reply(302, b"", {"Location": server.base + "/final"}))
    assert fetch(url, sha(b"ok"), allow_http=True, cache_dir=tmp_path).read_bytes() == b"ok"
    _, digest = fetch_unpinned(url, allow_http=True, cache_dir=tmp_path / "u")
    assert digest == sha(b"ok")


def test_connection_errors_read_plainly(tmp_path: Path) -> None:
    srv = FakeServer()
    url = srv.base + "/gone"
    port = urlsplit(url).port
    srv.close()
    session = make_session(retries=0)
    with pytest.raises(DownloadError, match="download failed") as exc:
        fetch(url, "a" * 64, allow_http=True, cache_dir=tmp_path, session=session)
    assert str(exc.value) == (
        f"{url}: download failed: HTTPConnection(host='127.0.0.1', port={port}): "
        "Failed to establish a new connection: "
        "[Errno 111] Connection refused"
    )
    session.close()


def test_a_body_cut_short_is_an_interrupted_download(tmp_path: Path) -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        conn.close()

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/relay"
    session = make_session(retries=0)
    with pytest.raises(DownloadError, match="download interrupted") as exc:
        fetch(url, "a" * 64, allow_http=True, cache_dir=tmp_path, session=session)
    session.close()
    thread.join(timeout=5)
    listener.close()
    assert str(exc.value).startswith(f"{url}: download interrupted: ")
    assert "IncompleteRead(10 bytes read, 990 more expected)" in str(exc.value)
    assert list((tmp_path / "sha256").iterdir()) == []


def test_redact_hides_query_user_and_password() -> None:
    url = "https://alice:s3cret-pw@h.example/x?token=abc&sig=zz"
    text = f"failed for {url} (user alice, token=abc&sig=zz)"
    assert (
        download.redact(text, url) == "failed for https://...:...@h.example/x?... (user ..., ...)"
    )
    # The longest secret goes first: a password containing the user name is hidden whole.
    assert download.redact("bob:bobby", "https://bob:bobby@h/") == "...:..."
    assert download.redact("nothing secret", "https://h.example/x") == "nothing secret"


def test_error_reason_is_one_redacted_line_of_at_most_300_characters() -> None:
    import requests

    url = "https://h.example/x?token=abc"
    exc = requests.ConnectionError(f"cannot reach {url}\n  twice   over")
    assert download.error_reason(exc, url) == "cannot reach https://h.example/x?... twice over"
    long = requests.ConnectionError("x" * 400)
    assert download.error_reason(long, url) == "x" * 300


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8080/r", True),
        ("http://LOCALHOST/r", True),
        ("http://api.localhost/r", True),
        ("http://127.0.0.1/r", True),
        ("http://127.8.9.10/r", True),
        ("http://[::1]:9000/r", True),
        ("http://localhost.example.com/r", False),
        ("http://10.0.0.1/r", False),
        ("http://h.example/r", False),
        ("file:///r", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert download.is_loopback_url(url) is loopback


def test_reason_drops_only_the_connection_object_prefix() -> None:
    import requests

    class Wrapped:  # what urllib3 puts in a ConnectionError's args: an error with a reason
        def __init__(self, reason: str) -> None:
            self.reason = reason

    def reason(text: str) -> str:
        return download.error_reason(requests.ConnectionError(Wrapped(text)), "https://h/")

    assert reason("<urllib3.connection.HTTPSConnection object at 0x7f>: Failed: refused") == (
        "Failed: refused"
    )
    assert reason("<conn>: first >: second") == "first >: second"
    assert reason("<no separator here") == "<no separator here"
    assert reason("plain >: text") == "plain >: text"
    assert download.error_reason(requests.ConnectionError(), "https://h/") == ""


def test_backoff_between_retries(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    url = server.route("/relay", Reply(503), Reply(503), Reply(503), Reply(body=b"ok"))
    session = make_session(retries=3, backoff_factor=0.5)
    fetch(url, sha(b"ok"), allow_http=True, cache_dir=tmp_path, session=session)
    session.close()
    assert slept == [1.0, 2.0]  # urllib3: no wait before the first retry, then 0.5 * 2**n


def test_an_uncreatable_cache_and_unpinned_http(server: FakeServer, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DownloadError, match="cannot create the download cache") as exc:
        fetch("https://h.example/x", "a" * 64, cache_dir=blocker / "cache")
    assert str(exc.value) == (
        f"{blocker}/cache/sha256: cannot create the download cache: Not a directory"
    )
    url = server.route("/relay", Reply(body=b"ok"))
    with pytest.raises(DownloadError, match="refusing plain http://"):
        fetch_unpinned(url, cache_dir=tmp_path / "c")
    assert server.requests == []


def test_unpinned_partial_downloads_live_in_the_cache(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    url = server.route("/relay", Reply(body=b"ok"))
    path, digest = fetch_unpinned(url, allow_http=True, cache_dir=tmp_path / "cache")
    assert path == tmp_path / "cache" / "sha256" / digest


# ------------------------------------------------------------------------------------------------
# download.py's retries and redaction: the default session's number of
# attempts and its backoff, the total retry budget shared by different kinds of failure,
# the order in which secrets are redacted, and the plain-http refusal word for word.


def test_the_default_session_tries_five_times_with_growing_waits(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    url = server.route("/relay", Reply(503, b"busy"))
    with pytest.raises(DownloadError, match="HTTP 503") as exc:
        fetch(url, "a" * 64, allow_http=True, cache_dir=tmp_path)  # no session: the default
    assert str(exc.value) == f"{url}: HTTP 503 Service Unavailable"
    assert server.hits("/relay") == 5  # the first try and 4 retries
    assert slept == [1.0, 2.0, 4.0]  # none before the first retry, then 0.5 * 2**n


class ScriptedServer:
    """One connection per request on loopback: each answers with the next scripted step,
    ``b"drop"`` closing the connection without an answer (a read error to the client)."""

    def __init__(self, steps: list[bytes]) -> None:
        self.steps = steps
        self.served = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/relay"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for step in self.steps:
            conn, _ = self._listener.accept()
            with conn:
                if not conn.recv(65536):
                    return  # the wake-up connection from close(): no request
                self.served += 1
                if step != b"drop":
                    conn.sendall(step)

    def close(self) -> None:
        # Closing the listener does not wake a thread blocked in accept(): a connection does.
        with socket.create_connection(self._listener.getsockname()):
            pass
        self._thread.join(timeout=5)
        self._listener.close()


BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_retries_of_every_kind_share_one_budget(tmp_path: Path) -> None:
    # Three 503s and two dropped connections are five failures: one more than the 4 retries
    # allowed in all, though neither kind alone used up 4.
    srv = ScriptedServer([BUSY, BUSY, BUSY, b"drop", b"drop", OK])
    session = make_session(retries=4, backoff_factor=0)
    try:
        with pytest.raises(DownloadError, match="download failed") as exc:
            fetch(
                srv.url,
                hashlib.sha256(b"ok").hexdigest(),
                allow_http=True,
                cache_dir=tmp_path,
                session=session,
            )
    finally:
        session.close()
        srv.close()
    assert str(exc.value).startswith(f"{srv.url}: download failed: ")
    assert srv.served == 5


def test_a_longer_secret_is_redacted_before_one_it_contains() -> None:
    # The user name is inside the password: replacing it first would leave "a-" behind.
    url = "https://user:a-user@dl.example/relay"
    assert redact(f"{url} failed", url) == "https://...:...@dl.example/relay failed"


def test_only_secrets_the_url_has_are_redacted() -> None:
    url = "https://dl.example/relay"  # no query, user name or password
    text = "XXXX at https://dl.example/relay: 404"
    assert redact(text, url) == text


def test_plain_http_refusal_word_for_word(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="refusing plain http://") as exc:
        fetch("http://dl.example/relay", "a" * 64, cache_dir=tmp_path)
    assert str(exc.value) == (
        "http://dl.example/relay: refusing plain http:// download; use https:// or set "
        "`allow_http: true` in the extension manifest"
    )


# ------------------------------------------------------------------------------------------------
# Downloads refuse plain http:// unless a manifest says ``allow_http: true``, and an https://
# URL that redirects to http:// is refused too: a real TLS server on loopback (self-signed
# certificate made here) redirects to a real plain-HTTP server.


PINNED_BLOB = b"the pinned bytes\n" * 8
PINNED_SHA = hashlib.sha256(PINNED_BLOB).hexdigest()


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
    plain.route("/relay", Reply(body=PINNED_BLOB))
    url = redirector.base + "/relay"
    with pytest.raises(
        DownloadError,
        match=rf"^{plain.base}/relay: refusing plain http:// download; use https://",
    ):
        fetch(url, PINNED_SHA, cache_dir=tmp_path / "cache", session=session)
    assert list((tmp_path / "cache" / "sha256").iterdir()) == []  # nothing kept
    # The control: the same redirect is followed when the manifest allows http.
    path = fetch(url, PINNED_SHA, allow_http=True, cache_dir=tmp_path / "cache", session=session)
    assert path.read_bytes() == PINNED_BLOB


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
    answers = [(502, {}, b"bad gateway"), (504, {}, b"timeout"), (200, {}, PINNED_BLOB)]
    seen: list[str] = []

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        seen.append(path)
        return answers.pop(0)

    srv = TlsServer(certificate, answer)
    try:
        retrying = make_session(retries=2, backoff_factor=0)
        retrying.verify = session.verify
        path = fetch(srv.base + "/relay", PINNED_SHA, cache_dir=tmp_path, session=retrying)
        retrying.close()
    finally:
        srv.close()
    assert path.read_bytes() == PINNED_BLOB and seen == ["/relay"] * 3
