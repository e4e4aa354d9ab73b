"""The registry side of the plan, made before the first AWS write.

What the registry already says about this release decides what publishing may do:
a version recorded with another ``code_sha256`` is refused here (exit 2, nothing
published); the versions it records name what to check first in each region; and the
versions every document of the runtime records are never deleted as duplicates.

Every version this tool publishes ends its ``Description`` with a release marker,
``[<canonical> <version> sha256:<64 hex digits>]``: which release (layer and version) and
which zip it holds. ``ListLayerVersions`` returns descriptions, so the listing the plan reads
anyway shows, without a ``GetLayerVersion`` per version, which versions anywhere in the
layer's history hold a given zip, and whether this release already exists there with other
bytes (a conflict, refused before any write). Versions published before the release marker
carry ``[sha256:<first 12 hex digits>]`` (content only); they are still read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_builder.errors import ArtifactError, RegistryError
from layer_builder.model import BuildManifest
from layer_builder.registry.files import RegistryState

#: Lambda's limit on a layer version's Description.
MAX_DESCRIPTION = 256
#: A marker at the end of a Description: the release (optional) and the zip's sha256.
MARKER_RE = re.compile(
    r"\[(?:(?P<canonical>[^\s\[\]]+) (?P<release>[^\s\[\]]+) )?"
    r"sha256:(?P<sha>[0-9a-f]{64}|[0-9a-f]{12})\]\s*$"
)


@dataclass(frozen=True)
class Marker:
    """What a version's Description says it holds."""

    sha: str  # hex: the whole digest, or its first 12 digits (markers from before releases)
    canonical: str | None = None
    release: str | None = None

    def holds(self, sha256_hex: str) -> bool:
        """Whether the marker names this zip (a 12-digit marker: by prefix)."""
        return sha256_hex == self.sha if len(self.sha) == 64 else sha256_hex.startswith(self.sha)

    def claims(self, canonical: str, release: str) -> bool:
        """Whether the marker says the version belongs to this release."""
        return (self.canonical, self.release) == (canonical, release)


def parse_marker(description: str) -> Marker | None:
    """The marker ending ``description``, or None (a version we did not publish)."""
    m = MARKER_RE.search(description or "")
    if m is None:
        return None
    return Marker(m["sha"], m["canonical"], m["release"])


def content_marker(sha256_hex: str) -> str:
    """The content-only marker of versions published before the release marker."""
    return f"[sha256:{sha256_hex[:12]}]"


def release_marker(canonical: str, release: str, sha256_hex: str) -> str:
    """The marker naming the release and the zip in a version's Description."""
    return f"[{canonical} {release} sha256:{sha256_hex}]"


def marked_description(
    description: str, sha256_hex: str, canonical: str | None = None, release: str | None = None
) -> str:
    """``description`` with the marker appended (the release marker when ``canonical`` and
    ``release`` are given), the text shortened to fit Lambda's limit."""
    if canonical and release:
        marker = release_marker(canonical, release, sha256_hex)
    else:
        marker = content_marker(sha256_hex)
    room = MAX_DESCRIPTION - len(marker) - 1
    if room < 0:
        raise ArtifactError(
            f"{canonical} {release}: the release marker is {len(marker)} characters, more "
            f"than a layer Description holds ({MAX_DESCRIPTION}); shorten the canonical name"
        )
    text = description if len(description) <= room else description[: max(0, room - 3)] + "..."
    return f"{text} {marker}" if text else marker


def standin_source(manifest: BuildManifest) -> str | None:
    """Where the sandbox's stand-in extension in this zip came from, or None if it has none:
    found by its label, or by its digest when it came in through ``--extension-file``."""
    from layer_builder.sandbox.standin import standin_digests

    digests = standin_digests()
    for ext in manifest.extensions:
        if "stand-in" in ext.source.lower() or "standin" in ext.version.lower():
            return ext.source
        if ext.sha256 in digests:
            return ext.source
    return None


def is_standin(manifest: BuildManifest) -> bool:
    """Whether the zip carries the sandbox's stand-in extension instead of the real one."""
    return standin_source(manifest) is not None


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
