"""`registry latest|show`: read the registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from layer_builder.cli.output import UI
from layer_builder.cli.paths import DEFAULT_REGISTRY
from layer_builder.errors import RegistryError

ALLOW_HTTP_HELP = (
    "accept a plain http:// registry URL on a non-loopback host (refused by default: the "
    "registry decides which layer runs in your functions)"
)

# ---------------------------------------------------------------------------- registry


def add_read_options(registry_commands: Any) -> None:
    """Options of the reading commands that live here: ``--allow-http``, ``show --version``.

    ``registry_commands`` is the ``registry`` group's subparsers action (built in main.py).
    """
    for name in ("latest", "show"):
        registry_commands.choices[name].add_argument(
            "--allow-http", action="store_true", help=ALLOW_HTTP_HELP
        )
    registry_commands.choices["latest"].add_argument(
        "--version",
        dest="release_version",
        default=None,
        metavar="V",
        help="the ARN of release V instead of the newest (refused, with the reason, when V "
        "is yanked); a registry directory only",
    )
    registry_commands.choices["show"].add_argument(
        "--version",
        dest="show_version",
        default=None,
        metavar="V",
        help="print this release's document (<runtime>/<V>.json) instead of the latest; "
        "a registry directory only",
    )
    registry_commands.choices["show"].add_argument(
        "--sbom",
        action="store_true",
        help="print the release's CycloneDX SBOM (the file its document's `sbom` names) "
        "instead of the document; a registry directory only",
    )


def open_registry(location: str | None, *, allow_http: bool = False) -> Any:
    """A RegistryClient for ``--registry`` (default ./registry), for every reading command."""
    from layer_builder.registry.reader import RegistryClient

    if location is None and not Path(DEFAULT_REGISTRY).exists():
        # The most common case of a missing registry: say that the default was used.
        raise RegistryError(
            f"{DEFAULT_REGISTRY}: no such registry directory (the default; pass --registry DIR|URL)"
        )
    return RegistryClient(location or DEFAULT_REGISTRY, allow_http=allow_http)


def cmd_registry(args: argparse.Namespace, ui: UI) -> int:
    with open_registry(args.registry, allow_http=getattr(args, "allow_http", False)) as client:
        if args.registry_command == "latest":
            release = client.release(args.canonical, getattr(args, "release_version", None))
            arn = release.arn(args.region, args.arch)
            if getattr(args, "json", False):
                ui.emit_json(
                    {
                        "canonical": args.canonical,
                        "region": args.region,
                        "arch": args.arch,
                        "arn": arn,
                        "layer_name": release.layer(args.arch).layer_name,
                        "sdk_version": release.sdk_version,
                    }
                )
            else:
                print(arn)
            return 0
        version = getattr(args, "show_version", None)
        if version is not None:
            if not args.canonical:
                raise RegistryError("registry show --version: name the CANONICAL entry too")
            doc = client.version_document(args.canonical, version)
        else:
            doc = client.document(args.canonical) if args.canonical else client.index()
        if getattr(args, "sbom", False):
            if not args.canonical:
                raise RegistryError("registry show --sbom: name the CANONICAL entry too")
            doc = client.sbom(args.canonical, doc)
    ui.emit_json(doc)
    return 0
