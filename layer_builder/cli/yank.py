"""``layer-builder yank|unyank CANONICAL VERSION``: take a bad release back, or restore it.

Plugged into :mod:`layer_builder.cli` through ``_EXTRA_COMMANDS`` (one module, two commands).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from layer_builder.cli.output import UI
from layer_builder.cli.paths import DEFAULT_REGISTRY
from layer_builder.errors import CredentialsError, PublishIncomplete


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    """Add ``yank`` and ``unyank`` to the top-level subparsers ``sub``."""
    for name, help_text, description in (
        (
            "yank",
            "mark a release yanked and move the registry links back to the newest one not yanked",
            "Mark release VERSION of CANONICAL yanked in the registry (a `yanked` field with "
            "the reason and the time; readers that do not know it ignore it) and move "
            "latest.json, <major>.json and <major>.<minor>.json back to the newest older "
            "release that is not yanked. Never deletes a layer version or a document. "
            "Running it again changes nothing, or finishes an interrupted run.",
        ),
        (
            "unyank",
            "remove the yanked mark and move the links forward to the release again",
            "Remove the `yanked` field from release VERSION of CANONICAL and move latest.json "
            "and the major/minor links to it wherever it is newer than what they point at. "
            "Permissions removed by `yank --revoke-permissions` come back with a re-run of "
            "`layer-builder publish` for that version.",
        ),
    ):
        p = sub.add_parser(name, help=help_text, description=description)
        p.add_argument(
            "canonical", metavar="CANONICAL", help="registry entry, e.g. aws-layer:python"
        )
        p.add_argument("version", metavar="VERSION", help="the release, e.g. 2.75.0")
        p.add_argument(
            "--registry",
            default=None,
            metavar="DIR",
            help=f"registry checkout to change (default: ./{DEFAULT_REGISTRY})",
        )
        if name == "yank":
            p.add_argument(
                "--reason",
                required=True,
                metavar="TEXT",
                help="why the release is yanked (recorded in the document, shown to readers)",
            )
            p.add_argument(
                "--revoke-permissions",
                action="store_true",
                help="also remove the public statements (Principal *) from the release's "
                "layer versions in every region it records (exit 3 naming failed regions; "
                "run again to finish)",
            )
        common(p)


def run(args: argparse.Namespace, ui: UI) -> int:
    from layer_builder.registry.yank import find_release, set_yanked

    root = Path(args.registry or DEFAULT_REGISTRY)
    reason = getattr(args, "reason", None) if args.command == "yank" else None
    revoke = bool(getattr(args, "revoke_permissions", False))
    aws = None
    if revoke:
        # Credentials are checked before the registry changes: a missing key is exit 2
        # with nothing done, not a half-finished yank.
        from layer_builder.aws.clients import Aws

        _, doc = find_release(root, args.canonical, args.version)
        aws = Aws()
        identity = aws.identity()
        if identity.account != doc["account_number"]:
            raise CredentialsError(
                f"the AWS credentials are for account {identity.account}, but "
                f"{args.canonical} {args.version} was published by {doc['account_number']}"
            )
    result = set_yanked(root, args.canonical, args.version, reason=reason)
    state = "yanked" if result.yanked else "not yanked"
    what = "marked" if result.document_changed else "already"
    ui.info(f"{args.canonical} {args.version}: {what} {state} ({result.version_file})")
    for link in result.links:
        arrow = f"{link.previous or '-'} -> {link.current or '(removed)'}"
        ui.info(f"  {link.name}: {arrow if link.moved else link.current or '-'} ({link.reason})")
    if not result.yanked and result.document_changed:
        # Links moved back onto the release, but its layer versions are as the yank left
        # them: private again if it revoked their permissions.
        ui.note(
            f"unyank does not restore permissions: if `yank --revoke-permissions` removed "
            f"them, re-run `layer-builder publish CONFIG --version {args.version}` so the "
            "layer versions are public again"
        )
    data: dict[str, Any] = result.to_dict()
    failed: list[str] = []
    if aws is not None:
        from layer_builder.publish.revoke import revoke_public
        from layer_builder.registry.layout import read_version_document
        from layer_builder.registry.reader import LayerRelease

        document = read_version_document(result.version_file)
        release = LayerRelease.from_document(document, source=str(result.version_file))
        outcome = revoke_public(release, aws)
        for r in outcome:
            if r.error:
                ui.info(f"  {r.region}: failed: {r.error}")
            elif r.removed:
                removed = ", ".join(f"{n}:{v} {sid}" for n, v, sid in r.removed)
                ui.info(f"  {r.region}: removed {removed}")
            else:
                ui.info(f"  {r.region}: no public statement left")
        failed = [r.region for r in outcome if r.error]
        data["permissions"] = [r.to_dict() for r in outcome]
    if getattr(args, "json", False):
        ui.emit_json(data)
    if failed:
        raise PublishIncomplete(
            failed,
            f"revoking permissions incomplete: {len(failed)} region(s) failed: "
            f"{', '.join(failed)}; the registry is updated; run the same command again to "
            "finish",
        )
    return 0
