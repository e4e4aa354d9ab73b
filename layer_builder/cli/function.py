"""``layer-builder function status|enable|update|disable``: the CLI over :mod:`consumer`.

Plugged into :mod:`layer_builder.cli` through ``_EXTRA_COMMANDS``: ``add_parser`` adds the
command group, ``run`` executes it and returns the exit code.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from layer_builder.cli.argtypes import path_arg, region_name
from layer_builder.cli.output import UI
from layer_builder.cli.paths import DEFAULT_REGISTRY
from layer_builder.cli.registry import ALLOW_HTTP_HELP, open_registry
from layer_builder.consumer.function import (
    CANONICALS,
    ChangeResult,
    FunctionInstrumenter,
    FunctionStatus,
)
from layer_builder.consumer.rules import DEFAULT_TRACES_SAMPLE_RATE
from layer_builder.errors import ArgumentError

_VERBS = {"enable": "enabled", "update": "updated", "disable": "disabled"}
_UNCHANGED = {
    "enable": "already enabled with the newest layer",
    "update": "already on the newest layer",
    "disable": "not enabled",
}


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    """Add the ``function`` command group to the top-level subparsers ``sub``."""
    group = sub.add_parser(
        "function",
        help="inspect or instrument a Lambda function with the newest layer",
        description="Inspect a Lambda function's Sentry layer, or attach, update or remove it. "
        "The newest layer comes from the registry, for the function's region and "
        "architecture.",
    )
    cmds = group.add_subparsers(
        dest="function_command", metavar="SUBCOMMAND", parser_class=type(group)
    )
    cmds.required = True

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = cmds.add_parser(name, help=help_text, description=description)
        p.add_argument("function", metavar="FUNCTION", help="function name or ARN")
        p.add_argument(
            "--region",
            default=None,
            type=region_name,
            help="the function's region (default: from the ARN, else AWS_REGION)",
        )
        p.add_argument(
            "--registry",
            default=None,
            type=path_arg,
            metavar="DIR|URL",
            help=f"registry checkout or http(s) URL (default: ./{DEFAULT_REGISTRY})",
        )
        p.add_argument("--allow-http", action="store_true", help=ALLOW_HTTP_HELP)
        p.add_argument(
            "--canonical",
            default=None,
            metavar="NAME",
            help="registry entry to use (default: "
            + ", ".join(f"{v} for {k}" for k, v in CANONICALS.items())
            + ")",
        )
        common(p)
        return p

    command(
        "status",
        "show the attached layer, the newest one, and whether it is out of date",
        "Show the function's runtime family, our attached layer and its version, the newest "
        "version for its region and architecture, out_of_date, and whether it is "
        "instrumented.",
    )
    p = command(
        "enable",
        "attach the newest layer and instrument the function",
        "Attach the newest layer that serves the function's architecture (replacing an "
        "older one of ours in place, keeping other layers and their order; refused when no "
        "layer of the release serves it), set SENTRY_DSN and SENTRY_TRACES_SAMPLE_RATE, and "
        "load the SDK: Python through the wrapper handler (the original is kept in "
        "SENTRY_INITIAL_HANDLER), Node through NODE_OPTIONS (-r or --import, as Sentry's "
        "integration sets it for that layer version). What was there before is "
        "recorded on the function for `disable`.",
    )
    p.add_argument(
        "--dsn",
        default=None,
        help="the project's DSN (default: the SENTRY_DSN environment variable)",
    )
    p.add_argument(
        "--traces-sample-rate",
        default=None,
        metavar="R",
        help=f"0 to 1 (default: keep the function's value, else {DEFAULT_TRACES_SAMPLE_RATE})",
    )
    _release_arg(p)
    _release_arg(
        command(
            "update",
            "move to the newest layer version; change nothing else",
            "Replace our attached layer with the newest version for the function's region and "
            "architecture. Handler and environment are left alone, except a Node preload of ours, "
            "switched to the form (-r or --import) Sentry uses for that layer version.",
        )
    )
    command(
        "disable",
        "remove the layer and undo what enable set, keeping later changes",
        "Remove our layer, set the handler back to SENTRY_INITIAL_HANDLER, remove our "
        "-r/--import from NODE_OPTIONS, and put back the variables enable changed unless you "
        "changed them since; the function's current state is the truth, so your later "
        "changes stay.",
    )


def _release_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--version",
        dest="release_version",
        default=None,
        metavar="V",
        help="attach release V instead of the newest (refused, with the reason, when V is "
        "yanked); a registry directory only",
    )


class _Pinned:
    """A registry whose "latest" is one chosen release (``--version V``)."""

    def __init__(self, registry: Any, version: str) -> None:
        self._registry, self._version = registry, version

    def latest(self, canonical: str) -> Any:
        return self._registry.release(canonical, self._version)


def run(args: argparse.Namespace, ui: UI) -> int:
    """Execute ``function SUBCOMMAND``; returns the exit code (errors raise)."""
    with open_registry(args.registry, allow_http=args.allow_http) as registry:
        version = getattr(args, "release_version", None)
        # Yanked releases: latest() skips them; release() refuses one asked for by name.
        tool = FunctionInstrumenter(_Pinned(registry, version) if version else registry)
        where = {"region": args.region, "canonical": args.canonical}
        if args.function_command == "status":
            _show_status(ui, tool.status(args.function, **where), args.json)
            return 0
        if args.function_command == "enable":
            dsn = args.dsn or os.environ.get("SENTRY_DSN")
            if not dsn:
                raise ArgumentError("function enable: --dsn is required (or set SENTRY_DSN)")
            result = tool.enable(
                args.function, dsn=dsn, traces_sample_rate=args.traces_sample_rate, **where
            )
        elif args.function_command == "update":
            result = tool.update(args.function, **where)
        else:
            result = tool.disable(args.function, **where)
    _show_change(ui, result, args.json)
    return 0


def _show_status(ui: UI, st: FunctionStatus, as_json: bool) -> None:
    if as_json:
        ui.emit_json(st.to_dict())
    rows = [
        ["function", f"{st.function} ({st.region}, {st.runtime}, {st.architecture})"],
        ["canonical", st.canonical],
        ["attached", st.layer_arn or "no"],
        ["newest", st.latest_arn],
        ["out of date", "yes" if st.out_of_date else "no"],
        ["instrumented", "yes" if st.instrumented else "no"],
        ["SENTRY_DSN", "set" if st.dsn_set else "not set"],
    ]
    for key, value in rows:
        ui.info(f"{key:<13} {value}")
    if st.out_of_date:
        ui.info(f"run `layer-builder function update {st.arn}` to move to the newest layer")


def _show_change(ui: UI, r: ChangeResult, as_json: bool) -> None:
    if as_json:
        ui.emit_json(r.to_dict())
    for warning in r.warnings:
        ui.note(f"warning: {warning}")
    if not r.changed:
        ui.info(f"{r.function} ({r.region}): {_UNCHANGED[r.action]}; nothing changed")
        return
    ui.info(f"{_VERBS[r.action]} {r.function} ({r.region})")
    if r.layers_before != r.layers_after:
        ui.info(f"  layers:  {', '.join(r.layers_before) or '-'}")
        ui.info(f"        -> {', '.join(r.layers_after) or '-'}")
    if r.handler_before != r.handler_after:
        ui.info(f"  handler: {r.handler_before} -> {r.handler_after}")
    if r.env_changed:
        ui.info(f"  environment variables changed: {', '.join(r.env_changed)}")
