"""Remove the public statements from a yanked release's layer versions, in every region.

``yank --revoke-permissions`` calls this after the registry links have moved, so no reader
is still handed an ARN it can no longer get. A public statement is one that grants
``lambda:GetLayerVersion`` to every account (``Principal: *``, with or without an
organization condition) or carries the id ``public``; statements for named accounts are
left alone. Functions that already use the version keep it (Lambda keeps the code of an
attached layer); new attachments from other accounts are refused.

Idempotent: a statement already gone is skipped, so a re-run after a failed region only
finishes that region.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from layer_builder.aws.clients import Aws, AwsCallError
from layer_builder.aws.policy import GET_LAYER_VERSION, Statement
from layer_builder.registry.release import LayerRelease

log = logging.getLogger(__name__)

#: Regions handled at once (each does a few control-plane calls).
WORKERS = 8


def is_public(statement: Statement) -> bool:
    """Whether ``statement`` lets any account (or organization) get the layer version."""
    return statement.statement_id == "public" or (
        statement.principal == "*" and statement.action == GET_LAYER_VERSION
    )


@dataclass
class RegionRevocation:
    """What revoking did in one region."""

    region: str
    removed: list[tuple[str, int, str]] = field(default_factory=list)  # layer, version, sid
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "removed": [
                {"layer_name": n, "version": v, "statement_id": s} for n, v, s in self.removed
            ],
            "error": self.error,
        }


def revoke_public(
    release: LayerRelease,
    aws: Aws,
    *,
    workers: int = WORKERS,
    on_region: Callable[[RegionRevocation], None] | None = None,
) -> list[RegionRevocation]:
    """Remove the public statements of every layer version ``release`` records.

    Returns one entry per region, sorted; a region whose calls failed carries ``error`` and
    the others are still done.
    """
    by_region: dict[str, list[tuple[str, int]]] = {}
    for layer in release.layers:
        for region, version in layer.versions.items():
            by_region.setdefault(region, []).append((layer.layer_name, int(version)))

    def one(region: str) -> RegionRevocation:
        result = RegionRevocation(region)
        api = aws.lambda_api(region)
        try:
            for name, version in by_region[region]:
                for statement in api.policy(name, version):
                    if is_public(statement):
                        api.remove_permission(name, version, statement.statement_id)
                        result.removed.append((name, version, statement.statement_id))
        except AwsCallError as exc:
            result.error = str(exc)
        if on_region is not None:
            on_region(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(by_region) or 1))) as pool:
        results = list(pool.map(one, sorted(by_region)))
    return results
