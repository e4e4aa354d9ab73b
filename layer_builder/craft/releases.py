"""From craft targets to what the publisher takes: the artifact, its manifest, a LayerConfig.

Each target selects one artifact (``includeNames``); its build manifest is used when
``layer-builder build`` wrote one beside it, else the manifest is computed from the zip.
Targets that share a registry runtime become one release, one registry write.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.config import LayerConfig, PublishConfig, RegistryConfig, SdkConfig, Template
from layer_builder.craft.targets import CANONICAL_PREFIX, CraftLayerTarget, CraftRuntime
from layer_builder.elf import check_elf, read_elf_header
from layer_builder.errors import ArgumentError, ArtifactError, ConfigError
from layer_builder.model import (
    PER_ARCH,
    UNIVERSAL,
    BuildManifest,
    ReleaseVersion,
    sort_architectures,
)


@dataclass(frozen=True)
class CraftArtifact:
    """The artifact a target publishes, with the manifest the publisher reads."""

    target: CraftLayerTarget
    zip_path: Path
    manifest_path: Path  # beside the zip; absent on disk when the manifest was computed
    manifest: BuildManifest
    computed: bool  # no build manifest was found: sha256 and sizes were measured from the zip


@dataclass(frozen=True)
class CraftRelease:
    """What one release (:func:`layer_builder.publish.release.run_release`) publishes: one
    registry runtime, its zips."""

    runtime: CraftRuntime
    config: LayerConfig
    built: tuple[tuple[Path, BuildManifest], ...]
    artifacts: tuple[CraftArtifact, ...]


def find_artifact(target: CraftLayerTarget, directory: Path, config: Path) -> Path:
    """The one file in ``directory`` that ``includeNames`` matches (and ``excludeNames`` not).

    Build manifests (``<zip>.json`` beside their zip) are metadata, never candidates.
    """
    if not directory.is_dir():
        raise ArgumentError(f"--artifacts: {directory} is not a directory")
    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    inc, exc = target.include_names, target.exclude_names
    found = [
        n
        for n in files
        if not (n.endswith(".json") and n.removesuffix(".json") in files)
        and (inc is None or inc.search(n))
        and not (exc is not None and exc.search(n))
    ]
    where = (
        f"{config}: {target.key}.includeNames /{inc.pattern}/"
        if inc
        else f"{config}: {target.key} (no includeNames: every file)"
    )
    if not found:
        raise ArtifactError(
            f"{where} matches no artifact in {directory} (files: {', '.join(files) or 'none'})"
        )
    if len(found) > 1:
        raise ArtifactError(
            f"{where} matches {len(found)} artifacts in {directory}: "
            f"{', '.join(found)}; it must match exactly one"
        )
    return directory / found[0]


def read_artifact(
    target: CraftLayerTarget, zip_path: Path, version: ReleaseVersion
) -> CraftArtifact:
    """The artifact's build manifest, or one computed from the zip when there is none.

    A manifest written by ``layer-builder build`` is checked as ``publish`` checks it (the zip
    still matches it; layout, modes and ELF machines fit). Without one, the sha256 and sizes
    come from the zip and the architecture from ``compatibleArchitectures`` (x86_64 when it is
    not set: what Lambda assumes for a layer that declares none).
    """
    from layer_builder.build.verify import verify_zip

    manifest_path = zip_path.with_name(zip_path.name + ".json")
    if manifest_path.exists():
        verify_zip(zip_path)
        m = BuildManifest.load(manifest_path)
        wanted = sort_architectures(target.architectures)
        if target.architectures and wanted != m.architectures:
            raise ArtifactError(
                f"{zip_path}: built for {', '.join(m.architectures)} (per {manifest_path.name}), "
                f"but {target.key}.compatibleArchitectures says {', '.join(wanted)}"
            )
        if m.version != version.text:
            raise ArtifactError(
                f"{zip_path}: built for version {m.version}, not "
                f"{version.text}; rebuild or pass the matching --version"
            )
        return CraftArtifact(target, zip_path, manifest_path, m, computed=False)

    archs = sort_architectures(target.architectures) if target.architectures else ("x86_64",)
    z = inspect_zip(zip_path)
    if z.unsafe_names or z.duplicate_names:
        raise ArtifactError(
            f"{zip_path}: unsafe or duplicate member names: "
            f"{', '.join(z.unsafe_names + z.duplicate_names)}"
        )
    _check_extensions(zip_path, archs)
    m = BuildManifest(
        layer_name="",
        canonical="",
        version=version.text,
        architectures=archs,
        # One target serving several architectures is one (universal) layer.
        layout=UNIVERSAL if len(archs) > 1 else PER_ARCH,
        compatible_runtimes=(),
        license="",
        zip_file=zip_path.name,
        # craft's description for every layer version it publishes
        description=f"Sentry AWS Serverless SDK v{version.text}",
        sha256=z.sha256,
        code_sha256=z.code_sha256,
        zip_size=z.zip_size,
        unzipped_size=z.unzipped_size,
        file_count=sum(1 for e in z.entries if not e.is_dir),
        sdk_name="",
        sdk_version=version.text,
        extensions=(),
        source_date_epoch=0,
        needs_s3_upload=z.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES,
    )
    return CraftArtifact(target, zip_path, manifest_path, m, computed=True)


def _check_extensions(zip_path: Path, archs: tuple[str, ...]) -> None:
    """Lambda runs every file in /opt/extensions: a binary for another machine cannot start,
    and one ELF binary cannot serve two machines (that takes a launcher script)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            rest = info.filename.removeprefix("extensions/")
            if rest == info.filename or not rest or "/" in rest:
                continue
            with zf.open(info) as member:
                head = member.read(64)
            if read_elf_header(head) is not None:
                if len(archs) > 1:
                    raise ArtifactError(
                        f"{zip_path}:{info.filename}: is an ELF binary, which runs on one "
                        f"machine only; a layer for {', '.join(archs)} needs a launcher script"
                    )
                check_elf(head, archs[0], what=f"{zip_path}:{info.filename}")


