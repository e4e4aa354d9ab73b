"""Sentry's Lambda handler wrapper, shipped in the layer by layer-builder.

Set the function's handler to
``sentry_sdk.integrations.init_serverless_sdk.sentry_lambda_handler`` and the original handler
in ``SENTRY_INITIAL_HANDLER`` (``module.func`` or ``dir/module.func``, relative to the
function's code). The SDK is initialised once per execution environment from ``SENTRY_DSN``
and ``SENTRY_TRACES_SAMPLE_RATE``; then every invocation is passed to the original handler.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration

HANDLER_ENV = "SENTRY_INITIAL_HANDLER"


class HandlerConfigError(Exception):
    """SENTRY_INITIAL_HANDLER is missing or does not name a callable."""


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


_initial_handler: Callable[..., Any] | None = None


def _initialise() -> Callable[..., Any]:
    global _initial_handler
    if _initial_handler is None:
        handler = _load_initial_handler()
        sentry_sdk.init(
            dsn=os.environ.get("SENTRY_DSN"),
            traces_sample_rate=_traces_sample_rate(),
            integrations=[AwsLambdaIntegration(timeout_warning=True)],
        )
        _initial_handler = handler
    return _initial_handler


def sentry_lambda_handler(event: Any, context: Any) -> Any:
    """Initialise Sentry on first use, then call the handler named in SENTRY_INITIAL_HANDLER."""
    return _initialise()(event, context)
