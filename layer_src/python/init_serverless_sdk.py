"""Sentry's Lambda handler wrapper, shipped in the layer by layer-builder.

Set the function's handler to
``sentry_sdk.integrations.init_serverless_sdk.sentry_lambda_handler`` and the original handler
in ``SENTRY_INITIAL_HANDLER`` (``module.func`` or ``dir/module.func``, relative to the
function's code).

Everything happens when the runtime imports this module, during Lambda's init phase: the SDK
is initialised from ``SENTRY_DSN`` and ``SENTRY_TRACES_SAMPLE_RATE`` (so its Lambda
integration wraps every invocation, the first one included), then the original handler is
loaded. A configuration problem (no or a bad ``SENTRY_INITIAL_HANDLER``, a bad sample rate)
fails the init with a :class:`HandlerConfigError` naming the variable, as Lambda reports any
handler that cannot be loaded.

Where the layer's extension (Relay in proxy mode) runs for this machine, the SDK sends to it
on the local address the extension's launcher names (its ``# sentry-layer-extension:`` line)
and the extension forwards upstream. "Runs" means: the launcher lists this machine and the
address accepts a connection (the extension starts, and listens, before the runtime). Else
(no binary for this machine, no extension in the layer, nothing listening,
``SENTRY_LAYER_EXTENSION=false``, or an ``http_proxy`` that would catch local traffic) the SDK
sends directly to the DSN.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sentry_sdk
from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration

HANDLER_ENV = "SENTRY_INITIAL_HANDLER"
EXTENSION_NAME = "sentry-lambda-extension"
#: The launcher's line saying which machines it has a binary for and where that binary listens.
MARKER = "# sentry-layer-extension:"
#: Overrides the port the launcher's line names (set by `layer-builder smoke`, rarely by users).
PORT_ENV = "SENTRY_LAYER_EXTENSION_PORT"


class HandlerConfigError(Exception):
    """SENTRY_INITIAL_HANDLER or SENTRY_TRACES_SAMPLE_RATE is missing or wrong."""


def _traces_sample_rate() -> float | None:
    raw = os.environ.get("SENTRY_TRACES_SAMPLE_RATE")
    if raw in (None, ""):
        return None
    try:
        rate = float(raw)
    except ValueError:
        raise HandlerConfigError(
            f"SENTRY_TRACES_SAMPLE_RATE={raw!r} is not a number between 0 and 1"
        ) from None
    if not 0.0 <= rate <= 1.0:
        raise HandlerConfigError(f"SENTRY_TRACES_SAMPLE_RATE={raw!r} is not between 0 and 1")
    return rate


def _load_initial_handler() -> Callable[..., Any]:
    spec = os.environ.get(HANDLER_ENV, "").strip()
    if not spec:
        raise HandlerConfigError(
            f"{HANDLER_ENV} is not set: set it to your original handler, e.g. 'app.handler'"
        )
    directory, _, dotted = spec.rpartition("/")
    module_name, _, func_name = dotted.rpartition(".")
    if not module_name or not func_name:
        raise HandlerConfigError(
            f"{HANDLER_ENV}={spec!r} must look like 'module.function' or 'dir/module.function'"
        )
    if directory:
        # A handler in a subdirectory of the function's code: import it from there.
        root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
        path = os.path.join(root, directory)
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerConfigError(
            f"{HANDLER_ENV}={spec!r}: cannot import {module_name!r}: {exc}"
        ) from exc
    handler = getattr(module, func_name, None)
    if not callable(handler):
        raise HandlerConfigError(
            f"{HANDLER_ENV}={spec!r}: {module_name!r} has no function {func_name!r}"
        )
    return handler  # type: ignore[no-any-return]


def _launcher() -> Path | None:
    """The extension launcher of the layer this file came in (``/opt/extensions/...``)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "extensions" / EXTENSION_NAME
        if candidate.is_file():
            return candidate
    return None


def _extension_address(launcher: Path | None, machine: str) -> str | None:
    """``host:port`` where the extension listens on this machine, or None (send directly)."""
    if launcher is None:
        return None
    try:
        with open(launcher, encoding="utf-8", errors="replace") as f:
            head = [next(f, "") for _ in range(20)]
    except OSError:
        return None
    for line in head:
        if not line.startswith(MARKER):
            continue
        fields = dict(word.split("=", 1) for word in line[len(MARKER) :].split() if "=" in word)
        if machine not in fields.get("machines", "").split(","):
            return None  # the launcher stands aside here: nothing forwards
        host, _, port = fields.get("proxy", "").rpartition(":")
        port = os.environ.get(PORT_ENV, "").strip() or port
        if not host or not port.isdigit():
            return None
        try:  # a refused connection on loopback answers at once
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError:
            return None  # nothing listens: the extension did not start here
        return f"{host}:{port}"
    return None


def _proxy_catches_local_traffic() -> bool:
    """An http_proxy without a localhost exemption would carry the local sends away."""
    if not (os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")):
        return False
    exempt = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    names = {n.strip().lower() for n in exempt.split(",")}
    return not names & {"*", "localhost", "127.0.0.1"}


def sdk_dsn(dsn: str | None, machine: str | None = None) -> str | None:
    """The DSN the SDK uses: the user's, with the extension's local address when it runs.

    Relay in proxy mode takes the same API paths and auth as Sentry and forwards them to the
    upstream it was started with (the user's DSN), so only scheme, host and port change.
    """
    if not dsn:
        return dsn
    if os.environ.get("SENTRY_LAYER_EXTENSION", "").strip().lower() in ("0", "false", "no", "off"):
        return dsn
    address = _extension_address(_launcher(), machine or os.uname().machine)
    if address is None or _proxy_catches_local_traffic():
        return dsn
    parts = urlsplit(dsn)
    if not parts.username or not parts.hostname:
        return dsn  # not a DSN the SDK would accept either: let it say so
    user = parts.username + (f":{parts.password}" if parts.password else "")
    return urlunsplit(("http", f"{user}@{address}", parts.path, parts.query, parts.fragment))


def _initialise() -> Callable[..., Any]:
    # The SDK first: its Lambda integration then reports an init error to Sentry as well.
    sentry_sdk.init(
        dsn=sdk_dsn(os.environ.get("SENTRY_DSN")),
        traces_sample_rate=_traces_sample_rate(),
        integrations=[AwsLambdaIntegration(timeout_warning=True)],
    )
    return _load_initial_handler()


_initial_handler = _initialise()


def sentry_lambda_handler(event: Any, context: Any) -> Any:
    """Call the handler named in SENTRY_INITIAL_HANDLER (the SDK wraps this invocation)."""
    return _initial_handler(event, context)
