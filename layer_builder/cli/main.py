"""The command line: parse, dispatch, map errors to exit codes. Nothing else lives here.

Exit codes (SPEC): 0 success; 2 the user's input is wrong (one line ``error: ...``, nothing
published); 3 publishing incomplete (failed regions named; re-run finishes); 130
interrupted; 1 a bug. With ``--json`` every outcome leaves one JSON document on stdout; a
failure's carries ``error`` and ``exit_code``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from layer_builder import __version__
from layer_builder.aws.facts import ARCHITECTURES
from layer_builder.cli.argtypes import path_arg, positive_int, region_name
from layer_builder.cli.output import UI
from layer_builder.cli.paths import DEFAULT_REGISTRY, SANDBOX_REGISTRY
from layer_builder.errors import ArgumentError, LayerBuilderError, PublishIncomplete, UserError

PROG = "layer-builder"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error:`` line and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        # Raised, not printed: main() prints it like every other user error (and as JSON
        # with --json).
        raise ArgumentError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """A command's own parser refuses what it does not know itself, so the error names
        the command, its help and the closest option (argparse would hand the leftovers up to
        ``layer-builder`` and point at the top-level help)."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.prog != PROG:
            from layer_builder.validate import did_you_mean

            known = [o for a in self._actions for o in a.option_strings]
            hint = "".join(
                did_you_mean(x.split("=", 1)[0], known) for x in extras if x.startswith("--")
            )
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed, extras


#: Shown for a top-level --version with anything beside it: the usual slip is putting a
#: command's --version V before the command.
_VERSION_ALONE = (
    "--version takes no other arguments (it prints the tool's version); "
    "for a release version write it after the command: layer-builder COMMAND ... --version V"
)


