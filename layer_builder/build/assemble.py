"""Assemble a release's layer trees (SDK + our files + extension), zip them, write manifests.

Universal layout: the SDK is installed once, must be architecture-neutral (no ELF file under
``python/`` or ``nodejs/``), and one zip carries every architecture's extension binary and
the launcher that picks one by machine. Per-arch layout: one zip per architecture; the SDK is
installed once and shared when that install is architecture-neutral, else once per
architecture. Every tree is staged in a fresh temporary directory so nothing from the build
machine (paths, umask, leftovers of an earlier build) reaches a zip.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build import bytecode, nodebundle, nodeshim, sdk
from layer_builder.build.extension import (
    LayerFile,
    ResolvedBinary,
    has_binary,
    load_manifest,
    resolve_binary,
)
from layer_builder.build.launcher import ResolvedExtension, layer_files
from layer_builder.build.lock import Lock
from layer_builder.build.sbom import layer_sbom, read_pip_report
from layer_builder.build.verify import neutrality_error
from layer_builder.build.zipper import resolve_source_date_epoch, write_zip
from layer_builder.config import LayerConfig
from layer_builder.elf import read_elf_header
from layer_builder.errors import ArgumentError, ConfigError, SizeLimitError
from layer_builder.fsutil import write_replacing
from layer_builder.model import (
    PER_ARCH,
    UNIVERSAL,
    BuildManifest,
    BytecodeInfo,
    ReleaseVersion,
)
from layer_builder.provenance import provenance_from_env
from layer_builder.smoke.runtimes import PYTHON_WRAPPER

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
#: Where each family's SDK lives in a layer: the part that must be architecture-neutral in
#: a universal layer.
SDK_DIRS = ("python", "nodejs")


@dataclass(frozen=True)
class BuiltLayer:
    manifest: BuildManifest
    manifest_path: Path
    zip_path: Path
    seconds: float
    #: seconds per build phase: ``install`` (or reuse of a shared install), ``assemble``
    #: (our files and the extension), ``zip`` (and the manifest); the CLI adds ``verify``
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def room_left(self) -> int:
        """Bytes left for the function's own code under Lambda's unzipped limit."""
        return aws_facts.MAX_UNZIPPED_BYTES - self.manifest.unzipped_size


def artifact_stem(cfg: LayerConfig, version: ReleaseVersion, arch: str | None = None) -> str:
    """File name (without .zip) of one built layer: ``<config>-<version>`` for the universal
    layer, ``<config>-<version>-<arch>`` for a per-arch one."""
    if cfg.universal:
        return f"{cfg.path.stem}-{version.text}"
    assert arch is not None, "a per-arch artifact needs its architecture"
    return f"{cfg.path.stem}-{version.text}-{arch}"


def manifest_path_for(
    dist: Path, cfg: LayerConfig, version: ReleaseVersion, arch: str | None = None
) -> Path:
    return dist / f"{artifact_stem(cfg, version, arch)}.zip.json"


def manifest_paths_for(
    dist: Path, cfg: LayerConfig, version: ReleaseVersion, archs: tuple[str, ...]
) -> list[Path]:
    """The manifests a build of ``archs`` wrote: one (universal) or one per architecture."""
    if cfg.universal:
        return [manifest_path_for(dist, cfg, version)]
    return [manifest_path_for(dist, cfg, version, a) for a in archs]


# --------------------------------------------------------------------------- extension plan


@dataclass(frozen=True)
class ExtensionPlan:
    """Which architectures a build serves, with each one's verified extension binary."""

    architectures: tuple[str, ...]  # x86_64 first
    binaries: Mapping[str, ResolvedBinary]  # empty when the layer has no extension
    skipped: tuple[tuple[str, str], ...] = ()  # (architecture, why), for the build to say

    def extension_for(self, archs: tuple[str, ...], layout: str) -> ResolvedExtension | None:
        if not self.binaries:
            return None
        return layer_files([self.binaries[a] for a in archs], layout)


