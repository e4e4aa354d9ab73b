"""`extension pin`: pin an extension manifest's binaries."""

from __future__ import annotations

import argparse
from pathlib import Path

from layer_builder.cli.output import UI

# --------------------------------------------------------------------------- extension


def cmd_extension(args: argparse.Namespace, ui: UI) -> int:
    from layer_builder.build.extension import pin

    pins = pin(Path(args.manifest), args.ext_version)
    if args.json:
        ui.emit_json({"manifest": args.manifest, "sha256": pins})
    for arch, sha in sorted(pins.items()):
        ui.info(f"{arch}: sha256 {sha}")
    ui.info(f"pinned in {args.manifest}")
    return 0
