"""The registry side of a release, read before the first AWS write.

What the registry already says about this release decides what publishing may do:
a version recorded with another ``code_sha256`` is refused here (exit 2, nothing
published); the versions it records name what to check first in each region; and the
versions every document of the runtime records are never deleted as duplicates.

Descriptions carry release markers (:mod:`.markers`): what a listed version holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_builder.errors import ArtifactError, RegistryError
from layer_builder.model import BuildManifest
from layer_builder.registry.files import RegistryState


@dataclass(frozen=True)
class LayerRecord:
    """What the registry records about one layer (by name) of this release and runtime."""

    layer_name: str
    code_sha256: str | None = None  # from this release's own document
    versions: Mapping[str, int] = field(default_factory=dict)  # region -> recorded version
    # region -> every version any readable document of the runtime records for this name
    protected: Mapping[str, frozenset[int]] = field(default_factory=dict)
    # False when some document could not be read: then no duplicate is deleted.
    deletes_allowed: bool = True
    # code_sha256 -> {region: version} of every zip the runtime's documents record for this
    # name (this release's and others'): their unrecorded newer duplicates are deleted too.
    contents: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def recorded(self, region: str) -> int | None:
        return self.versions.get(region)

    def is_protected(self, region: str, version: int) -> bool:
        return not self.deletes_allowed or version in self.protected.get(region, frozenset())


def document_layers(doc: Mapping[str, Any]) -> Iterator[tuple[str, str | None, dict[str, int]]]:
    """(layer name, code_sha256 or None, {region: version}) for each layer a document records.

    Reads this tool's documents (``layers`` entries, old ones keyed by ``architecture``) and
    craft's (top-level ``layer_name``/``regions`` only).
    """
    seen = set()
    for entry in doc.get("layers") or []:
        if not isinstance(entry, Mapping) or "layer_name" not in entry:
            continue
        name = str(entry["layer_name"])
        seen.add(name)
        yield name, entry.get("code_sha256"), _regions(entry.get("regions"))
    top = doc.get("layer_name")
    if isinstance(top, str) and top not in seen:
        yield top, None, _regions(doc.get("regions"))


def _regions(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in raw or []:
        try:
            out[str(r["region"])] = int(r["version"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def registry_records(
    state: RegistryState,
    layers: Sequence[tuple[Path, BuildManifest]],
    account: str | None = None,
) -> dict[str, LayerRecord]:
    """One LayerRecord per layer name this release publishes.

    Raises ArtifactError when this release's document records a layer with another
    ``code_sha256`` than the zip about to be published, and RegistryError when it belongs
    to another account: both before anything is published.
    """
    own = state.document
    if own is not None and account is not None and str(own.get("account_number")) != account:
        raise RegistryError(
            f"{state.version_path}: recorded for account {own.get('account_number')}, these "
            f"credentials are for {account}; use the account the release was published with"
        )
    if own is not None and isinstance(own.get("yanked"), dict):
        # Publishing would make its versions public again (permissions match the config).
        raise RegistryError(
            f"{state.version_path}: {own.get('sdk_version')} is yanked "
            f"({own['yanked'].get('reason', '')}); run `layer-builder unyank "
            f"{own.get('canonical')} {own.get('sdk_version')}` first. Nothing was published."
        )
    own_layers = {name: (sha, regions) for name, sha, regions in document_layers(own or {})}
    protected: dict[str, dict[str, set[int]]] = {}
    contents: dict[str, dict[str, dict[str, int]]] = {}
    for doc in [*([own] if own else []), *state.others.values()]:
        for name, code, regions in document_layers(doc):
            for region, version in regions.items():
                protected.setdefault(name, {}).setdefault(region, set()).add(version)
                if isinstance(code, str) and code:
                    # The lowest recorded version of a zip is the one others converge on.
                    held = contents.setdefault(name, {}).setdefault(code, {})
                    held[region] = min(version, held.get(region, version))
    publishing = {m.layer_name for _, m in layers}
    for name, (sha, _) in own_layers.items():
        if sha is None and name not in publishing:
            # The registry write could not record this layer (no zip digest to keep), so
            # refuse now rather than after every region is published.
            raise RegistryError(
                f"{state.version_path}: the layer {name} is recorded without a code_sha256 "
                f"(a document written by craft); publish {name} in this run too, so its zip "
                "is recorded. Nothing was published."
            )
    records = {}
    for manifest_path, m in layers:
        sha, regions = own_layers.get(m.layer_name, (None, {}))
        if sha is not None and sha != m.code_sha256:
            raise ArtifactError(
                f"{state.version_path}: {m.layer_name} {m.version} is recorded with "
                f"code_sha256 {sha}, but {m.zip_path(manifest_path)} has {m.code_sha256}: a "
                "recorded version can only be finished with the same zip. Rebuild it "
                "identically (same SOURCE_DATE_EPOCH and dependency versions; compare the "
                "build manifests) or release a new version. Nothing was published."
            )
        records[m.layer_name] = LayerRecord(
            layer_name=m.layer_name,
            code_sha256=sha,
            versions=dict(regions),
            protected={r: frozenset(v) for r, v in protected.get(m.layer_name, {}).items()},
            deletes_allowed=not state.unreadable,
            contents=contents.get(m.layer_name, {}),
        )
    return records
