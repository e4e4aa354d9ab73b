"""A fake Sentry on loopback: the DSN of the smoke function points here.

It accepts what an SDK sends (envelopes on ``/api/<project>/envelope/``, the old
``/api/<project>/store/``), decompresses them, and records every item with the way it came:
``extension`` when a forwarding extension marked the request (the sandbox stand-in adds
``Via: 1.1 sentry-lambda-extension ...``; a proxy adds ``X-Forwarded-For``), else ``direct``.
The runner then asks, per invocation that raised, which events name its request id and
exception type, and by which path they arrived.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from layer_builder.smoke.api import read_body

log = logging.getLogger(__name__)

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"  # not a secret: the fake accepts any key
PROJECT_ID = "1"


@dataclass(frozen=True)
class SentryItem:
    """One envelope item: its type (``event``, ``transaction``, ``session``...) and payload."""

    type: str
    payload: dict[str, Any] | None
    path: str = "direct"  # "extension" when a forwarding extension marked the request

    @property
    def exception_types(self) -> list[str]:
        if not self.payload:
            return []
        values = (self.payload.get("exception") or {}).get("values") or []
        return [str(v.get("type")) for v in values if isinstance(v, dict) and v.get("type")]

    @property
    def request_ids(self) -> set[str]:
        """The Lambda request ids the event names as its own (``aws_request_id`` in the
        Python SDK's ``extra.lambda``, the Node SDK's ``contexts["aws.lambda"]``); breadcrumbs,
        which may name earlier invocations, are not looked at."""
        found: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "aws_request_id" and isinstance(value, str):
                        found.add(value)
                    elif key != "breadcrumbs":
                        walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.payload)
        return found


@dataclass
class FakeSentry:
    """What the fake received; filled by the server thread, read by the runner."""

    port: int = 0
    items: list[SentryItem] = field(default_factory=list)
    undecodable: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/{PROJECT_ID}"

    def record(self, items: list[SentryItem]) -> None:
        with self._cond:
            self.items.extend(items)
            self._cond.notify_all()

    def events(self) -> list[SentryItem]:
        """Error events (``event`` items), in arrival order."""
        with self._cond:
            return [i for i in self.items if i.type == "event"]

    def events_for(self, request_id: str, exc_type: str) -> list[SentryItem]:
        """Error events naming ``exc_type`` raised by the invocation ``request_id``."""
        with self._cond:
            return [
                i
                for i in self.items
                if i.type == "event"
                and exc_type in i.exception_types
                and request_id in i.request_ids
            ]

    def wait_for_event(self, request_id: str, exc_type: str, timeout: float) -> bool:
        """Wait until that invocation's event arrived (SDKs may flush just after answering)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: bool(self.events_for(request_id, exc_type)), timeout=timeout
            )


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only sent by an SDK that found brotli installed

        return bytes(brotli.decompress(body))
    return body


def request_path(headers: Any) -> str:
    """How a request came: through a forwarding extension, or straight from the SDK."""
    via = headers.get("Via", "") or ""
    if "sentry-lambda-extension" in via or headers.get("X-Forwarded-For"):
        return "extension"
    return "direct"


def parse_envelope(body: bytes, path: str = "direct") -> list[SentryItem]:
    """Items of a Sentry envelope: a header line, then per item a header line and a payload.

    The payload is ``length`` bytes when the item header says so, else up to the newline.
    """
    items: list[SentryItem] = []
    _, _, rest = body.partition(b"\n")  # the envelope header (dsn, sent_at): not needed
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        if not header_line.strip():
            continue
        header = json.loads(header_line)
        length = header.get("length")
        if isinstance(length, int):
            payload, rest = rest[:length], rest[length:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        try:
            data = json.loads(payload) if payload.strip() else None
        except ValueError:
            data = None  # attachments and other binary items
        items.append(
            SentryItem(str(header.get("type", "")), data if isinstance(data, dict) else None, path)
        )
    return items


def _handler_for(sentry: FakeSentry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # header and body go out as separate writes

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = read_body(self)
            path = request_path(self.headers)
            try:
                body = _decompress(body, self.headers.get("Content-Encoding", ""))
                if self.path.rstrip("/").endswith("/store"):
                    items = [SentryItem("event", json.loads(body), path)]
                else:
                    items = parse_envelope(body, path)
            except Exception as exc:  # a malformed upload is recorded, never fatal
                log.debug("fake Sentry: cannot decode %s: %s", self.path, exc)
                sentry.undecodable += 1
                items = []
            sentry.record(items)
            reply = json.dumps({"id": "0" * 32}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("fake Sentry: " + format, *args)

    return Handler


@contextmanager
def fake_sentry() -> Iterator[FakeSentry]:
    """Run a fake Sentry on 127.0.0.1 (a free port) for the ``with`` block."""
    sentry = FakeSentry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(sentry))
    server.daemon_threads = True
    sentry.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-sentry", daemon=True)
    thread.start()
    try:
        yield sentry
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
