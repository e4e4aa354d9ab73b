"""Write the layer registry: one JSON document per released version, forward-only links.

The layout and the version document's core fields follow getsentry/sentry-release-registry
(``aws-lambda-layers/<runtime>/<version>.json``, ``latest.json`` and friends as relative
symlinks), so Sentry's AWS Lambda integration and craft keep reading what we write. Every
file is replaced atomically and every document is checked against the schema shipped in
``layer_builder/schemas/`` before it reaches the disk.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from layer_builder.aws.facts import ARCHITECTURES, layer_arn, partition_of_region
from layer_builder.errors import ArgumentError, LayerBuilderError, RegistryError
from layer_builder.fsutil import fsync_dir, replace_symlink, write_replacing
from layer_builder.model import UNIVERSAL, Registration, ReleaseVersion, sort_architectures
from layer_builder.registry.files import RegistryLock, clean_stray_temps, holding, same_json
from layer_builder.registry.index import STATIC_INDEX_FILE, legacy_index
from layer_builder.registry.layout import (
    INDEX_SCHEMA,
    LATEST_FILE,
    LAYERS_DIR,
    VERSION_SCHEMA,
    Document,
    collect_index,
    read_json_mapping,
    read_version_document,
    schema_error,
)
from layer_builder.versions import (
    is_prerelease,
    link_key,
    scheme_for_runtimes,
    version_key,
)

log = logging.getLogger(__name__)

BASE_FILE = "base.json"
#: Where a release's SBOM goes, inside its runtime directory (a directory: every *.json
#: file beside the version documents would be taken for one).
SBOM_DIR = "sbom"
#: base.json's fields, in the order the real registry writes them.
BASE_KEYS = ("name", "repo_url", "main_docs_url", "created_at")


class SchemaViolation(LayerBuilderError):
    """A document the writer built breaks the shipped schema: a bug, never the user's input."""


def render_document(doc: Mapping[str, Any]) -> str:
    """A version document as the registry stores it: key order kept, 2-space indent."""
    # ensure_ascii=False: hand-written non-ASCII text stays as written, not \u escapes.
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_index(index: Mapping[str, Any]) -> str:
    """The index, deterministic whatever order the runtimes were read in."""
    return json.dumps(index, indent=2, sort_keys=True) + "\n"