def plan_releases(
    targets: Iterable[CraftLayerTarget], artifacts: Path, version: ReleaseVersion, config: Path
) -> list[CraftRelease]:
    """Match every target to its artifact and group them by registry runtime.

    Targets that share a runtime name (typically one per architecture) become one release,
    so the registry gets one document holding every architecture, written once.
    """
    groups: dict[str, list[tuple[CraftRuntime, CraftArtifact]]] = {}
    for target in targets:
        artifact = read_artifact(target, find_artifact(target, artifacts, config), version)
        for runtime in target.runtimes:
            groups.setdefault(runtime.name, []).append((runtime, artifact))
    return [_release(config, version, entries) for entries in groups.values()]


def _release(
    config: Path, version: ReleaseVersion, entries: list[tuple[CraftRuntime, CraftArtifact]]
) -> CraftRelease:
    runtime, first = entries[0]
    by_arch: dict[str, CraftArtifact] = {}
    for rt, a in entries:
        t, both = a.target, f"{first.target.key} and {a.target.key}"
        if rt.versions != runtime.versions:
            raise ConfigError(
                str(config),
                both,
                f"runtime {runtime.name!r} has different "
                "versions; both targets write the same registry file",
            )
        if (t.license, t.link_prereleases) != (first.target.license, first.target.link_prereleases):
            raise ConfigError(
                str(config),
                both,
                f"runtime {runtime.name!r}: license and "
                "linkPrereleases must be the same in both targets",
            )
        for arch in a.manifest.architectures:
            if arch in by_arch:
                other = by_arch[arch]
                raise ConfigError(
                    str(config),
                    f"{other.target.key} and {t.key}",
                    f"both publish a {arch} artifact for runtime {runtime.name!r} "
                    f"({other.zip_path.name}, {a.zip_path.name}); give each target "
                    "its own compatibleArchitectures",
                )
            by_arch[arch] = a
    # One artifact per layer, in architecture order (x86_64's first).
    arts = list({id(by_arch[a]): by_arch[a] for a in sort_architectures(by_arch)}.values())
    universal = len(arts) == 1 and arts[0].manifest.layout == UNIVERSAL
    if not universal and any(len(a.manifest.architectures) > 1 for a in arts):
        raise ConfigError(
            str(config),
            " and ".join(a.target.key for a in arts),
            f"runtime {runtime.name!r}: an artifact serving several architectures is the one "
            "layer of its runtime; do not add per-architecture targets beside it",
        )
    names = {a.manifest.architectures[0]: a.target.layer_name.render(version) for a in arts}
    if len(set(names.values())) != len(names):
        raise ConfigError(
            str(config),
            " and ".join(a.target.key for a in arts),
            f"layerName renders to {next(iter(names.values()))!r} for every architecture; "
            "each architecture needs its own layer",
        )
    cfg = _layer_config(config, runtime, first.target, names, universal, tuple(by_arch))
    built = tuple(
        (
            a.manifest_path,
            dataclasses.replace(
                a.manifest,
                layer_name=names[a.manifest.architectures[0]],
                canonical=cfg.canonical,
                compatible_runtimes=runtime.versions,
                license=cfg.license,
                layout=cfg.layout,
            ),
        )
        for a in arts
    )
    return CraftRelease(runtime, cfg, built, tuple(arts))


def _layer_config(
    config: Path,
    runtime: CraftRuntime,
    target: CraftLayerTarget,
    names: dict[str, str],
    universal: bool,
    archs: tuple[str, ...],
) -> LayerConfig:
    """The LayerConfig the publisher and registry writer need, from craft's keys."""
    # One Jinja2 template that yields each architecture's (already rendered) layer name.
    source = (
        next(iter(names.values()))
        if universal
        else "".join(
            f"{{% {'elif' if i else 'if'} arch == '{arch}' %}}{name}"
            for i, (arch, name) in enumerate(names.items())
        )
        + "{% endif %}"
    )
    family = aws_facts.runtime_family(runtime.versions[0])
    assert family is not None  # _check_runtimes refused anything else
    return LayerConfig(
        path=config,
        name=Template(source),
        description=Template("{{ version }}"),
        license=target.license,
        canonical=CANONICAL_PREFIX + runtime.name,
        family=family,
        compatible_runtimes=runtime.versions,
        architectures=sort_architectures(archs),
        # Nothing is built here: the SDK fields only describe what the artifact holds.
        sdk=SdkConfig(
            package=runtime.name,
            source="pypi" if family == "python" else "npm",
            version=Template("{{ version }}"),
            path=None,
        ),
        files=(),
        extension=None,
        # craft's behaviour: every enabled region, public (Principal *, StatementId public).
        publish=PublishConfig(regions=None),
        registry=RegistryConfig(runtime_dir=runtime.name, link_prereleases=target.link_prereleases),
        layout=UNIVERSAL if universal else PER_ARCH,
    )


def skipped_as_prerelease(release: CraftRelease, version: ReleaseVersion) -> bool:
    """craft publishes no layer for a prerelease unless the target sets linkPrereleases."""
    return version.is_prerelease and not release.config.registry.link_prereleases