def plan_extension(
    cfg: LayerConfig,
    archs: tuple[str, ...],
    *,
    overrides: Mapping[str, Path] | None = None,
    extension_manifest: Path | None = None,
    explicit: bool = False,
) -> ExtensionPlan:
    """Fetch (or take) and check every architecture's extension binary, before any install.

    ``extension_manifest`` overrides the config's manifest (the sandbox's local stand-in);
    ``overrides`` are local binaries from ``--extension-file``. An architecture the manifest
    has no binary for (Relay publishes no Linux aarch64 build) is left out and reported in
    ``skipped`` when the architectures came from the config; asked for with ``--arch``
    (``explicit``), it is an error naming the fix.
    """
    overrides = dict(overrides or {})
    manifest_file = extension_manifest or cfg.extension
    if manifest_file is None:
        if overrides:
            raise ArgumentError(f"--extension-file: {cfg.path} configures no extension manifest")
        return ExtensionPlan(archs, {})
    manifest = load_manifest(manifest_file)
    served: list[str] = []
    skipped: list[tuple[str, str]] = []
    for arch in archs:
        if arch in overrides or has_binary(manifest, arch) or explicit:
            served.append(arch)
        else:
            why = (
                f"{manifest.path} lists no {arch} binary of {manifest.name} "
                f"(pass --extension-file {arch}=PATH to build it)"
            )
            skipped.append((arch, why))
    if not served:
        # Nothing left: the error for the first architecture says what to do.
        raise ConfigError(
            str(manifest.path),
            f"files.{archs[0]}",
            f"no binary for {', '.join(archs)}; add one or pass --extension-file ARCH=PATH",
        )
    binaries = {a: resolve_binary(manifest, a, override=overrides.get(a)) for a in served}
    return ExtensionPlan(tuple(served), binaries, tuple(skipped))


# --------------------------------------------------------------------------- tree helpers


def _place(root: Path, f: LayerFile) -> None:
    dest = root / f.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    if f.content is not None:
        dest.write_bytes(f.content)
    else:
        assert f.source is not None
        shutil.copyfile(f.source, dest)
    dest.chmod(f.mode)


