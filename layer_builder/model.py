"""Plain data passed between the pipeline's steps: build -> publish -> registry.

Frozen dataclasses with explicit JSON round-trips, so a build manifest written on one
machine can be published from another and the registry writer never sees raw boto3 dicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.types import Layout
from layer_builder.versions import is_prerelease, version_key

MANIFEST_FORMAT = 2

#: One layer serves every architecture it carries an extension binary for (the default).
UNIVERSAL: Layout = "universal"
#: One layer per architecture, its name suffixed (``-arm64``): for SDK trees with native code.
PER_ARCH: Layout = "per-arch"
LAYOUTS: tuple[Layout, ...] = (UNIVERSAL, PER_ARCH)
#: Lambda's architectures in the order documents and manifests list them.
ARCH_ORDER = ("x86_64", "arm64")


def sort_architectures(archs: Iterable[str]) -> tuple[str, ...]:
    """Unique architectures, x86_64 first (then any other in name order)."""
    rank = {a: i for i, a in enumerate(ARCH_ORDER)}
    return tuple(sorted(set(archs), key=lambda a: (rank.get(a, len(rank)), a)))


_VERSION_RE = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?P<pre>(?:-|\.|)[0-9A-Za-z][0-9A-Za-z.-]*)?(?:\+[0-9A-Za-z.-]+)?$"
)


#: A release version is part of file names and of Lambda's 256-character Description.
MAX_VERSION_LENGTH = 64


@dataclass(frozen=True)
class ReleaseVersion:
    """A release version: ``MAJOR.MINOR.PATCH`` with an optional prerelease suffix.

    Accepts both Python (``2.0.0a1``, ``2.0.0rc1``) and npm/semver (``8.0.0-beta.1``) spellings.
    """

    text: str
    major: int
    minor: int
    patch: int
    prerelease: str | None

    @classmethod
    def parse(cls, text: str, *, what: str = "--version") -> ReleaseVersion:
        # fullmatch: `$` alone lets a trailing newline through into file names and documents.
        m = _VERSION_RE.fullmatch(text)
        if len(text) > MAX_VERSION_LENGTH:
            raise ArgumentError(
                f"{what}: {len(text)} characters; a release version has at most "
                f"{MAX_VERSION_LENGTH} (it is part of file names and Lambda's Description)"
            )
        if not m:
            raise ArgumentError(
                f"{what}: {text!r} is not a release version (expected MAJOR.MINOR.PATCH, "
                "e.g. 2.75.0 or 8.0.0-beta.1)"
            )
        pre = m.group("pre")
        return cls(text, int(m["major"]), int(m["minor"]), int(m["patch"]), pre or None)

    @property
    def is_prerelease(self) -> bool:
        # A PEP 440 post-release (2.75.0.post1) is a release, not a prerelease.
        return self.prerelease is not None and is_prerelease(self.text)

    def sort_key(self) -> Any:
        # SemVer precedence or PEP 440 order (versions.py), never the text's.
        return version_key(self.text)

    def template_vars(self) -> dict[str, Any]:
        return {"version": self.text, "major": self.major, "minor": self.minor, "patch": self.patch}


@dataclass(frozen=True)
class BundledPackage:
    name: str
    version: str


@dataclass(frozen=True)
class ExtensionInfo:
    """One extension binary in a layer (a universal layer has one per architecture)."""

    name: str
    version: str
    sha256: str
    source: str  # where the binary came from: a URL, a local path, or "sandbox stand-in"
    architecture: str = ""  # the machine it runs on ("" in manifests of format 1)
    path: str = ""  # its POSIX path inside the layer ("" in manifests of format 1)


@dataclass(frozen=True)
class BytecodeInfo:
    """Whether a Python layer carries precompiled bytecode for one of its runtimes."""

    runtime: str  # python3.12
    compiled: bool
    cache_tag: str = ""  # cpython-312: the files are __pycache__/<module>.cpython-312.pyc
    python: str = ""  # the exact interpreter version that compiled them (bytes depend on it)
    invalidation_mode: str = ""  # checked-hash
    files: int = 0  # modules compiled
    not_compiled: tuple[str, ...] = ()  # paths under python/ this version cannot compile
    reason: str = ""  # without bytecode: why, and how to provide the interpreter (or, with
    # bytecode for every module where the cold path was asked for: why it was not found)
    scope: str = ""  # "all" modules, or the "cold-path" ones ("": a manifest before scopes)


@dataclass(frozen=True)
class BuildManifest:
    """What ``build`` records beside each zip (``<zip>.json``); what ``publish`` reads.

    One manifest is one zip is one layer name. ``architectures`` are those the zip really
    serves (it carries an extension binary for each), x86_64 first: a universal layer lists
    every one, a per-arch layer exactly one. They become the layer's CompatibleArchitectures.
    """

    layer_name: str
    canonical: str
    version: str
    architectures: tuple[str, ...]
    layout: str  # UNIVERSAL or PER_ARCH (a Layout; config reads it as str)
    compatible_runtimes: tuple[str, ...]
    description: str
    license: str
    zip_file: str  # file name, relative to the manifest's directory
    sha256: str  # hex digest of the zip
    code_sha256: str  # base64 of the raw sha256 digest: what Lambda reports as CodeSha256
    zip_size: int
    unzipped_size: int
    file_count: int
    sdk_name: str
    sdk_version: str
    extensions: tuple[ExtensionInfo, ...]  # one per architecture; empty without an extension
    source_date_epoch: int
    packages: tuple[BundledPackage, ...] = ()
    needs_s3_upload: bool = False
    #: Python layers: one entry per compatible runtime (empty: no bytecode step ran)
    bytecode: tuple[BytecodeInfo, ...] = ()
    format: int = MANIFEST_FORMAT
    #: The layer's CycloneDX JSON SBOM (build/sbom.py); None in manifests of older builds.
    sbom: dict[str, Any] | None = None
    #: Which commit and CI run built it (provenance.py); None outside CI.
    provenance: dict[str, str] | None = None

    @property
    def extension(self) -> ExtensionInfo | None:
        """The first (x86_64 when present) extension binary, or None."""
        return self.extensions[0] if self.extensions else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "manifest") -> BuildManifest:
        try:
            data = dict(data)
            if "architecture" in data and "architectures" not in data:
                # Format 1 (before the universal layout): one architecture per manifest.
                arch = data.pop("architecture")
                data["architectures"] = [arch]
                data.setdefault("layout", PER_ARCH)
                ext = data.pop("extension", None)
                data["extensions"] = [{**ext, "architecture": arch}] if ext else []
                data["format"] = MANIFEST_FORMAT
            if data.get("layout") not in LAYOUTS:
                raise ArtifactError(
                    f"{source}: layout {data.get('layout')!r} is not one of {', '.join(LAYOUTS)}"
                )
            archs = tuple(data["architectures"])
            if not archs or sort_architectures(archs) != archs:
                raise ArtifactError(
                    f"{source}: architectures {list(archs)} must be unique, x86_64 first"
                )
            return cls(
                **{
                    **data,
                    "architectures": archs,
                    "compatible_runtimes": tuple(data["compatible_runtimes"]),
                    "extensions": tuple(ExtensionInfo(**e) for e in data.get("extensions", ())),
                    "packages": tuple(BundledPackage(**p) for p in data.get("packages", ())),
                    "bytecode": tuple(
                        BytecodeInfo(**{**b, "not_compiled": tuple(b.get("not_compiled", ()))})
                        for b in data.get("bytecode", ())
                    ),
                }
            )
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{source}: not a layer-builder build manifest ({exc})") from None

    @classmethod
    def load(cls, path: Path) -> BuildManifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(
                f"{path}: build manifest not found (run `layer-builder build` first)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path}: unreadable build manifest: {exc}") from None
        except RecursionError:  # JSON nested thousands deep: no manifest looks like that
            raise ArtifactError(f"{path}: unreadable build manifest: nested too deeply") from None
        if not isinstance(data, dict):
            raise ArtifactError(f"{path}: not a layer-builder build manifest")
        return cls.from_dict(data, source=str(path))

    def zip_path(self, manifest_path: Path) -> Path:
        return manifest_path.parent / self.zip_file


RegionStatus = Literal[
    "new", "reused", "failed", "planned-new", "planned-reuse", "planned-heal-permission"
]


@dataclass(frozen=True)
class RegionResult:
    """The outcome for one (region, layer name): one layer version serving ``architectures``."""

    region: str
    architectures: tuple[str, ...]
    layer_name: str
    status: RegionStatus
    version: int | None = None
    arn: str | None = None
    seconds: float = 0.0
    permission_added: bool = False
    error: str | None = None
    # What was done (or, in a dry run, would be): "published 3", "removed permission public"..
    actions: tuple[str, ...] = ()
    deleted: tuple[int, ...] = ()  # newer duplicate versions deleted

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class PublishedLayer:
    """One published layer (one name) as the registry records it, and what it serves."""

    architectures: tuple[str, ...]
    layer_name: str
    code_sha256: str
    regions: tuple[tuple[str, int, str], ...]  # (region, version, arn), sorted by region


@dataclass(frozen=True)
class PublishResult:
    account: str
    partition: str
    results: tuple[RegionResult, ...]
    dry_run: bool = False

    @property
    def failed(self) -> tuple[RegionResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def complete(self) -> bool:
        return not self.failed

    def layers(self, manifests: list[BuildManifest]) -> list[PublishedLayer]:
        """Per manifest (one layer name), the regions that succeeded, for the registry writer."""
        out = []
        for m in manifests:
            regions = sorted(
                (r.region, int(r.version), str(r.arn))
                for r in self.results
                if r.layer_name == m.layer_name and r.ok and r.version is not None
            )
            out.append(PublishedLayer(m.architectures, m.layer_name, m.code_sha256, tuple(regions)))
        return out


@dataclass(frozen=True)
class Registration:
    """Everything the registry writer needs for one released version."""

    runtime_dir: str
    canonical: str
    version: ReleaseVersion
    sdk_version: str
    account_number: str
    compatible_runtimes: tuple[str, ...]
    layers: tuple[PublishedLayer, ...]  # x86_64 first when present
    link_prereleases: bool = False
    # UNIVERSAL or PER_ARCH; None: universal when one layer serves several architectures.
    layout: str | None = None
    base_defaults: dict[str, str] = field(default_factory=dict)  # used only if base.json is absent
    # Optional document fields (readers that do not know them ignore them):
    sbom: dict[str, Any] | None = None  # the release's CycloneDX SBOM, written beside it
    packages: tuple[dict[str, str], ...] = ()  # name, version, purl of every package
    provenance: dict[str, str] | None = None  # commit, repository, workflow_run, attestation

    @property
    def effective_layout(self) -> str:
        if self.layout is not None:
            return self.layout
        if len(self.layers) == 1 and len(self.layers[0].architectures) > 1:
            return UNIVERSAL
        return PER_ARCH
