"""The stand-in never reaches AWS by accident, whichever way it entered the zip."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from layer_builder.errors import ArtifactError
from layer_builder.model import BuildManifest, ExtensionInfo
from layer_builder.publish.plan import is_standin
from layer_builder.publish.release import refuse_standin
from layer_builder.sandbox.standin import EXTENSIONS_ROOT, standin_digests


def _manifest(*extensions: ExtensionInfo) -> BuildManifest:
    return BuildManifest(
        layer_name="L", canonical="aws-layer:python", version="1.0.0",
        architectures=("x86_64", "arm64"), layout="universal", compatible_runtimes=("python3.12",),
        description="d", license="MIT", zip_file="l.zip", sha256="a" * 64, code_sha256="x",
        zip_size=1, unzipped_size=1, file_count=1, sdk_name="sentry-sdk", sdk_version="1.0.0",
        extensions=extensions, source_date_epoch=315532800,
    )  # fmt: skip


def _file_ext(binary: Path, arch: str) -> ExtensionInfo:
    # What `build --extension-file ARCH=PATH` records: the path and "unknown", no label.
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    return ExtensionInfo("sentry-lambda-extension", "unknown", digest, str(binary), arch, "x")


def test_the_pinned_digests_are_the_shipped_binaries() -> None:
    shipped = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (EXTENSIONS_ROOT / "standin").glob("sentry-standin-*")
    }
    assert len(shipped) == 2 and standin_digests() == shipped


def test_a_standin_given_as_extension_file_is_recognised_by_its_digest(tmp_path: Path) -> None:
    copy = tmp_path / "my-relay"  # renamed: neither its name nor its label says stand-in
    copy.write_bytes((EXTENSIONS_ROOT / "standin" / "sentry-standin-aarch64").read_bytes())
    real = tmp_path / "relay"
    real.write_bytes(b"\x7fELF not the stand-in")
    mixed = _manifest(_file_ext(real, "x86_64"), _file_ext(copy, "arm64"))
    assert is_standin(mixed)
    assert not is_standin(_manifest(_file_ext(real, "x86_64")))

    with pytest.raises(
        ArtifactError,
        match=rf"^m\.json: the zip carries the sandbox stand-in extension \(from {copy}\), not",
    ):
        refuse_standin([(Path("m.json"), mixed)], allow=False)
    refuse_standin([(Path("m.json"), mixed)], allow=True)


def test_no_source_tree_means_no_digests(tmp_path: Path) -> None:
    assert standin_digests(tmp_path / "missing.yml") == frozenset()
