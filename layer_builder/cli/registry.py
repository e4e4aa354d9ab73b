"""`registry latest|show`: read the registry."""

from __future__ import annotations

import argparse
from typing import Any

from layer_builder.cli.output import UI

# ---------------------------------------------------------------------------- registry


def _registry_client(location: str | None) -> Any:
    from layer_builder.registry.reader import RegistryClient

    return RegistryClient(location or "registry")


def cmd_registry(args: argparse.Namespace, ui: UI) -> int:
    client = _registry_client(args.registry)
    if args.registry_command == "latest":
        arn = client.layer_arn(args.canonical, args.region, args.arch)
        if args.json:
            ui.emit_json(
                {"canonical": args.canonical, "region": args.region, "arch": args.arch, "arn": arn}
            )
        else:
            print(arn)
        return 0
    doc = client.document(args.canonical) if args.canonical else client.index()
    ui.emit_json(doc)
    return 0
