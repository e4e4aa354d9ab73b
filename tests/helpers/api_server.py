"""A local stand-in for the release registry's API server, route ``GET /aws-lambda-layers``.

It reads a registry checkout the way getsentry/sentry-release-registry's
``api-server/apiserver.py`` does: every entry of ``aws-lambda-layers/`` is taken for a
runtime directory and its ``latest.json`` opened; the answer is ``{canonical: document}``.
An entry whose ``latest.json`` cannot be opened is skipped and recorded in ``errors`` (the
real server reports it to Sentry on every load). Unlike the real one, it reads the disk on
every request, so a test can move ``latest.json`` between two requests.

``token`` makes it demand ``?token=<token>`` on every request (403 otherwise), to show
that a reader keeps the URL's query string; ``prefix`` mounts the route under a path;
``failures`` are statuses answered first, in turn; ``redirect`` answers everything with a
302 to that location; every request line is kept in
``requests``. It also works as an HTTP proxy (a request line carrying a whole URL), so a
test can reach it under a non-loopback host name.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class ApiServer:
    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        prefix: str = "",
        failures: list[int] | None = None,
        redirect: str | None = None,
    ):
        self.root = root
        self.token = token
        self.failures = failures or []  # statuses answered, in turn, before serving
        self.requests: list[str] = []
        self.errors: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                parts = urlsplit(self.path)
                if outer.token is not None and parse_qs(parts.query).get("token") != [outer.token]:
                    self._send(403, b'{"error": "forbidden"}')
                elif redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif outer.failures:
                    self._send(outer.failures.pop(0), b'{"error": "try again"}')
                elif parts.path.rstrip("/") == f"{prefix}/aws-lambda-layers":
                    self._send(200, json.dumps(outer.layers()).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{prefix}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def layers(self) -> dict[str, Any]:
        """``{canonical: latest document}``, scanned as the real server scans."""
        out: dict[str, Any] = {}
        base = self.root / "aws-lambda-layers"
        for entry in sorted(os.listdir(base)):
            try:
                with open(base / entry / "latest.json", encoding="utf-8") as f:
                    data = json.load(f)
                    out[data["canonical"]] = data
            except OSError as exc:
                self.errors.append(f"{entry}: {type(exc).__name__}")
        return out

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
