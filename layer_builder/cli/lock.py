"""``layer-builder lock CONFIG --version V``: write the config's lock files (build/lock.py).

Plugged into :mod:`layer_builder.cli` through ``_EXTRA_COMMANDS``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from layer_builder.cli.output import UI


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser(
        "lock",
        help="pin the SDK and every dependency, with hashes, in lock files beside the config",
        description="Resolve the SDK and every package it pulls in for each Lambda platform "
        "the layer needs, and write the lock `build` installs from with hash checking: "
        "<config>.lock.<arch>.txt (pip --require-hashes requirements) for a Python layer, "
        "<config>.package-lock.json (npm, with integrity) for a Node layer. Commit it.",
    )
    p.add_argument("config", metavar="CONFIG", help="layer config, e.g. configs/sentry-python.yml")
    p.add_argument(
        "--version",
        dest="release_version",
        required=True,
        metavar="V",
        help="release version to lock, e.g. 2.75.0 (the SDK version unless the config pins it)",
    )
    common(p)


def run(args: argparse.Namespace, ui: UI) -> int:
    from layer_builder.build.lock import write_locks
    from layer_builder.config import load_config
    from layer_builder.model import ReleaseVersion

    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    with ui.status(f"resolving {cfg.sdk.package} {cfg.sdk_version(version)}"):
        written = write_locks(cfg, version)
    for w in written:
        state = "written" if w.changed else "unchanged"
        ui.info(f"{w.path}: {state} ({len(w.packages)} packages)")
    if getattr(args, "json", False):
        ui.emit_json(
            {
                "locks": [
                    {
                        "path": str(w.path),
                        "changed": w.changed,
                        "packages": [{"name": n, "version": v} for n, v in w.packages],
                    }
                    for w in written
                ]
            }
        )
    return 0
