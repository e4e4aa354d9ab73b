"""What to publish: each built zip verified against its manifest and the config, before
anything touches AWS (:func:`plan_layers`), as one :class:`LayerPlan` per layer name."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.aws.clients import Statement
from layer_builder.config import LayerConfig, PermissionConfig, Template
from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.model import BuildManifest, ReleaseVersion
from layer_builder.publish.markers import (
    content_marker,
    marked_description,
    parse_marker,
    release_marker,
)

S3_KEY_PREFIX = "layer-builder"


# --------------------------------------------------------------------------- what to publish


@dataclass(frozen=True)
class LayerPlan:
    """One verified zip and everything needed to publish it anywhere."""

    manifest_path: Path
    zip_path: Path
    layer_name: str
    architectures: tuple[str, ...]  # CompatibleArchitectures: what the zip serves
    description: str
    license_info: str
    runtimes: tuple[str, ...]
    sha256: str  # hex
    code_sha256: str  # base64, as Lambda reports it
    size: int
    statements: tuple[Statement, ...]
    release: ReleaseVersion
    statement_id: str = "public"  # the config's: statements with this id (or id-*) are ours
    s3_bucket: Template | None = None  # set only when the zip goes through S3
    zip_bytes: bytes | None = field(default=None, repr=False)  # set for direct uploads
    canonical: str = ""  # the release's layer ("aws-layer:python"), named in the marker

    @property
    def use_s3(self) -> bool:
        return self.zip_bytes is None

    @property
    def marker(self) -> str:
        """The release marker (content only when the plan names no canonical)."""
        if not self.canonical:
            return content_marker(self.sha256)
        return release_marker(self.canonical, self.release.text, self.sha256)

    @property
    def marked_description(self) -> str:
        """The Description published: the build's, plus the release marker."""
        return marked_description(
            self.description, self.sha256, self.canonical or None, self.release.text
        )

    def metadata(self) -> tuple[frozenset[str], frozenset[str], str]:
        """(runtimes, architectures, license) as a listed version's ``metadata()``."""
        return frozenset(self.runtimes), frozenset(self.architectures), self.license_info or ""

    def bucket_for(self, region: str) -> str:
        assert self.s3_bucket is not None
        return self.s3_bucket.render(self.release, self.architectures[0], region=region)

    def s3_key(self) -> str:
        return f"{S3_KEY_PREFIX}/{self.layer_name}/{self.sha256}.zip"


def permission_statements(perm: PermissionConfig) -> tuple[Statement, ...]:
    """The statements a published version must carry."""
    if perm.accounts:
        # One statement per account: a statement has a single principal.
        return tuple(Statement(f"{perm.statement_id}-{a}", a) for a in perm.accounts)
    return (Statement(perm.statement_id, perm.principal, perm.organization_id),)


def _digest(path: Path, keep: bool) -> tuple[str, bytes, bytes | None]:
    """(hex sha256, raw digest, file bytes if ``keep``), reading the file once."""
    h = hashlib.sha256()
    chunks: list[bytes] | None = [] if keep else None
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            if chunks is not None:
                chunks.append(chunk)
    return h.hexdigest(), h.digest(), None if chunks is None else b"".join(chunks)


