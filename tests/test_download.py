"""Downloads against a real HTTP server on loopback: pins, cache, retries, refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layer_builder import download
from layer_builder.download import (
    default_cache_dir,
    display_url,
    fetch,
    fetch_json,
    fetch_unpinned,
    make_session,
)
from layer_builder.errors import ChecksumError, DownloadError
from tests.helpers.http_server import FakeServer, Reply

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
