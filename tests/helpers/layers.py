"""Layer zips with their build manifests for the publish tests (``write_layer``), the fake
account moto answers for, and the factory types of conftest's fixtures."""

from __future__ import annotations

import base64
import hashlib
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from layer_builder.build.assemble import artifact_stem
from layer_builder.build.zipper import write_zip
from layer_builder.config import LayerConfig
from layer_builder.model import BuildManifest, ExtensionInfo, ReleaseVersion

FAKE_ACCOUNT = "123456789012"


ConfigFactory = Callable[..., LayerConfig]


LayerFactory = Callable[..., tuple[Path, BuildManifest]]


def write_layer(
    out: Path,
    cfg: LayerConfig,
    version: ReleaseVersion,
    arch: str | tuple[str, ...],
    extra: bytes = b"",
) -> tuple[Path, BuildManifest]:
    """A small valid layer zip and its manifest beside it (``<zip>.json``); ``arch`` is
    the per-arch layer's architecture, or the universal layer's architectures."""
    out.mkdir(parents=True, exist_ok=True)
    archs = (arch,) if isinstance(arch, str) else tuple(arch)
    arch = archs[0] if len(archs) == 1 else "-".join(archs)
    name = cfg.layer_name(version, archs[0])
    files = {
        "python/lbtest/__init__.py": f"ARCH = {arch!r}\nVERSION = {version.text!r}\n".encode(),
        "python/lbtest/data.bin": extra,
    }
    tree = out / f".tree-{arch}-{uuid.uuid4().hex[:6]}"
    for rel, content in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(content)
    # The real zipper and the real artifact name, so `layer-builder publish --dist` finds it.
    zip_path = out / f"{artifact_stem(cfg, version, None if cfg.universal else arch)}.zip"
    result = write_zip(tree, zip_path)
    shutil.rmtree(tree)
    data = zip_path.read_bytes()
    digest = hashlib.sha256(data)
    manifest = BuildManifest(
        layer_name=name,
        canonical=cfg.canonical,
        version=version.text,
        architectures=archs,
        layout=cfg.layout,
        compatible_runtimes=cfg.compatible_runtimes,
        description=cfg.description_for(version, archs),
        license=cfg.license,
        zip_file=zip_path.name,
        sha256=digest.hexdigest(),
        code_sha256=base64.b64encode(digest.digest()).decode(),
        zip_size=len(data),
        unzipped_size=sum(len(v) for v in files.values()),
        file_count=result.file_count,
        sdk_name="sentry-sdk",
        sdk_version=version.text,
        extensions=(),
        source_date_epoch=315532800,
    )
    manifest_path = zip_path.with_name(zip_path.name + ".json")
    manifest_path.write_text(manifest.to_json(), encoding="utf-8")
    return manifest_path, BuildManifest.load(manifest_path)


def universal_manifest(*extensions: ExtensionInfo) -> BuildManifest:
    """A universal layer's build manifest carrying ``extensions``; nothing on disk."""
    return BuildManifest(
        layer_name="L", canonical="aws-layer:python", version="1.0.0",
        architectures=("x86_64", "arm64"), layout="universal", compatible_runtimes=("python3.12",),
        description="d", license="MIT", zip_file="l.zip", sha256="a" * 64, code_sha256="x",
        zip_size=1, unzipped_size=1, file_count=1, sdk_name="sentry-sdk", sdk_version="1.0.0",
        extensions=extensions, source_date_epoch=315532800,
    )  # fmt: skip