def _files_under(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name


def elf_files(root: Path, dirs: tuple[str, ...] = SDK_DIRS) -> list[str]:
    """POSIX paths (relative to ``root``) of the ELF files under ``dirs``, sorted."""
    found = []
    for d in dirs:
        for path in _files_under(root / d):
            if path.is_symlink() or not path.is_file():
                continue
            with path.open("rb") as f:
                head = f.read(64)
            if read_elf_header(head) is not None:
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def cpu_specific_packages(root: Path) -> list[str]:
    """Node packages npm installs for some CPUs only, installed here or skipped (sorted).

    npm's lockfile lists every optional platform package with its ``cpu``, whichever one
    ``--cpu`` picked: a tree that has one is specific to the CPU it was installed for, even
    when the package it picked holds no ELF file (a WebAssembly or JavaScript fallback).
    """
    try:
        data = json.loads((root / "nodejs" / "package-lock.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # no lockfile (a Python layer), or not one npm wrote
    packages = data.get("packages") if isinstance(data, dict) else None
    if not isinstance(packages, dict):
        return []
    return sorted(
        key.rsplit("node_modules/", 1)[-1]
        for key, entry in packages.items()
        if isinstance(entry, dict) and entry.get("cpu")
    )


def _copy_tree(src: Path, dest: Path) -> None:
    # Hard links where possible: the SDK tree is only read from here on.
    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, symlinks=True, copy_function=link_or_copy, dirs_exist_ok=True)


def _copy_pip_report(src: Path, dest: Path) -> None:
    # The SBOM of a tree copied from another install reads that install's pip report.
    if sdk.pip_report_path(src).exists():
        shutil.copyfile(sdk.pip_report_path(src), sdk.pip_report_path(dest))


def _install(
    cfg: LayerConfig, sdk_version: str, arch: str, dest: Path, say: Progress, lock: Lock | None
) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        say(f"{arch}: installing {cfg.sdk.package} {sdk_version} from {lock.describe()}")
        lock.install(arch, dest)
    else:
        say(f"{arch}: installing {cfg.sdk.package} {sdk_version}")
        sdk.install_sdk(cfg, sdk_version, arch, dest)


# --------------------------------------------------------------------------- the build


def build_release(
    cfg: LayerConfig,
    version: ReleaseVersion,
    plan: ExtensionPlan,
    out_dir: Path,
    *,
    epoch: int | None = None,
    progress: Progress | None = None,
    lock: Lock | None = None,
) -> list[BuiltLayer]:
    """Build every layer of a release into ``out_dir``: the universal zip, or one per arch.

    ``lock`` (from :func:`layer_builder.build.lock.for_build`): install exactly what it
    lists, hash-checked, instead of resolving the SDK's dependencies afresh.

    ``plan`` comes from :func:`plan_extension`, called before any install, so a bad pin or
    binary costs seconds and writes nothing. Raises :class:`ArchitectureError` (exit 2) when
    a universal layer's SDK tree is not architecture-neutral.
    """
    say = progress or (lambda _msg: None)
    epoch = resolve_source_date_epoch(epoch)
    sdk_version = cfg.sdk_version(version)
    archs = plan.architectures
    out_dir.mkdir(parents=True, exist_ok=True)
    job = _Job(cfg, version, sdk_version, out_dir, epoch, say)
    built: list[BuiltLayer] = []
    with tempfile.TemporaryDirectory(prefix="layer-builder-") as tmp:
        work = Path(tmp)
        if cfg.universal:
            start = time.monotonic()
            root = work / "layer"
            # Installed once, for the first architecture's platform; verified neutral below.
            _install(cfg, sdk_version, archs[0], root, say, lock)
            elves = elf_files(root)
            if elves:
                raise neutrality_error(f"{cfg.sdk.package} {sdk_version}", elves)
            ext = plan.extension_for(archs, UNIVERSAL)
            built.append(_finish(job, archs, root, ext, start=start))
            return built
        shared: Path | None = None
        for arch in archs:
            start = time.monotonic()
            root = work / f"layer-{arch}"
            if shared is None:
                _install(cfg, sdk_version, arch, root, say, lock)
                if not elf_files(root) and not cpu_specific_packages(root):
                    # Architecture-neutral (no native file, nothing npm picked by CPU): the
                    # other architectures get this same tree instead of a second install.
                    shared = work / "sdk"
                    _copy_tree(root, shared)
                    _copy_pip_report(root, shared)
            else:
                say(f"{arch}: {cfg.sdk.package} {sdk_version} is architecture-neutral: reused")
                _copy_tree(shared, root)
                _copy_pip_report(shared, root)
            ext = plan.extension_for((arch,), PER_ARCH)
            built.append(_finish(job, (arch,), root, ext, start=start))
    return built


@dataclass(frozen=True)
class _Job:
    """What every layer of one build shares."""

    cfg: LayerConfig
    version: ReleaseVersion
    sdk_version: str
    out_dir: Path
    epoch: int
    say: Progress


def _finish(
    job: _Job,
    archs: tuple[str, ...],
    root: Path,
    ext: ResolvedExtension | None,
    *,
    start: float,
) -> BuiltLayer:
    """Add our files and the extension to an installed tree, zip it, write its manifest."""
    cfg, version, sdk_version, say = job.cfg, job.version, job.sdk_version, job.say
    out_dir, epoch = job.out_dir, job.epoch
    # Everything since ``start`` was getting the SDK tree: installing it (or reusing a
    # shared, architecture-neutral install) and checking it.
    assembling = time.monotonic()
    label = ", ".join(archs) if cfg.universal else archs[0]
    layer_name = cfg.layer_name(version, archs[0])
    for copy in cfg.files:
        _place(root, LayerFile(copy.dest, copy.source, None, copy.mode))
    if ext is not None:
        for f in ext.files:
            _place(root, f)
    packages = sdk.bundled_packages(root)
    rewritten: list[str] = []
    if cfg.single_sdk_copy and (root / "nodejs").is_dir():
        line, changed = nodeshim.apply(root)
        say(f"{label}: {line}")
        rewritten += [nodeshim.SHIM] if changed else []
    if cfg.bundle and (root / "nodejs").is_dir():
        lines, written = nodebundle.apply(root)
        for line in lines:
            say(f"{label}: {line}")
        rewritten += [f for f in written if f not in rewritten]
    compiled: tuple[BytecodeInfo, ...] = ()
    if cfg.bytecode and (root / "python").is_dir():
        # Last, after our own files (the wrapper): every .py in the zip has its bytecode.
        compiled = bytecode.compile_tree(
            root, cfg.compatible_runtimes, say=say, scope=cfg.bytecode, handler=PYTHON_WRAPPER
        )

    zipping = time.monotonic()
    say(f"{label}: zipping")
    stem = artifact_stem(cfg, version, None if cfg.universal else archs[0])
    zip_path = out_dir / f"{stem}.zip"
    result = write_zip(root, zip_path, source_date_epoch=epoch)

    # The zipper already summed the sizes while reading every file; no second walk.
    if result.unzipped_size > aws_facts.MAX_UNZIPPED_BYTES:
        zip_path.unlink()
        raise SizeLimitError(
            f"{layer_name} ({label}) is {result.unzipped_size:,} bytes unzipped; Lambda allows "
            f"{aws_facts.MAX_UNZIPPED_BYTES:,} for a function and all its layers"
        )
    say(f"{label}: {result.file_count:,} files, {result.unzipped_size / 1e6:.1f} MB unzipped, "
        f"{result.zip_size / 1e6:.1f} MB zipped")  # fmt: skip

    bom = layer_sbom(
        root=root,
        family=cfg.family,
        layer_name=layer_name,
        version=version.text,
        zip_sha256=result.sha256,
        packages=packages,
        extensions=ext.infos if ext else (),
        own_files=[c.dest for c in cfg.files]
        + [f.path for f in (ext.files if ext else ())]
        + rewritten,
        epoch=epoch,
        pip_report=read_pip_report(sdk.pip_report_path(root)),
    )
    manifest = BuildManifest(
        layer_name=layer_name,
        canonical=cfg.canonical,
        version=version.text,
        architectures=archs,
        layout=cfg.layout,
        compatible_runtimes=cfg.compatible_runtimes,
        description=cfg.description_for(version, archs),
        license=cfg.license,
        zip_file=zip_path.name,
        sha256=result.sha256,
        code_sha256=result.code_sha256,
        zip_size=result.zip_size,
        unzipped_size=result.unzipped_size,
        file_count=result.file_count,
        sdk_name=cfg.sdk.package,
        sdk_version=sdk_version,
        extensions=ext.infos if ext else (),
        source_date_epoch=epoch,
        packages=packages,
        needs_s3_upload=result.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES,
        bytecode=compiled,
        sbom=bom,
        provenance=provenance_from_env(os.environ),
    )
    mpath = zip_path.with_name(zip_path.name + ".json")
    write_replacing(mpath, manifest.to_json())
    log.info("built %s (%s bytes)", zip_path, result.zip_size)
    done = time.monotonic()
    phases = {
        "install": assembling - start,
        "assemble": zipping - assembling,
        "zip": done - zipping,
    }
    return BuiltLayer(manifest, mpath, zip_path, done - start, phases)


def build_layer(
    cfg: LayerConfig,
    version: ReleaseVersion,
    arch: str,
    out_dir: Path,
    *,
    extension: ResolvedBinary | None = None,
    epoch: int | None = None,
    progress: Progress | None = None,
) -> BuiltLayer:
    """Build one layer serving ``arch`` (universal config: the universal layer for ``arch``
    alone); ``extension`` is that architecture's binary from :func:`resolve_binary`."""
    plan = ExtensionPlan((arch,), {arch: extension} if extension else {})
    (layer,) = build_release(cfg, version, plan, out_dir, epoch=epoch, progress=progress)
    return layer