# --- the writer -------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkUpdate:
    """What one of ``latest.json``, ``<major>.json``, ``<major>.<minor>.json`` points at."""

    name: str
    previous: str | None  # the version linked before the write
    current: str | None  # the version linked after it
    reason: str  # why it moved or stayed, for the command line

    @property
    def moved(self) -> bool:
        return self.previous != self.current


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_release` did, for the CLI to report."""

    version_file: Path
    index_file: Path
    written: tuple[Path, ...]  # files and links created or replaced, in write order
    links: tuple[LinkUpdate, ...]
    base_created: bool
    # (layer name, region, old layer version, new layer version) replaced by a re-run
    replaced: tuple[tuple[str, str, str, str], ...]
    # (layer name, region) in expected_regions but absent from the version document
    missing_regions: tuple[tuple[str, str], ...]
    # files removed: an aws-lambda-layers/index.json left by an older layer-builder
    removed: tuple[Path, ...] = ()

    @property
    def latest_moved(self) -> bool:
        return any(link.name == LATEST_FILE and link.moved for link in self.links)

    @property
    def latest_version(self) -> str | None:
        return next((link.current for link in self.links if link.name == LATEST_FILE), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (paths as strings), e.g. for ``--json`` output."""
        return {
            "version_file": str(self.version_file),
            "index_file": str(self.index_file),
            "written": [str(p) for p in self.written],
            "links": [{**asdict(link), "moved": link.moved} for link in self.links],
            "latest_moved": self.latest_moved,
            "latest_version": self.latest_version,
            "base_created": self.base_created,
            "replaced": [list(r) for r in self.replaced],
            "missing_regions": [list(m) for m in self.missing_regions],
            "removed": [str(p) for p in self.removed],
        }


def write_release(
    root: Path,
    reg: Registration,
    *,
    expected_regions: Collection[str] = (),
    allow_partial_regions: bool = False,
    now: Callable[[], datetime] | None = None,
    lock: RegistryLock | None = None,
) -> WriteResult:
    """Record one released version under ``root`` and move the links that should move.

    A re-run for the same version merges: regions already recorded are kept, new ones are
    added, and a region published again takes the new layer version. When
    ``expected_regions`` is given and some of them are missing from the merged document,
    the version file is still written (so a re-run can finish it) but ``latest.json`` and
    the major/minor links stay where they are unless ``allow_partial_regions``: a reader
    following ``latest`` would otherwise find no layer in those regions.

    Raises RegistryError (nothing written) when an existing registry file is malformed or
    contradicts this release; SchemaViolation if the built document breaks the schema.
    ``lock`` is the registry's lock when the caller already holds it (a release does, from
    before its preflight); without one, the write takes it.
    """
    if root.exists() and not root.is_dir():
        raise RegistryError(f"{root}: the registry root is not a directory")
    if not reg.layers:
        raise RegistryError(f"{root}: {reg.canonical} {reg.version.text}: no layers to record")
    if not reg.runtime_dir or reg.runtime_dir.startswith(".") or "/" in reg.runtime_dir:
        raise RegistryError(f"registry.runtime_dir: {reg.runtime_dir!r} is not a directory name")
    layers_dir = root / LAYERS_DIR
    runtime_dir = layers_dir / reg.runtime_dir
    version_name = f"{reg.version.text}.json"
    version_path = runtime_dir / version_name
    clock = now or (lambda: datetime.now(timezone.utc))

    with holding(root, lock):
        clean_stray_temps(runtime_dir, layers_dir, root)
        # Everything is read and checked first, so bad input leaves the registry untouched.
        base_path = runtime_dir / BASE_FILE
        base_created = not os.path.lexists(base_path)
        base = _new_base(reg, clock()) if base_created else _read_base(base_path)
        existing = read_version_document(version_path) if version_path.exists() else None
        doc, replaced = _build_document(base, reg, existing, version_path)
        check_own(doc, VERSION_SCHEMA, version_path)

        recorded = {e["layer_name"]: {r["region"] for r in e["regions"]} for e in doc["layers"]}
        missing = tuple(
            (layer.layer_name, region)
            for layer in reg.layers
            for region in sorted(set(expected_regions) - recorded.get(layer.layer_name, set()))
        )
        hold = _hold_reason(reg, missing, allow_partial_regions)
        if isinstance(doc.get("yanked"), dict):
            # A re-run for a yanked release records its regions but never links it again:
            # only `unyank` does.
            hold = "yanked (see `layer-builder unyank`)"
        scheme = scheme_for_runtimes(reg.compatible_runtimes)
        links = plan_links(runtime_dir, reg.version, hold, scheme)
        latest_target = next(link.current for link in links if link.name == LATEST_FILE)
        overrides = {reg.runtime_dir: doc} if latest_target == reg.version.text else {}
        index = collect_index(layers_dir, overrides)
        # Beside aws-lambda-layers/, never inside: the API server opens <entry>/latest.json
        # for every entry there, and a file breaks its scan.
        index_path = root / STATIC_INDEX_FILE
        check_own(index, INDEX_SCHEMA, index_path)
        legacy = legacy_index(layers_dir)

        # Write order keeps every state readable: the version file exists before any
        # link points at it, and the index follows the links. Readers of a checkout never
        # read the index (they follow latest.json), so it only serves static hosting.
        written: list[Path] = []
        runtime_dir.mkdir(parents=True, exist_ok=True)
        if base_created:
            write_if_changed(base_path, render_document(base), written)
        if reg.sbom is not None:
            # Before the document that names it: a reader never finds a dangling `sbom`.
            (runtime_dir / SBOM_DIR).mkdir(exist_ok=True)
            sbom_text = json.dumps(reg.sbom, indent=2, ensure_ascii=False) + "\n"
            write_if_changed(runtime_dir / sbom_relpath(reg.version.text), sbom_text, written)
        write_if_changed(version_path, render_document(doc), written)
        for link in links:
            if link.current == reg.version.text:
                link_if_changed(runtime_dir / link.name, version_name, written)
        write_if_changed(index_path, render_index(index), written)
        if legacy is not None:
            legacy.unlink()
            fsync_dir(layers_dir)
            log.warning("%s: removed (older layer-builder versions wrote it there)", legacy)

    for name, region, old, new in replaced:
        log.warning(
            "%s %s: %s layer version %s replaces %s", region, reg.version.text, name, new, old
        )
    for link in links:
        log.info("%s/%s -> %s (%s)", reg.runtime_dir, link.name, link.current, link.reason)
    return WriteResult(
        version_path,
        index_path,
        tuple(written),
        links,
        base_created,
        replaced,
        missing,
        (legacy,) if legacy is not None else (),
    )


def sbom_relpath(version: str) -> str:
    """The SBOM file of release ``version``, relative to its version document."""
    return f"{SBOM_DIR}/{version}.cdx.json"


def _new_base(reg: Registration, created: datetime) -> Document:
    fields = dict(reg.base_defaults)
    fields.setdefault("created_at", timestamp(created))
    ordered = {k: fields[k] for k in BASE_KEYS if k in fields}
    ordered.update((k, fields[k]) for k in sorted(fields) if k not in ordered)
    return ordered


def _read_base(path: Path) -> Document:
    base = read_json_mapping(path)
    for key in BASE_KEYS:
        if key in base and not isinstance(base[key], str):
            raise RegistryError(f"{path}: {key}: expected a string, found {base[key]!r}")
    return base


def timestamp(moment: datetime) -> str:
    # The registry's spelling: 2021-02-11T11:45:36.000Z (UTC, milliseconds).
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _build_document(
    base: Mapping[str, Any], reg: Registration, existing: Document | None, path: Path
) -> tuple[Document, tuple[tuple[str, str, str, str], ...]]:
    universal = reg.effective_layout == UNIVERSAL
    layers, replaced = _merge_layers(reg, existing, path, universal)
    # layer_name/regions/compatible_architectures are what Sentry's integration reads and
    # attaches to any function: they describe one layer, and claim only what it serves.
    # Universal: the one layer. Per-arch: the x86_64 layer (the first one if there is none).
    primary = next((e for e in layers if e["compatible_architectures"] == ["x86_64"]), layers[0])
    ours: Document = {
        "canonical": reg.canonical,
        "sdk_version": reg.sdk_version,
        "account_number": reg.account_number,
        "layer_name": primary["layer_name"],
        "regions": [{"region": r["region"], "version": r["version"]} for r in primary["regions"]],
        "compatible_runtimes": list(reg.compatible_runtimes),
        "compatible_architectures": list(primary["compatible_architectures"]),
        "layers": layers,
    }
    if reg.packages:
        ours["packages"] = [dict(p) for p in reg.packages]
    if reg.sbom is not None:
        ours["sbom"] = sbom_relpath(reg.version.text)
    if reg.provenance:
        ours["provenance"] = dict(reg.provenance)
    # base.json first, as craft merges it; our fields win over anything base.json holds.
    doc: Document = {k: v for k, v in base.items() if k not in ours}
    doc.update(ours)
    # Fields added to this version's file by hand survive a re-run.
    for key, value in (existing or {}).items():
        doc.setdefault(key, value)
    return doc, replaced


#: One recorded layer: (architectures it serves, code_sha256, {region: (version, arn)}).
_Recorded = tuple[tuple[str, ...], str | None, dict[str, tuple[str, str]]]


def _merge_layers(
    reg: Registration, existing: Document | None, path: Path, universal: bool
) -> tuple[list[Document], tuple[tuple[str, str, str, str], ...]]:
    # Keyed by layer name: one name is one published layer, whatever it serves.
    entries: dict[str, _Recorded] = {}
    if existing is not None:
        for key, ours in (("canonical", reg.canonical), ("account_number", reg.account_number)):
            if existing[key] != ours:
                raise RegistryError(
                    f"{path}: {key} is {existing[key]!r}, this release has {ours!r}"
                )
        entries.update(_recorded_layers(existing))
    replaced: list[tuple[str, str, str, str]] = []
    for layer in reg.layers:
        archs = sort_architectures(layer.architectures)
        _, code, regions = entries.get(layer.layer_name, (archs, None, {}))
        if code is not None and code != layer.code_sha256:
            raise RegistryError(
                f"{path}: the layer {layer.layer_name} was recorded with code_sha256 {code}, "
                f"this release's zip has {layer.code_sha256}; a re-run must publish the same zip"
            )
        regions = dict(regions)
        for region, version, arn in layer.regions:
            old = regions.get(region)
            if old is not None and old[0] != str(version):
                replaced.append((layer.layer_name, region, old[0], str(version)))
            regions[region] = (str(version), arn)
        entries[layer.layer_name] = (archs, layer.code_sha256, regions)

    layers = []
    for name, (archs, code, regions) in sorted(
        entries.items(), key=lambda item: (_arch_rank(item[1][0]), item[0])
    ):
        if not regions:
            continue  # failed everywhere: do not advertise a layer nobody can use
        entry: Document = {"layer_name": name, "compatible_architectures": list(archs)}
        if not universal:
            # Per-arch: each entry serves one architecture; readers of older documents of
            # this tool look for `architecture`.
            entry["architecture"] = archs[0]
        if code is None:  # only craft's top-level fields record it, and this run does not
            raise RegistryError(
                f"{path}: the layer {name} is recorded without a code_sha256 (a document written "
                f"by craft); publish {name} in this run too, so its zip is recorded"
            )
        entry["code_sha256"] = code
        entry["regions"] = [
            {"region": region, "version": version, "arn": arn}
            for region, (version, arn) in sorted(regions.items())
        ]
        layers.append(entry)
    if not layers:
        raise RegistryError(f"{path}: no region has a published layer; nothing to record")
    if universal and len(layers) > 1:
        raise RegistryError(
            f"{path}: records {len(layers)} layers ({', '.join(e['layer_name'] for e in layers)})"
            "; a universal release has one layer (was this version published per-arch before?)"
        )
    return layers, tuple(replaced)


def _arch_rank(archs: tuple[str, ...]) -> tuple[int, ...]:
    rank: dict[str, int] = {a: i for i, a in enumerate(ARCHITECTURES)}
    return tuple(rank.get(a, len(rank)) for a in archs)


def _recorded_layers(doc: Document) -> Iterator[tuple[str, _Recorded]]:
    if "layers" in doc:
        for e in doc["layers"]:
            regions = {r["region"]: (r["version"], r["arn"]) for r in e["regions"]}
            # Older documents of this tool carry only `architecture`.
            archs = tuple(e.get("compatible_architectures") or [e["architecture"]])
            yield e["layer_name"], (archs, e.get("code_sha256"), regions)
        return
    # A document written by craft: layer_name/regions is the one layer, without ARNs.
    name, account = doc["layer_name"], doc["account_number"]
    regions = {}
    for r in doc["regions"]:
        region, version = r["region"], r["version"]
        arn = layer_arn(partition_of_region(region), region, account, name, version)
        regions[region] = (version, arn)
    archs = tuple(doc.get("compatible_architectures") or ["x86_64"])
    yield name, (archs, None, regions)


def check_own(doc: object, schema_name: str, path: Path) -> None:
    problem = schema_error(doc, schema_name)
    if problem:
        raise SchemaViolation(
            f"{path}: refusing to write a document that breaks {schema_name}: {problem}"
        )


def _hold_reason(
    reg: Registration, missing: tuple[tuple[str, str], ...], allow_partial: bool
) -> str | None:
    scheme = scheme_for_runtimes(reg.compatible_runtimes)
    if is_prerelease(reg.version.text, scheme) and not reg.link_prereleases:
        return "prerelease (link_prereleases is off)"
    if missing and not allow_partial:
        return f"partial release: {len(missing)} expected region(s) missing"
    return None


def linked_version(link: Path) -> ReleaseVersion | None:
    """The version a ``latest``/major/minor link points at, from its target's file name."""
    if not os.path.lexists(link):
        return None
    if link.is_symlink():
        stem = os.path.basename(os.readlink(link)).removesuffix(".json")
    else:
        # A checkout without symlink support holds a copy: its sdk_version names it.
        stem = str(read_json_mapping(link).get("sdk_version", ""))
    try:
        return ReleaseVersion.parse(stem, what=str(link))
    except ArgumentError:
        log.warning("%s: cannot tell which version it links to (%r); replacing it", link, stem)
        return None


def link_names(version: ReleaseVersion) -> tuple[str, str, str]:
    """The links ``version`` may take: latest, ``<major>.json``, ``<major>.<minor>.json``."""
    return LATEST_FILE, f"{version.major}.json", f"{version.major}.{version.minor}.json"


def plan_links(
    runtime_dir: Path, version: ReleaseVersion, hold: str | None, scheme: str = "auto"
) -> tuple[LinkUpdate, ...]:
    """Where each of ``version``'s links points after recording it: at it, unless ``hold``
    says why not, or a newer version is linked (links only move forward)."""
    names = link_names(version)
    plan = []
    for name in names:
        linked = linked_version(runtime_dir / name)
        before = linked.text if linked else None
        if hold:
            plan.append(LinkUpdate(name, before, before, f"kept: {hold}"))
        elif linked and link_key(linked.text, scheme) > version_key(version.text, scheme):
            # Links only move forward: a patch for an older line never takes latest.
            plan.append(LinkUpdate(name, before, before, f"kept: newer {linked.text} is linked"))
        else:
            reason = "already linked" if before == version.text else "moved"
            plan.append(LinkUpdate(name, before, version.text, reason))
    return tuple(plan)


# --- writes that skip what is already there -------------------------------------------


def write_if_changed(path: Path, text: str, written: list[Path]) -> None:
    data = text.encode("utf-8")
    if not path.is_symlink() and path.is_file() and path.read_bytes() == data:
        return
    if path.suffix == ".json" and same_json(path, text):
        return  # same content, formatted by hand: keep it byte for byte
    # The mode follows the umask like any file the user creates; durable before it counts.
    write_replacing(path, data, sync_file=True, sync_dir=True)
    written.append(path)


def link_if_changed(link: Path, target: str, written: list[Path]) -> None:
    if link.is_symlink() and os.readlink(link) == target:
        return
    # Relative: the registry stays valid wherever it is checked out.
    replace_symlink(link, target, sync_dir=True)
    written.append(link)
