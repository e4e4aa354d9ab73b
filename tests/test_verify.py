"""`layer-builder verify` on good and bad layer zips: exit 0, or exit 2 with the reason."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from layer_builder.build.zipper import write_zip
from tests.helpers.elf_fixtures import make_elf
from tests.helpers.verify import WRAPPER, layer_tree, verify


def test_good_layer_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    code, out, err = verify(capsys, str(z), "--arch", "x86_64", "--json")
    assert code == 0, err
    (report,) = json.loads(out)["zips"]
    assert report["family"] == "python" and report["elf_files"] == ["relay/relay"]
    assert report["room_left"] == 262_144_000 - report["unzipped_size"]
    assert not report["needs_s3_upload"]


def node_layer_tree(root: Path) -> Path:
    """A Node layer: the SDK's package.json exporting the preload (cjs and esm), its two files,
    and the extension of :func:`layer_tree`."""
    shutil.rmtree(layer_tree(root) / "python")
    sdk = root / "nodejs/node_modules/@sentry/aws-serverless"
    exports = {
        "./awslambda-auto": {
            "import": {"types": "./build/types/auto.d.ts", "default": "./build/esm/auto.js"},
            "require": {"default": "./build/cjs/auto.js"},
        }
    }
    (sdk / "build/esm").mkdir(parents=True)
    (sdk / "build/cjs").mkdir()
    (sdk / "package.json").write_text(
        json.dumps({"name": "@sentry/aws-serverless", "exports": exports})
    )
    (sdk / "build/esm/auto.js").write_text("export {};\n")
    (sdk / "build/cjs/auto.js").write_text("module.exports = {};\n")
    return root


def test_a_node_layer_without_its_preload_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = node_layer_tree(tmp_path / "t")
    z = write_zip(tree, tmp_path / "good.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    assert code == 0, err
    (tree / "nodejs/node_modules/@sentry/aws-serverless/build/esm/auto.js").unlink()
    z = write_zip(tree, tmp_path / "bad.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    assert code == 2
    assert "the SDK's preload @sentry/aws-serverless/awslambda-auto is missing " in err
    assert "./build/esm/auto.js (named by" in err and "./build/cjs/auto.js" not in err


def test_wrong_architecture_binary_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = write_zip(layer_tree(tmp_path / "t", arch="x86_64"), tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "arm64")
    assert code == 2
    assert err == (
        f"error: {z}:relay/relay: is an x86_64 binary; an x86_64 binary in an arm64 layer "
        "would fail with 'exec format error' (need aarch64)\n"
    )


def test_wrong_architecture_shared_library_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = layer_tree(tmp_path / "t", arch="arm64")
    (tree / "python/_native.so").write_bytes(make_elf("x86_64", kind="shared"))
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "arm64")
    assert code == 2
    assert err == (
        f"error: {z}:python/_native.so: is a library built for x86_64; "
        "an arm64 layer needs aarch64\n"
    )


def test_missing_wrapper_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(layer_tree(tmp_path / "t", wrapper=False), tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert err == f"error: {z}: the handler wrapper {WRAPPER} is missing\n"


def test_non_executable_extension_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = layer_tree(tmp_path / "t")
    (tree / "extensions/sentry-lambda-extension").chmod(0o644)
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert "extensions/sentry-lambda-extension is not executable (it needs mode 0755)" in err


def test_wrong_root_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib/x.py").write_text("x = 1\n")
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert (
        err
        == f"error: {z}: neither python/ nor nodejs/ at the root; Lambda would not find the SDK\n"
    )


def test_non_deterministic_and_traversal_zips_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A zip as a careless script makes it: local timestamps, extra fields, a path escaping /opt.
    z = tmp_path / "careless.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("python/a.py", date_time=(2024, 5, 1, 12, 0, 0))
        zf.writestr(info, "a = 1\n")
        info = zipfile.ZipInfo("../etc/evil", date_time=(2024, 5, 1, 12, 0, 2))
        zf.writestr(info, "x")
    code, _, err = verify(capsys, str(z))
    assert code == 2
    # Every problem, one line each, the one that matters most to Lambda first.
    assert err.splitlines() == [
        f"error: {z}: unsafe member names: ../etc/evil",
        f"error: {z}: python/a.py has mode 0o600; expected 0644 or 0755",
        f"error: {z}: ../etc/evil has mode 0o600; expected 0644 or 0755",
        f"error: {z}: members have different timestamps",
        f"error: {z}: members are not sorted by name",
    ]


def test_corrupt_and_missing_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    code, _, err = verify(capsys, str(bad))
    assert code == 2 and err.startswith(f"error: {bad}: not a valid zip")
    code, _, err = verify(capsys, str(tmp_path / "nope.zip"))
    assert code == 2 and err == f"error: {tmp_path / 'nope.zip'}: no such file\n"


def test_zip_changed_after_build_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    manifest = {"sha256": "0" * 64, "architecture": "x86_64"}
    # A minimal manifest is enough to show the mismatch; verify reads only what it needs.
    full = {
        "layer_name": "L",
        "canonical": "aws-layer:python",
        "version": "1.0.0",
        "architecture": "x86_64",
        "compatible_runtimes": ["python3.12"],
        "description": "",
        "license": "MIT",
        "zip_file": z.name,
        "code_sha256": "",
        "zip_size": 0,
        "unzipped_size": 0,
        "file_count": 0,
        "sdk_name": "s",
        "sdk_version": "1",
        "extension": None,
        "source_date_epoch": 315532800,
        **manifest,
    }
    z.with_name(z.name + ".json").write_text(json.dumps(full))
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert "differs from its build manifest" in err and "the zip changed after it was built" in err
