"""A scripted HTTP server on loopback: each path answers a queue of ``Reply`` objects and
every ``Request`` is recorded, for downloads, extension URLs and registry reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Responder = Reply | Callable[[Request], Reply]


class FakeServer:
    """An HTTP server on 127.0.0.1 answering each path from a queue of replies.

    Replies are used in order; the last one repeats. Every request is recorded.
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[Responder]] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                reply = fake._next(req)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def route(self, path: str, *replies: Responder) -> str:
        self.routes[path] = list(replies)
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def _next(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            queue = self.routes.get(req.path.split("?", 1)[0])
            if not queue:
                return Reply(404, b"not found")
            responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return responder(req) if callable(responder) else responder

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
