"""What mutation testing found unpinned in download.py: the default session's number of
attempts and its backoff, the total retry budget shared by different kinds of failure,
the order in which secrets are redacted, and the plain-http refusal word for word (see
docs/mutation-testing.md)."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3.util.retry

from layer_builder.download import fetch, make_session, redact
from layer_builder.errors import DownloadError
from tests.helpers.http_server import FakeServer, Reply


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


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
