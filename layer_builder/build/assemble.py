"""Assemble one layer tree (SDK + our files + extension), zip it, write its build manifest.

One call builds one architecture. The tree is staged in a fresh temporary directory so
nothing from the build machine (paths, umask, leftovers of an earlier build) reaches the zip.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build import sdk
from layer_builder.build.extension import (
    LayerFile,
    ResolvedExtension,
    load_manifest,
    resolve_extension,
)
from layer_builder.build.zipper import resolve_source_date_epoch, write_zip
from layer_builder.config import LayerConfig
from layer_builder.errors import ArgumentError, SizeLimitError
from layer_builder.model import BuildManifest, ReleaseVersion

log = logging.getLogger(__name__)


Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltLayer:
    manifest: BuildManifest
    manifest_path: Path
    zip_path: Path
    seconds: float

    @property
    def room_left(self) -> int:
        """Bytes left for the function's own code under Lambda's unzipped limit."""
        return aws_facts.MAX_UNZIPPED_BYTES - self.manifest.unzipped_size


def artifact_stem(cfg: LayerConfig, version: ReleaseVersion, arch: str) -> str:
    """File name (without .zip) of one built layer: ``<config>-<version>-<arch>``."""
    return f"{cfg.path.stem}-{version.text}-{arch}"


def manifest_path_for(dist: Path, cfg: LayerConfig, version: ReleaseVersion, arch: str) -> Path:
    return dist / f"{artifact_stem(cfg, version, arch)}.zip.json"


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


def resolve_layer_extension(
    cfg: LayerConfig,
    arch: str,
    *,
    extension_file: Path | None = None,
    extension_manifest: Path | None = None,
) -> ResolvedExtension | None:
    """Fetch (or take) and check one architecture's extension; None if the layer has none.

    ``extension_manifest`` overrides the config's manifest (the sandbox's local stand-in);
    ``extension_file`` is a local binary given with ``--extension-file``.
    """
    manifest_file = extension_manifest or cfg.extension
    if manifest_file is None and extension_file is None:
        return None
    if manifest_file is None:
        raise ArgumentError(f"--extension-file: {cfg.path} configures no extension manifest")
    return resolve_extension(load_manifest(manifest_file), arch, override=extension_file)


def build_layer(
    cfg: LayerConfig,
    version: ReleaseVersion,
    arch: str,
    out_dir: Path,
    *,
    extension: ResolvedExtension | None = None,
    epoch: int | None = None,
    progress: Progress | None = None,
) -> BuiltLayer:
    """Build the layer zip for one architecture into ``out_dir`` and return what was built.

    ``extension`` comes from :func:`resolve_layer_extension`, called for every architecture
    before any build starts, so a bad pin or binary costs seconds and writes nothing.
    """
    say = progress or (lambda _msg: None)
    start = time.monotonic()
    epoch = resolve_source_date_epoch(epoch)
    layer_name = cfg.layer_name(version, arch)
    sdk_version = cfg.sdk_version(version)
    out_dir.mkdir(parents=True, exist_ok=True)

    ext = extension

    with tempfile.TemporaryDirectory(prefix="layer-builder-") as tmp:
        root = Path(tmp) / "layer"
        root.mkdir()
        say(f"{arch}: installing {cfg.sdk.package} {sdk_version}")
        sdk.install_sdk(cfg, sdk_version, arch, root)
        for copy in cfg.files:
            _place(root, LayerFile(copy.dest, copy.source, None, copy.mode))
        if ext is not None:
            for f in ext.files:
                _place(root, f)
        packages = sdk.bundled_packages(root)

        say(f"{arch}: zipping")
        zip_path = out_dir / f"{artifact_stem(cfg, version, arch)}.zip"
        result = write_zip(root, zip_path, source_date_epoch=epoch)

    # The zipper already summed the sizes while reading every file; no second walk.
    if result.unzipped_size > aws_facts.MAX_UNZIPPED_BYTES:
        zip_path.unlink()
        raise SizeLimitError(
            f"{layer_name} ({arch}) is {result.unzipped_size:,} bytes unzipped; Lambda allows "
            f"{aws_facts.MAX_UNZIPPED_BYTES:,} for a function and all its layers"
        )
    say(f"{arch}: {result.file_count:,} files, {result.unzipped_size / 1e6:.1f} MB unzipped, "
        f"{result.zip_size / 1e6:.1f} MB zipped")  # fmt: skip

    manifest = BuildManifest(
        layer_name=layer_name,
        canonical=cfg.canonical,
        version=version.text,
        architecture=arch,
        compatible_runtimes=cfg.compatible_runtimes,
        description=cfg.description.render(version, arch),
        license=cfg.license,
        zip_file=zip_path.name,
        sha256=result.sha256,
        code_sha256=result.code_sha256,
        zip_size=result.zip_size,
        unzipped_size=result.unzipped_size,
        file_count=result.file_count,
        sdk_name=cfg.sdk.package,
        sdk_version=sdk_version,
        extension=ext.info if ext else None,
        source_date_epoch=epoch,
        packages=packages,
        needs_s3_upload=result.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES,
    )
    mpath = zip_path.with_name(zip_path.name + ".json")
    tmp_manifest = mpath.with_name(mpath.name + ".tmp")
    tmp_manifest.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp_manifest, mpath)
    log.info("built %s (%s bytes)", zip_path, result.zip_size)
    return BuiltLayer(manifest, mpath, zip_path, time.monotonic() - start)
