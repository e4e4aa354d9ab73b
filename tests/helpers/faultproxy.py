"""A loopback HTTP proxy in front of the moto server that misbehaves on purpose.

boto3 is pointed at the proxy with ``AWS_ENDPOINT_URL``; the proxy forwards to moto and,
for a configurable fraction of calls, answers like a struggling AWS instead:

- ``throttle``: HTTP 429 ``TooManyRequestsException`` (nothing reaches moto);
- ``server_error``: HTTP 500 ``ServiceException`` (nothing reaches moto);
- ``drop``: forwards the call, then closes the connection without an answer - the call
  took effect but the client cannot know, the case that creates duplicate versions;
- ``drop_before``: closes the connection without forwarding;
- ``deny`` (only through ``first``): HTTP 403, AccessDenied / UnauthorizedOperation;
- ``hold`` (only through ``first``): keeps the request ``hold_seconds`` (past the client's
  read timeout), then forwards it, so the server commits after the client gave up;
- ``html_429`` / ``json_429`` (only through ``first``): a rate-limit answer that is not the
  service's protocol: an HTML page that is not well-formed XML, or JSON where it speaks XML.

``down_regions`` drop every call of those regions; ``stall_regions`` hold them without an
answer (until ``stall_seconds`` or ``stop()``); ``first`` applies a fault to the first call
of an operation on each resource (method + path) in every region, for deterministic tests;
``latency`` delays every call.
The region and service come from the SigV4 credential scope in ``Authorization``.
``calls`` records every request, so tests can count e.g. PublishLayerVersion calls.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SCOPE_RE = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
}
# Lambda's REST paths -> operation names, for counting.
_LAMBDA_OPS = [
    ("POST", re.compile(r"/layers/[^/]+/versions$"), "PublishLayerVersion"),
    ("GET", re.compile(r"/layers/[^/]+/versions$"), "ListLayerVersions"),
    ("GET", re.compile(r"/layers/[^/]+/versions/\d+$"), "GetLayerVersion"),
    ("DELETE", re.compile(r"/layers/[^/]+/versions/\d+$"), "DeleteLayerVersion"),
    ("GET", re.compile(r"/layers/[^/]+/versions/\d+/policy$"), "GetLayerVersionPolicy"),
    ("POST", re.compile(r"/layers/[^/]+/versions/\d+/policy$"), "AddLayerVersionPermission"),
]
FAULTS = ("throttle", "server_error", "drop", "drop_before")


@dataclass
class Faults:
    """What to inject. Rates are fractions of the calls to ``services``."""

    throttle: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    drop_before: float = 0.0
    down_regions: set[str] = field(default_factory=set)
    stall_regions: set[str] = field(default_factory=set)
    stall_seconds: float = 30.0
    first: dict[str, str] = field(default_factory=dict)  # operation -> fault, once per resource
    latency: float = 0.0
    hold_seconds: float = 3.0
    services: set[str] = field(default_factory=lambda: {"lambda"})
    seed: int = 0


@dataclass(frozen=True)
class Call:
    region: str
    service: str
    operation: str
    fault: str | None  # None: forwarded and answered
    at: float = 0.0  # time.monotonic() when the request arrived (before any latency)


class FaultProxy:
    """``with FaultProxy(upstream_url, Faults(...)) as proxy:`` ... ``proxy.url``."""

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults = faults or Faults()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._seen_first: set[tuple[str, str]] = set()  # (region, "METHOD path")
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.holds_finished = 0  # held requests forwarded (committed) so far

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases stalled requests
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, faults: Faults | None = None) -> None:
        """Forget recorded calls; optionally switch to new faults."""
        with self._lock:
            self.calls.clear()
            self._seen_first.clear()
            if faults is not None:
                self.faults = faults
                self._rng = random.Random(faults.seed)

    def count(
        self,
        operation: str | None = None,
        region: str | None = None,
        fault: str | None | bool = False,
        service: str | None = None,
    ) -> int:
        """Recorded calls matching; ``fault=False`` means any outcome."""
        with self._lock:
            return sum(
                1
                for c in self.calls
                if (operation is None or c.operation == operation)
                and (region is None or c.region == region)
                and (service is None or c.service == service)
                and (fault is False or c.fault == fault)
            )

    def arrivals(self, service: str | None = "lambda") -> list[tuple[float, str]]:
        """(arrival time, operation) of every recorded call, in order of arrival."""
        with self._lock:
            return sorted((c.at, c.operation) for c in self.calls
                          if service is None or c.service == service)  # fmt: skip

    def operations(self) -> set[str]:
        with self._lock:
            return {c.operation for c in self.calls}

    def _decide(self, region: str, service: str, operation: str, resource: str) -> str | None:
        f = self.faults
        if region in f.down_regions:
            return "down"
        if region in f.stall_regions:
            return "stall"
        if service not in f.services:
            return None
        with self._lock:
            once = f.first.get(operation)
            # Keyed by operation too: query APIs (STS, EC2) all share "POST /".
            if once and (region, f"{operation} {resource}") not in self._seen_first:
                self._seen_first.add((region, f"{operation} {resource}"))
                return once
            roll = self._rng.random()
        for name in FAULTS:
            rate = float(getattr(f, name))
            if roll < rate:
                return name
            roll -= rate
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


def _operation(service: str, method: str, path: str, body: bytes, headers: Any) -> str:
    if service == "lambda":
        for m, pattern, name in _LAMBDA_OPS:
            if m == method and pattern.search(path):
                return name
    target = headers.get("X-Amz-Target")
    if target:
        return str(target).rsplit(".", 1)[-1]
    if method == "POST" and body:
        action = urllib.parse.parse_qs(body.decode("latin-1")).get("Action")
        if action:
            return action[0]
    return f"{method} {path}"


def _error_body(service: str, fault: str) -> tuple[int, dict[str, str], bytes]:
    if fault == "html_429":
        page = b"<html><head><meta charset=utf-8><title>Too Many Requests</title></head></html>"
        return 429, {"Content-Type": "text/html"}, page
    if fault == "json_429":
        return 429, {"Content-Type": "application/json"}, b'{"message": "Rate exceeded"}'
    if fault == "deny":
        if service == "lambda":
            return (403, {"x-amzn-ErrorType": "AccessDeniedException",
                          "Content-Type": "application/json"},
                    b'{"message": "injected deny"}')  # fmt: skip
        code = "UnauthorizedOperation" if service == "ec2" else "AccessDenied"
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>injected deny</Message>"
               "</Error></Errors><RequestID>faultproxy</RequestID></Response>")  # fmt: skip
        return 403, {"Content-Type": "text/xml"}, xml.encode()
    throttled = fault == "throttle"
    if service == "lambda":
        code = "TooManyRequestsException" if throttled else "ServiceException"
        body = {"Type": "User" if throttled else "Service", "message": f"injected {fault}"}
        if throttled:
            body["Reason"] = "CallerRateLimitExceeded"
        return (
            429 if throttled else 500,
            {"x-amzn-ErrorType": code, "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )
    code = "SlowDown" if throttled else "InternalError"
    xml = f"<Error><Code>{code}</Code><Message>injected {fault}</Message></Error>"
    return 503 if throttled else 500, {"Content-Type": "application/xml"}, xml.encode()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes: without this, Nagle's algorithm and
            # the client's delayed ACK add ~40 ms to every call.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
                return resp.status, out, data
            finally:
                conn.close()

        def _handle(self) -> None:
            arrived = time.monotonic()
            body = self._read_body()
            match = _SCOPE_RE.search(self.headers.get("Authorization", ""))
            region, service = match.groups() if match else ("unknown", "unknown")
            path = urllib.parse.urlsplit(self.path).path
            operation = _operation(service, self.command, path, body, self.headers)
            if proxy.faults.latency:
                time.sleep(proxy.faults.latency)
            fault = proxy._decide(region, service, operation, f"{self.command} {path}")
            proxy._record(Call(region, service, operation, fault, arrived))
            if fault == "stall":
                proxy._stop.wait(proxy.faults.stall_seconds)
                return self._drop()
            if fault in ("down", "drop_before"):
                return self._drop()
            if fault in ("throttle", "server_error", "deny", "html_429", "json_429"):
                return self._answer(*_error_body(service, fault))
            if fault == "hold":
                time.sleep(proxy.faults.hold_seconds)  # the client times out meanwhile
                self._forward(body)
                with proxy._lock:
                    proxy.holds_finished += 1
                return self._drop()
            status, headers, data = self._forward(body)
            if fault == "drop":
                return self._drop()  # moto acted on it; the client never hears
            self._answer(status, headers, data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler
