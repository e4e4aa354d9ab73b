"""An emulator of Lambda's Extensions API and Runtime API on one loopback port.

Both APIs live behind ``AWS_LAMBDA_RUNTIME_API`` as in Lambda. The HTTP side answers the
runtime and the extensions; :class:`LambdaAPI`'s driver methods (``invoke``, ``shutdown``,
``wait``) are what the runner calls to move the environment through its phases. The
semantics follow the Lambda developer guide: extensions register only during init, with the
events they want; a Next call is how the runtime and each extension say "done"; an event is
the answer to a pending Next.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

EXT_PREFIX = "/2020-01-01/extension"
RUNTIME_PREFIX = "/2018-06-01/runtime"
EVENT_TYPES = ("INVOKE", "SHUTDOWN")
FUNCTION_NAME = "layer-builder-smoke"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"


@dataclass
class Extension:
    """One registered extension, as the API sees it."""

    name: str
    events: tuple[str, ...]
    identifier: str
    registered_at: float
    next_calls: int = 0
    last_next_at: float | None = None
    waiting: bool = False  # inside event/next with no event handed out yet
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    received: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # init/error and exit/error reports

    @property
    def idle(self) -> bool:
        """Said "done" (called Next) and has nothing left to pick up."""
        return self.waiting and not self.queue


@dataclass
class Invocation:
    request_id: str
    event: bytes
    deadline_ms: int
    started_at: float
    answered_at: float | None = None
    response: bytes | None = None
    error: dict[str, Any] | None = None


@dataclass
class RuntimeState:
    next_calls: int = 0
    first_next_at: float | None = None
    waiting: bool = False
    queue: deque[Invocation] = field(default_factory=deque)
    init_error: dict[str, Any] | None = None


class LambdaAPI:
    """State of one execution environment; the HTTP handlers and the runner share it."""

    def __init__(self, handler: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.handler = handler
        self.clock = clock
        self.phase = "init"
        self.extensions: dict[str, Extension] = {}
        self.runtime = RuntimeState()
        self.invocations: dict[str, Invocation] = {}
        self.rejected: list[str] = []  # requests refused, for the report and -v logs
        self.cond = threading.Condition()
        self.port = 0
        self.closed = False  # set when the environment is torn down: parked Next calls end

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---- driver side (the runner) ---------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked under the lock) or ``timeout`` passes."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout=max(timeout, 0.0))

    def registered(self) -> list[Extension]:
        with self.cond:
            return list(self.extensions.values())

    def ready(self) -> bool:
        """Init is over: the runtime and every registered extension have called Next."""
        return self.runtime.waiting and all(e.idle for e in self.extensions.values())

    def invoke(self, event: bytes, timeout_s: float) -> Invocation:
        """Hand one invocation to the runtime and INVOKE to the extensions that asked for it."""
        with self.cond:
            self.phase = "invoke"
            now = self.clock()
            deadline_ms = int((time.time() + timeout_s) * 1000)
            inv = Invocation(str(uuid.uuid4()), event, deadline_ms, now)
            self.invocations[inv.request_id] = inv
            self.runtime.queue.append(inv)
            for ext in self.extensions.values():
                if "INVOKE" in ext.events:
                    ext.queue.append(
                        {
                            "eventType": "INVOKE",
                            "deadlineMs": deadline_ms,
                            "requestId": inv.request_id,
                            "invokedFunctionArn": FUNCTION_ARN,
                            "tracing": {"type": "X-Amzn-Trace-Id", "value": _trace_id()},
                        }
                    )
            self.cond.notify_all()
            return inv

    def invoke_done(self, inv: Invocation) -> bool:
        """The runtime answered and every extension is back in Next (Lambda's invoke end)."""
        return inv.answered_at is not None and self.ready()

    def shutdown(self, reason: str, budget_s: float) -> list[Extension]:
        """Send SHUTDOWN to the extensions registered for it; return them."""
        with self.cond:
            self.phase = "shutdown"
            deadline_ms = int((time.time() + budget_s) * 1000)
            targets = [e for e in self.extensions.values() if "SHUTDOWN" in e.events]
            for ext in targets:
                ext.queue.append(
                    {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms}
                )
            self.cond.notify_all()
            return targets

    # ---- HTTP side ------------------------------------------------------------------------

    def _register(
        self, name: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.phase != "init":
            return _err(
                403, "Extension.RegistrationNotAllowed", "register is allowed during init only"
            )
        events = body.get("events", [])
        if not name:
            return _err(400, "Extension.InvalidName", "Lambda-Extension-Name header is missing")
        if not isinstance(events, list) or any(e not in EVENT_TYPES for e in events):
            return _err(400, "Extension.InvalidEvents", f"events must be a subset of {EVENT_TYPES}")
        if any(e.name == name for e in self.extensions.values()):
            return _err(403, "Extension.AlreadyRegistered", f"{name!r} is already registered")
        ext = Extension(name, tuple(events), str(uuid.uuid4()), self.clock())
        self.extensions[ext.identifier] = ext
        log.debug("extension %r registered for %s", name, events)
        body_out = {
            "functionName": FUNCTION_NAME,
            "functionVersion": "$LATEST",
            "handler": self.handler,
            "accountId": ACCOUNT_ID,
        }
        return 200, body_out, {"Lambda-Extension-Identifier": ext.identifier}

    def _extension_next(self, ext: Extension) -> dict[str, Any] | None:
        ext.next_calls += 1
        ext.last_next_at = self.clock()
        ext.waiting = True
        self.cond.notify_all()
        self.cond.wait_for(lambda: bool(ext.queue) or self.closed)
        if not ext.queue:
            return None
        event = ext.queue.popleft()
        ext.waiting = False
        ext.received.append(str(event["eventType"]))
        self.cond.notify_all()
        return event

    def _runtime_next(self) -> Invocation | None:
        rt = self.runtime
        rt.next_calls += 1
        if rt.first_next_at is None:
            rt.first_next_at = self.clock()
        rt.waiting = True
        self.cond.notify_all()
        self.cond.wait_for(lambda: bool(rt.queue) or self.closed)
        if not rt.queue:
            return None
        inv = rt.queue.popleft()
        rt.waiting = False
        inv.started_at = self.clock()
        self.cond.notify_all()
        return inv

    def _answer(
        self, request_id: str, *, response: bytes | None, error: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        inv = self.invocations.get(request_id)
        if inv is None:
            return _err(400, "InvalidRequestID", f"unknown request id {request_id!r}")
        if inv.answered_at is not None:
            return _err(400, "InvalidStateTransition", f"{request_id} was already answered")
        inv.answered_at = self.clock()
        inv.response, inv.error = response, error
        self.cond.notify_all()
        return 202, {"status": "OK"}, {}

    def handle(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """Route one request; may block (the Next calls) until the runner hands out an event."""
        with self.cond:
            if method == "POST" and path == f"{EXT_PREFIX}/register":
                return self._register(headers.get("Lambda-Extension-Name", ""), _json(body))
            if path.startswith(EXT_PREFIX + "/"):
                ext = self.extensions.get(headers.get("Lambda-Extension-Identifier", ""))
                if ext is None:
                    return _err(403, "Extension.UnknownExtensionIdentifier", "register first")
                if method == "GET" and path == f"{EXT_PREFIX}/event/next":
                    event = self._extension_next(ext)
                    if event is None:
                        return _err(500, "Environment.Closed", "the environment is shut down")
                    return 200, event, {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())}
                if method == "POST" and path in (
                    f"{EXT_PREFIX}/init/error",
                    f"{EXT_PREFIX}/exit/error",
                ):
                    kind = headers.get("Lambda-Extension-Function-Error-Type", "Unknown")
                    ext.errors.append(f"{path.rsplit('/', 2)[-2]}/error {kind}")
                    self.cond.notify_all()
                    return 202, {"status": "OK"}, {}
            if method == "GET" and path == f"{RUNTIME_PREFIX}/invocation/next":
                inv = self._runtime_next()
                if inv is None:
                    return _err(500, "Environment.Closed", "the environment is shut down")
                return 200, inv.event, _invocation_headers(inv)
            if method == "POST" and path == f"{RUNTIME_PREFIX}/init/error":
                self.runtime.init_error = _json(body) or {
                    "errorType": headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
                }
                self.cond.notify_all()
                return 202, {"status": "OK"}, {}
            if method == "POST" and path.startswith(f"{RUNTIME_PREFIX}/invocation/"):
                request_id, _, what = path[len(RUNTIME_PREFIX) + 12 :].partition("/")
                if what == "response":
                    return self._answer(request_id, response=body, error=None)
                if what == "error":
                    error = _json(body)
                    error.setdefault(
                        "errorType", headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
                    )
                    return self._answer(request_id, response=None, error=error)
            self.rejected.append(f"{method} {path}")
            return _err(404, "NotFound", f"{method} {path} is not part of the API")


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"


def _invocation_headers(inv: Invocation) -> dict[str, str]:
    return {
        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
        "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
        "Lambda-Runtime-Trace-Id": _trace_id(),
    }


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _err(status: int, kind: str, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"errorType": kind, "errorMessage": message}, {}


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, sized or chunked (Node's http client streams bodies chunked)."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(request.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline().strip():  # trailers, then the blank line
                    pass
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()  # the CRLF after each chunk
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _handler_for(api: LambdaAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # header and body go out as separate writes

        def _serve(self, method: str) -> None:
            body = read_body(self)
            status, payload, headers = api.handle(
                method, self.path.split("?")[0], self.headers, body
            )
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)
            except OSError:
                pass  # the caller is gone (killed at shutdown): nothing to tell it

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("lambda api: " + format, *args)

    return Handler


class LoopbackServer(ThreadingHTTPServer):
    """A loopback HTTP server for the layer's processes: a client that drops its connection
    (a process killed at shutdown, a hostile extension) is logged, never a traceback on the
    user's terminal before the run's one line."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended abnormally", client_address, exc_info=True)


@contextmanager
def serve_api(handler: str) -> Iterator[LambdaAPI]:
    """Run the two APIs on a free loopback port for the ``with`` block."""
    api = LambdaAPI(handler)
    server = LoopbackServer(("127.0.0.1", 0), _handler_for(api))
    server.daemon_threads = True  # Next calls of killed processes may still be parked
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="lambda-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        with api.cond:
            api.closed = True
            api.cond.notify_all()
        server.shutdown()
        server.server_close()
        thread.join()
