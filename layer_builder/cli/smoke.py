"""``layer-builder smoke ZIP...``: run each layer the way Lambda runs it, before it ships.

Plugged into :mod:`layer_builder.cli` through ``_EXTRA_COMMANDS`` (``add_parser`` / ``run``).
:func:`smoke_gate` is the same check for ``release``: every zip this machine can run must
pass before anything is published.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from layer_builder.cli.output import UI
from layer_builder.errors import ArgumentError, SmokeTestFailed


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser(
        "smoke",
        help="run layers in an emulated Lambda execution environment",
        description="Run each layer zip in an emulated Lambda execution environment: the "
        "layer at /opt (private mount namespace), the Extensions and Runtime APIs on "
        "loopback, the runtime's client, the SDK enabled as users enable it, a fake Sentry. "
        "Passes when every file in /opt/extensions is executable and registers under its "
        "name, init ends with the runtime and every extension in Next, every invocation is "
        "answered and every extension back in Next, each raised error reaches Sentry as one "
        "event (through the extension where it runs), every extension exits on SHUTDOWN "
        "within 2 s and no process is left; Node layers run with -r and with --import. "
        "Reports what the layer adds to a cold start.",
        epilog="Exit codes: 0 every runnable layer passed (other architectures without "
        "qemu-user are skipped), 2 a layer failed (the phase is named; logs with -v).",
    )
    p.add_argument(
        "zips", nargs="+", metavar="ZIP", help="layer zips built by `layer-builder build`"
    )
    p.add_argument(
        "--runtime",
        choices=("python", "node"),
        default=None,
        help="the layer's runtime (default: from its python/ or nodejs/ directory)",
    )
    p.add_argument(
        "--function",
        dest="function_dir",
        default=None,
        metavar="DIR",
        help="your function's code instead of the sample function (with --handler)",
    )
    p.add_argument(
        "--handler",
        default=None,
        metavar="H",
        help="your handler, e.g. app.handler (what SENTRY_INITIAL_HANDLER holds)",
    )
    p.add_argument(
        "--event",
        default=None,
        metavar="JSON|@FILE",
        help="the event every invocation gets (default: a small one per invocation)",
    )
    p.add_argument(
        "--invocations",
        type=int,
        default=3,
        metavar="N",
        help="invocations per environment; the first is the cold one (default: 3)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30,
        metavar="S",
        help="the function timeout in seconds (default: 30)",
    )
    p.add_argument(
        "--arch",
        action="append",
        default=None,
        choices=("x86_64", "arm64"),
        metavar="A",
        help="test only this architecture of the zips (repeatable; default: every one they serve)",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the run without the layer (no cold-start comparison; faster)",
    )
    common(p)


def _event(text: str | None) -> bytes | None:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise ArgumentError(f"--event: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise ArgumentError(f"--event: not a JSON document: {exc}") from None
    return text.encode()


def options_from(args: argparse.Namespace) -> Any:
    from layer_builder.smoke.lifecycle import Limits
    from layer_builder.smoke.runner import SmokeOptions

    if args.invocations < 1:
        raise ArgumentError("--invocations: must be at least 1")
    if args.timeout <= 0:
        raise ArgumentError("--timeout: must be more than 0 seconds")
    return SmokeOptions(
        runtime=args.runtime,
        function_dir=Path(args.function_dir) if args.function_dir else None,
        handler=args.handler,
        event=_event(args.event),
        invocations=args.invocations,
        baseline=not args.no_baseline,
        architectures=tuple(args.arch or ()),
        limits=Limits(timeout_s=args.timeout),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _describe(ui: UI, r: Any) -> None:
    name = Path(r.zip).name
    if r.status == "skipped":
        ui.info(f"{name} ({r.architecture}): skipped: {r.cause}")
        return
    ui.info(f"{name} ({r.architecture}, {r.runtime}): {r.status.upper()}")
    if r.status == "failed":
        # Each failed run says why where it is shown; the closing error line names only one.
        ui.info(f"  {r.phase} failed: {r.cause}")
    if r.enable:
        ui.info(f"  SDK enabled with {r.enable}")
    if r.mount:
        ui.info(f"  environment: {r.mount}")
    for e in r.extensions:
        reg = (
            f"registered as {e.name!r} for {', '.join(e.events) or 'no events'} after "
            f"{_ms(e.registered_ms)}"
            if e.name
            else "did not register"
        )
        end = (
            "killed after the SHUTDOWN budget"
            if e.killed
            else f"exited {e.exit_code}"
            + (f", {_ms(e.shutdown_ms)} after SHUTDOWN" if e.shutdown_ms is not None else "")
        )
        ui.info(
            f"  extension {e.file}: {reg}; {end if e.exit_code is not None else 'still running'}"
        )
    for i in r.invocations:
        what = i.outcome + (f" {i.error_type}" if i.error_type else "")
        ui.info(f"  invocation {i.number}: {what} ({_ms(i.duration_ms)})")
    types = [
        (", ".join(e["exceptions"]) or "(no exception)") + f" ({e['path']})"
        for e in r.sentry_events
    ]
    ui.info(f"  Sentry received {len(types)} event(s)" + (f": {'; '.join(types)}" if types else ""))
    t = r.timings
    if t is not None and t.init_ms is not None:
        ui.info(
            f"  init {_ms(t.init_ms)} (extensions registered {_ms(t.extensions_init_ms)}, "
            f"runtime {_ms(t.runtime_init_ms)}), cold invocation {_ms(t.cold_invoke_ms)}, "
            f"warm {_ms(t.warm_invoke_ms)}"
        )
    b = r.baseline
    if b is not None:
        ui.info(
            f"  without the layer: init {_ms(b.init_ms)}, cold invocation "
            f"{_ms(b.cold_invoke_ms)}, warm {_ms(b.warm_invoke_ms)}"
        )
    if r.status == "passed" and (r.baseline is not None or r.baseline_note):
        ui.info(f"  {r.summary()}")


def _logs(r: Any) -> None:
    for name, text in r.logs.items():
        print(f"--- {Path(r.zip).name} ({r.architecture}) {name} ---\n{text}", file=sys.stderr)


def smoke_all(zips: Sequence[Path], options: Any) -> list[Any]:
    from layer_builder.smoke.runner import smoke_zip

    reports = []
    for z in zips:
        found = smoke_zip(z, options)
        if not found:
            # Only --arch can leave a zip with nothing to run; passing on nothing would
            # claim a test that never happened.
            raise ArgumentError(
                f"--arch: {z} serves none of {', '.join(options.architectures)}; nothing to test"
            )
        reports.extend(found)
    return reports


def _failure(reports: Sequence[Any]) -> str | None:
    failed = [r for r in reports if r.status == "failed"]
    if not failed:
        return None
    r = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"smoke: {r.zip} ({r.architecture}): {r.phase} failed: {r.cause}{more} (logs with -v)"


def run(args: argparse.Namespace, ui: UI) -> int:
    options = options_from(args)
    reports = smoke_all([Path(z) for z in args.zips], options)
    for r in reports:
        _describe(ui, r)
        if args.verbose:
            _logs(r)
    error = _failure(reports)
    if args.json:
        doc: dict[str, Any] = {"passed": error is None, "layers": [r.to_dict() for r in reports]}
        if not args.verbose:
            for layer in doc["layers"]:
                layer.pop("logs", None)
        ui.emit_json(doc)  # main adds error and exit_code to it when the run fails
    if error:
        raise SmokeTestFailed(error)
    return 0


def smoke_gate(zips: Sequence[Path], ui: UI, *, verbose: bool = False) -> None:
    """``release``'s gate: smoke-test every zip this machine can run; raise if one fails."""
    from layer_builder.smoke.runner import SmokeOptions

    ui.info(f"smoke-testing {len(zips)} layer(s) before publishing (skip with --no-smoke)")
    reports = smoke_all(zips, SmokeOptions(baseline=False))
    for r in reports:
        _describe(ui, r)
        if verbose:
            _logs(r)
    error = _failure(reports)
    if error:
        raise SmokeTestFailed(f"{error}; nothing was published")