def plan_layers(
    cfg: LayerConfig,
    version: ReleaseVersion,
    manifests: Sequence[tuple[Path, BuildManifest]],
    regions: Sequence[str] = (),
) -> list[LayerPlan]:
    """Verify every zip against its manifest and the config; nothing is published on error.

    Raises ArtifactError (missing zip, checksum mismatch, manifest for another version,
    architecture or layer name) or ArgumentError (a zip needs S3 and no bucket is configured).
    """
    if not manifests:
        raise ArtifactError("no build manifests given: run `layer-builder build` first")
    plans: list[LayerPlan] = []
    seen: set[str] = set()
    statements = permission_statements(cfg.publish.permission)
    for manifest_path, m in manifests:
        where = str(manifest_path)
        if m.layout != cfg.layout:
            raise ArtifactError(
                f"{where}: built with layout {m.layout}, {cfg.path} says {cfg.layout}; rebuild"
            )
        for arch in m.architectures:
            if arch not in cfg.architectures:
                raise ArtifactError(
                    f"{where}: architecture {arch!r} is not configured in "
                    f"{cfg.path} ({', '.join(cfg.architectures)})"
                )
            if arch in seen:
                raise ArtifactError(f"{where}: a second zip for {arch}")
            seen.add(arch)
        if m.version != version.text:
            raise ArtifactError(
                f"{where}: built for version {m.version}, not {version.text}; "
                "rebuild or pass the matching --version"
            )
        expected = cfg.layer_name(version, m.architectures[0])
        if m.layer_name != expected:
            raise ArtifactError(
                f"{where}: layer name {m.layer_name!r} differs from the config's "
                f"{expected!r}; rebuild with the current config"
            )
        zip_path = m.zip_path(manifest_path)
        if not zip_path.is_file():
            raise ArtifactError(f"{zip_path}: zip not found (listed in {where}); rebuild it")
        size = zip_path.stat().st_size
        # Read the module attribute at call time so the limit can be lowered in tests.
        use_s3 = m.needs_s3_upload or size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES
        hexdigest, raw, data = _digest(zip_path, keep=not use_s3)
        if hexdigest != m.sha256:
            raise ArtifactError(
                f"{zip_path}: sha256 is {hexdigest}, the manifest {where} says "
                f"{m.sha256}; the zip changed after the build, rebuild it"
            )
        code_sha = base64.b64encode(raw).decode("ascii")
        if code_sha != m.code_sha256:
            raise ArtifactError(
                f"{where}: code_sha256 {m.code_sha256!r} does not match the zip ({code_sha!r})"
            )
        if use_s3:
            _check_bucket(cfg, version, m, size, regions)
        plans.append(
            LayerPlan(
                manifest_path=manifest_path,
                zip_path=zip_path,
                layer_name=m.layer_name,
                architectures=m.architectures,
                description=m.description,
                license_info=m.license,
                runtimes=m.compatible_runtimes,
                sha256=hexdigest,
                code_sha256=code_sha,
                size=size,
                statements=statements,
                release=version,
                statement_id=cfg.publish.permission.statement_id,
                s3_bucket=cfg.publish.s3_bucket if use_s3 else None,
                zip_bytes=data,
                canonical=cfg.canonical,
            )
        )
    for plan in plans:
        _check_marker(plan)
    return sorted(plans, key=lambda p: p.layer_name)


def _check_marker(plan: LayerPlan) -> None:
    """The published Description must read back as this release and zip, or every later
    run would miss its own versions (a canonical with a space or a bracket would)."""
    marker = parse_marker(plan.marked_description)
    if marker is None or not (
        marker.claims(plan.canonical, plan.release.text) and marker.holds(plan.sha256)
    ):
        raise ArtifactError(
            f"{plan.manifest_path}: canonical {plan.canonical!r} cannot be named in the "
            "release marker of a layer version's Description (no spaces or brackets)"
        )


def _check_bucket(
    cfg: LayerConfig, version: ReleaseVersion, m: BuildManifest, size: int, regions: Sequence[str]
) -> None:
    limit_mb = aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES / (1024 * 1024)
    if cfg.publish.s3_bucket is None:
        raise ArgumentError(
            f"{cfg.path}: publish.s3_bucket: {m.zip_file} is {size / 1048576:.1f} MB, over the "
            f"{limit_mb:g} MB direct-upload limit; set publish.s3_bucket to a bucket per region "
            "(e.g. 'my-layers-{{ region }}') so the zip can be staged in S3"
        )
    buckets = {cfg.publish.s3_bucket.render(version, m.architectures[0], region=r) for r in regions}
    if len(regions) > 1 and len(buckets) == 1:
        raise ArgumentError(
            f"{cfg.path}: publish.s3_bucket: renders to the same bucket for every region; Lambda "
            "reads the zip only from a bucket in the layer's own region, use {{ region }}"
        )


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
