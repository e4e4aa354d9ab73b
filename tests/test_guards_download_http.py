"""Download edges against a real HTTP server on loopback: the size limits at their
boundaries and over several chunks, which statuses are retried, Retry-After, the caller's
session, where partial files live, redirects, and the exact error texts (mutation testing
found these unchecked; see docs/mutation-testing.md)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import urllib3.util.retry

from layer_builder import download
from layer_builder.download import (
    display_url,
    fetch,
    fetch_json,
    fetch_unpinned,
    make_session,
    normalize_sha256,
)
from layer_builder.errors import ChecksumError, DownloadError
from tests.helpers.http_server import FakeServer, Reply, Request

MIB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


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
