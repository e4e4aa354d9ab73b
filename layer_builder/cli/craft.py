"""``layer-builder craft publish|check``: the command line of :mod:`layer_builder.craft`.

Reads the craft config's ``aws-lambda-layer`` targets and the artifacts they select
(:mod:`layer_builder.craft`), shows the plan, and publishes each runtime's release with
:func:`layer_builder.publish.release.run_release` (through the same output as
``layer-builder publish``). Unlike craft, a failed region is not dropped: the command
exits 3 naming it, and a re-run finishes the job.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from layer_builder.cli.argtypes import path_arg, positive_int
from layer_builder.cli.output import UI
from layer_builder.cli.paths import DEFAULT_REGISTRY, check_output_dir
from layer_builder.cli.publish import publish_and_register, release_request
from layer_builder.craft import (
    CraftRelease,
    load_craft_config,
    plan_releases,
    select_targets,
    skipped_as_prerelease,
)
from layer_builder.errors import Interrupted, PublishIncomplete
from layer_builder.model import ReleaseVersion
from layer_builder.publish.target import resolve_publish_target


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``layer-builder craft publish|check``."""
    craft = sub.add_parser(
        "craft",
        help="craft's aws-lambda-layer target (reads .craft.yml)",
        description="Publish layers as craft's aws-lambda-layer target does, from the same "
        ".craft.yml, but with exit code 3 and resume for failed regions.",
    )
    commands = craft.add_subparsers(
        dest="craft_command", metavar="SUBCOMMAND", parser_class=type(craft)
    )
    commands.required = True
    publish = commands.add_parser(
        "publish",
        help="publish what the aws-lambda-layer targets select, write the registry",
        description="Publish the artifact each aws-lambda-layer target of a craft config selects "
        "(includeNames) to every region and write the registry as craft would. "
        "Failed regions exit 3; running the same command again finishes them.",
    )
    check = commands.add_parser(
        "check",
        help="validate the craft config and artifacts; no AWS calls",
        description="Check the aws-lambda-layer targets of a craft config and the artifacts "
        "they select, and show what `craft publish` would publish. No credentials.",
    )
    for p in (publish, check):
        p.add_argument(
            "--config",
            default=".craft.yml",
            type=path_arg,
            metavar="FILE",
            help="craft config (default: .craft.yml)",
        )
        p.add_argument(
            "--version",
            dest="release_version",
            required=True,
            metavar="V",
            help="release version, e.g. 10.75.2 (fills craft's {{{major}}} etc.)",
        )
        p.add_argument(
            "--artifacts",
            default="dist",
            type=path_arg,
            metavar="DIR",
            help="directory of artifacts, e.g. what `layer-builder build` wrote (default: dist/)",
        )
        p.add_argument(
            "--target",
            default=None,
            metavar="ID",
            help="only the aws-lambda-layer target with this craft id",
        )
        common(p)
    publish.add_argument(
        "--regions",
        default="all",
        metavar="all|R1,R2",
        help="'all' enabled regions of the credentials' partition (craft's "
        "behaviour, the default) or a comma-separated list",
    )
    publish.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        type=path_arg,
        metavar="DIR",
        help=f"registry checkout to write into (default: ./{DEFAULT_REGISTRY})",
    )
    publish.add_argument(
        "--dry-run",
        action="store_true",
        help="show the plan using only read calls; publish nothing",
    )
    publish.add_argument(
        "--allow-partial",
        action="store_true",
        help="write the registry even if some regions failed (still exit 3)",
    )
    publish.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="regions x architectures published at once (default: 64)",
    )
    publish.add_argument(
        "--allow-standin",
        action="store_true",
        help="for testing against your own emulator: publish zips carrying the sandbox "
        "stand-in extension",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    """Run ``layer-builder craft publish|check``; returns the exit code."""
    config = Path(args.config)
    version = ReleaseVersion.parse(args.release_version)
    targets = select_targets(load_craft_config(config), args.target, config)
    releases = plan_releases(targets, Path(args.artifacts), version, config)
    _show_plan(ui, releases, version)
    if args.craft_command == "check":
        if args.json:
            ui.emit_json({"releases": [_plan_json(r) for r in releases]})
        return 0
    pending = []
    for r in releases:
        if skipped_as_prerelease(r, version):
            ui.note(
                f"{r.config.canonical}: {version.text} is a prerelease and linkPrereleases "
                "is off: not published (as craft does)"
            )
        else:
            pending.append(r)
    if not pending:
        return 0
    # Every release resolves regions the same way (all, or --regions): resolve once.
    target = resolve_publish_target(pending[0].config, args.regions)
    registry = Path(args.registry)
    if not args.dry_run:
        check_output_dir(registry, "--registry")
    failed: list[str] = []
    for r in pending:
        request = release_request(
            r.config, version, list(r.built), args, registry_dir=registry, target=target,
            allow_standin=args.allow_standin,
        )  # fmt: skip
        try:
            publish_and_register(request, ui, json=args.json)
        except Interrupted:
            raise  # Ctrl-C stops the whole craft publish, not one runtime (exit 130)
        except PublishIncomplete as exc:
            # Runtimes are independent: publish the others, then name every failure.
            failed.extend(f"{r.config.canonical} {f}" for f in exc.failed)
    if failed:
        raise PublishIncomplete(failed)
    return 0


def _show_plan(ui: UI, releases: list[CraftRelease], version: ReleaseVersion) -> None:
    rows = [
        [
            r.config.canonical,
            ", ".join(m.architectures),
            m.layer_name,
            a.zip_path.name,
            "computed from the zip" if a.computed else a.manifest_path.name,
            ", ".join(m.compatible_runtimes),
        ]
        for r in releases
        for a, (_, m) in zip(r.artifacts, r.built, strict=True)
    ]
    ui.table(
        f"craft aws-lambda-layer targets, version {version.text}",
        ["canonical", "arch", "layer", "artifact", "manifest", "runtimes"],
        rows,
    )


def _plan_json(r: CraftRelease) -> dict[str, Any]:
    return {
        "canonical": r.config.canonical,
        "runtime_dir": r.config.registry.runtime_dir,
        "compatible_runtimes": list(r.config.compatible_runtimes),
        "link_prereleases": r.config.registry.link_prereleases,
        "layers": [
            {
                "architectures": list(m.architectures),
                "layer_name": m.layer_name,
                "artifact": str(a.zip_path),
                "manifest_computed": a.computed,
                "code_sha256": m.code_sha256,
            }
            for a, (_, m) in zip(r.artifacts, r.built, strict=True)
        ],
    }