def _common(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    if json_flag:
        p.add_argument(
            "--json", action="store_true", help="print a JSON document on stdout for programs"
        )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors (and --json output)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens, step by step")


def _config_args(p: argparse.ArgumentParser, version_help: str) -> None:
    p.add_argument(
        "config",
        type=path_arg,
        metavar="CONFIG",
        help="layer config, e.g. configs/sentry-python.yml",
    )
    p.add_argument(
        "--version", dest="release_version", required=True, metavar="V", help=version_help
    )


def _publish_args(
    p: argparse.ArgumentParser, *, registry_default: str = f"./{DEFAULT_REGISTRY}"
) -> None:
    p.add_argument(
        "--regions",
        default=None,
        metavar="all|R1,R2",
        help="regions to publish to: 'all' (enabled regions of the credentials' partition, "
        "minus the config's exclude_regions) or a comma-separated list "
        "(default: the config's publish.regions)",
    )
    p.add_argument(
        "--registry",
        default=None,
        type=path_arg,
        metavar="DIR",
        help=f"registry checkout to write the release into; created if missing "
        f"(default: {registry_default})",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (what would be new or reused) using only read calls",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="write the registry even if some regions failed (exit code is still 3)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="regions x architectures published at once (default: the config's max_workers)",
    )
    p.add_argument(
        "--attestation",
        default=None,
        type=_https_url,
        metavar="URL",
        help="the zip's build attestation (e.g. actions/attest-build-provenance's "
        "attestation-url), recorded in the registry's provenance",
    )
    p.add_argument(
        "--allow-standin",
        action="store_true",
        help="for testing against your own emulator: publish zips that carry the sandbox's "
        "stand-in extension (refused otherwise outside --sandbox)",
    )


def _https_url(text: str) -> str:
    if not text.startswith("https://") or len(text) <= len("https://"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an https:// URL")
    return text


def _arch_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument(
        "--arch", action="append", default=None, metavar="A", choices=ARCHITECTURES, help=help_text
    )


def _build_args(p: argparse.ArgumentParser) -> None:
    _arch_arg(p, "build only this architecture (repeatable; default: all configured)")
    locking = p.add_mutually_exclusive_group()
    locking.add_argument(
        "--locked",
        action="store_true",
        help="require the config's lock file (see `layer-builder lock`): a missing or stale "
        "lock is an error (default: use it when it exists)",
    )
    locking.add_argument(
        "--no-lock",
        action="store_true",
        help="ignore the lock file and resolve the SDK's dependencies afresh",
    )
    p.add_argument(
        "--extension-file",
        action="append",
        default=[],
        metavar="[ARCH=]PATH",
        help="use this local extension binary instead of downloading it (checked like a "
        "download: ELF machine must match; repeatable, one per architecture)",
    )


def _registry_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        default=None,
        type=path_arg,
        metavar="DIR|URL",
        help=f"registry checkout or http(s) URL to read (default: ./{DEFAULT_REGISTRY})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Build reproducible AWS Lambda layers (SDK + Sentry Lambda Extension), publish "
        "them to every region, and record them in a release registry.",
        epilog="Exit codes: 0 ok, 2 bad input (nothing published), 3 publishing incomplete "
        "(run the same command again to finish), 130 interrupted, 1 unexpected error. "
        "With --json, stdout always carries one JSON document; a failure's has error and "
        "exit_code.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"layer-builder {__version__}",
        help="print the tool's version and exit (alone: nothing else may be given)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "build",
        help="build the release's layer zip (universal, or one per architecture), with a manifest",
        description="Build the release's reproducible layer zip into DIR: one universal zip "
        "serving every architecture the extension has a binary for (config `layout: "
        "universal`, the default), or one zip per architecture (`layout: per-arch`); a build "
        "manifest JSON (<zip>.json) beside each.",
    )
    _config_args(p, "release version, e.g. 2.75.0 (also the SDK version unless the config pins it)")
    p.add_argument(
        "--out",
        default="dist",
        type=path_arg,
        metavar="DIR",
        help="output directory, created if missing; zips already there are replaced only "
        "when every architecture built (default: dist/)",
    )
    _build_args(p)
    _common(p)

    p = sub.add_parser(
        "verify",
        help="static checks of built layer zips",
        description="Check built layer zips: layout, wrapper, extension mode and ELF "
        "architecture, size limits, unsafe paths, determinism markers, bytecode matching "
        "its sources. Every problem is "
        "reported, one per line, most serious for Lambda first.",
    )
    p.add_argument("zips", nargs="+", metavar="ZIP", help="layer zip(s) to check")
    p.add_argument(
        "--arch",
        default=None,
        choices=("x86_64", "arm64"),
        help="expected architecture (default: from the build manifest beside the zip)",
    )
    _common(p)

    p = sub.add_parser(
        "publish",
        help="publish built zips to the regions and write the registry",
        description="Publish the zips built by `build` to every region, add the "
        "public permission, and write the registry. Idempotent: a re-run "
        "reuses what is already published and finishes what is missing.",
    )
    _config_args(p, "release version to publish, e.g. 2.75.0 (as given to `build`)")
    p.add_argument(
        "--dist",
        default="dist",
        type=path_arg,
        metavar="DIR",
        help="where `build` put the zips (default: dist/)",
    )
    _arch_arg(p, "publish only this architecture (repeatable; default: all configured)")
    _publish_args(p)
    _common(p)

    p = sub.add_parser(
        "release",
        help="build, publish and write the registry in one run",
        description="Build, verify, publish and write the registry in one run. With "
        "--sandbox everything runs against a local emulation of AWS "
        "(moto) and a local stand-in for the extension download.",
    )
    _config_args(p, "release version, e.g. 2.75.0 (also the SDK version unless the config pins it)")
    p.add_argument(
        "--out",
        default=None,
        type=path_arg,
        metavar="DIR",
        help="output directory for zips (default: dist/, or sandbox/dist with --sandbox)",
    )
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="no AWS account needed: publish to a local AWS emulation with fake "
        f"credentials and a stand-in extension; the registry goes to {SANDBOX_REGISTRY}",
    )
    p.add_argument(
        "--no-smoke",
        action="store_true",
        help="do not smoke-test the built layers before publishing (see `layer-builder smoke`)",
    )
    _build_args(p)
    _publish_args(p, registry_default=f"./{DEFAULT_REGISTRY}, or {SANDBOX_REGISTRY} with --sandbox")
    _common(p)

    reg = sub.add_parser("registry", help="read the registry").add_subparsers(
        dest="registry_command", metavar="SUBCOMMAND", parser_class=_Parser
    )
    reg.required = True
    p = reg.add_parser(
        "latest",
        help="print the newest layer version ARN for a region",
        description="Print the ARN of the newest release's layer that serves ARCH in REGION, "
        "as the registry records it (exit 2 if no layer serves that architecture there).",
    )
    p.add_argument("canonical", metavar="CANONICAL", help="registry entry, e.g. aws-layer:python")
    p.add_argument(
        "--region", required=True, type=region_name, metavar="R", help="AWS region, e.g. eu-west-1"
    )
    p.add_argument(
        "--arch",
        default="x86_64",
        choices=("x86_64", "arm64"),
        help="the function's architecture (default: x86_64)",
    )
    _registry_arg(p)
    _common(p)
    p = reg.add_parser(
        "show",
        help="print the registry index, or one runtime's latest document",
        description="Print the registry index, or one runtime's newest version document, as "
        "JSON on stdout (the same with or without --json).",
    )
    p.add_argument(
        "canonical",
        nargs="?",
        metavar="CANONICAL",
        help="registry entry, e.g. aws-layer:python (default: the whole index)",
    )
    _registry_arg(p)
    _common(p)

    ext = sub.add_parser("extension", help="manage extension manifests").add_subparsers(
        dest="extension_command", metavar="SUBCOMMAND", parser_class=_Parser
    )
    ext.required = True
    p = ext.add_parser(
        "pin",
        help="resolve a version, download each architecture's binary, record its sha256",
        description="Resolve the extension version, download every architecture's "
        "binary, check it is an executable for that architecture, and write the version "
        "and the sha256 pins into the manifest.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="e.g. extensions/relay.yml")
    p.add_argument(
        "--version",
        dest="ext_version",
        default=None,
        metavar="V",
        help="extension version to pin (default: the release registry's latest; for a "
        "manifest with source.url, the manifest's version)",
    )
    _common(p)

    # Command groups that live in their own modules: each has add_parser(sub, common) and
    # run(args, ui) -> int.
    for module in _command_modules():
        module.add_parser(sub, _common)
    from layer_builder.cli import registry as registry_cli

    registry_cli.add_read_options(reg)
    return parser


def _command_modules() -> list[Any]:
    import importlib

    # One module may add several commands (yank and unyank): import and add each once.
    return [importlib.import_module(name) for name in dict.fromkeys(_EXTRA_COMMANDS.values())]


#: command name -> module implementing it
_EXTRA_COMMANDS: dict[str, str] = {
    "craft": "layer_builder.cli.craft",
    "function": "layer_builder.cli.function",
    "smoke": "layer_builder.cli.smoke",
    "lock": "layer_builder.cli.lock",
    "yank": "layer_builder.cli.yank",
    "unyank": "layer_builder.cli.yank",
}


def _json_requested(argv: Sequence[str]) -> bool:
    # Known before parsing, so a parse error can be reported as JSON too.
    args = list(argv[: argv.index("--")] if "--" in argv else argv)
    return "--json" in args


def _version_misuse(argv: Sequence[str]) -> bool | None:
    """True if the top-level --version has company, False if alone, None if absent."""
    for arg in argv:
        if arg == "--version" or arg.startswith("--version="):
            return len(argv) != 1 or "=" in arg
        if not arg.startswith("-"):
            return None  # the command: a --version after it is the command's own
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``layer-builder`` and ``python -m layer_builder``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ui = UI(json_mode=_json_requested(argv), defer_json=True)
    try:
        misuse = _version_misuse(argv)
        if misuse:
            raise ArgumentError(_VERSION_ALONE)
        if misuse is False:
            print(f"layer-builder {__version__}")
            return 0
        args = build_parser().parse_args(argv)
    except UserError as exc:
        return ui.fail(str(exc), exc.exit_code)
    ui.quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Our own per-call retry noise is summarised in the result table; keep botocore quiet.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # Retries are ours to report; urllib3's per-attempt warnings would bury the error line.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        code = _dispatch(args, ui)
    except (PublishIncomplete, UserError) as exc:
        return ui.fail(str(exc), exc.exit_code)

    except KeyboardInterrupt:
        return ui.fail("interrupted; run the same command again to finish", 130)
    except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
        # A file-system refusal the argument checks could not foresee (a file changed
        # under us, a disk remounted read-only): the path and the cause, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        return ui.fail(f"{where}{exc.strerror or exc}", 2)
    except LayerBuilderError as exc:
        aws = sys.modules.get("layer_builder.aws.clients")  # imported by whatever raised it
        if aws is not None and isinstance(exc, aws.AwsCallError):
            # A call outside publishing's own handling (function, a listing, a check before
            # any write): the operation, the region and the cause (the endpoint URL for a
            # connection that failed), one line.
            return ui.fail(_aws_failure(exc), 2)
        ui.flush_json(error="unexpected error (see the traceback on stderr)", exit_code=1)
        raise
    except Exception as exc:
        ui.flush_json(error=f"unexpected error: {type(exc).__name__}: {exc}", exit_code=1)
        raise
    ui.flush_json()
    return code


def _aws_failure(exc: Any) -> str:
    message = " ".join(str(exc).split())
    if exc.code in ("EndpointConnectionError", "ConnectTimeoutError"):
        import boto3

        session = boto3.Session()
        known = {
            r
            for partition in ("aws", "aws-cn", "aws-us-gov")
            for r in session.get_available_regions("lambda", partition)
        }
        if known and exc.region not in known:
            from layer_builder.validate import did_you_mean

            hint = did_you_mean(
                exc.region, sorted(known), sep=": ", otherwise=": not a region botocore knows"
            )
            message += f" ({exc.region}{hint})"
    return message


#: Commands that talk to AWS: their endpoint variables are checked before anything runs.
_AWS_COMMANDS = ("publish", "release", "function", "craft", "yank", "unyank")


def _dispatch(args: argparse.Namespace, ui: UI) -> int:
    from layer_builder.cli import build, extension, publish, registry

    if args.command in _AWS_COMMANDS and not getattr(args, "sandbox", False):
        from layer_builder.aws.clients import check_endpoint_env

        check_endpoint_env()

    if args.command in _EXTRA_COMMANDS:
        import importlib

        return int(importlib.import_module(_EXTRA_COMMANDS[args.command]).run(args, ui))
    handlers = {
        "build": build.cmd_build,
        "verify": build.cmd_verify,
        "publish": publish.cmd_publish,
        "release": publish.cmd_release,
        "registry": registry.cmd_registry,
        "extension": extension.cmd_extension,
    }
    return handlers[args.command](args, ui)
