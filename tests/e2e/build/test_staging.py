"""A build that fails part-way replaces nothing in --out (exit 2 writes nothing).

The SDK install is replaced by a stand-in here (pip is not what is under test): it installs
a tiny package with a native library for x86_64 (so a per-arch build must install again for
arm64) and fails for arm64, after the x86_64 zip has been built.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from layer_builder.build import sdk
from layer_builder.cli import main
from layer_builder.config import LayerConfig
from layer_builder.errors import InstallError
from tests.helpers.elf_fixtures import make_elf

CONFIG = """\
name: "Staged{{ arch_suffix }}"
description: "staging test {{ version }}"
license: MIT
canonical: "aws-layer:python"
runtime: python
compatible_runtimes: [python3.12]
architectures: [x86_64, arm64]
sdk:
  package: tiny
registry:
  runtime_dir: python
layout: per-arch
# The tree is what is under test here; bytecode would add files only where 3.12 is installed.
optimize:
  bytecode: false
"""


def fake_install(cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path) -> None:
    if arch == "arm64":
        raise InstallError(f"pip install of tiny=={sdk_version} for arm64 failed: no wheel")
    (layer_root / "python" / "tiny").mkdir(parents=True)
    (layer_root / "python" / "tiny" / "__init__.py").write_text("VERSION = 'new'\n")
    (layer_root / "python" / "tiny" / "_native.so").write_bytes(make_elf(arch, kind="shared"))


def test_failure_after_one_architecture_built_replaces_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "staged.yml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"staged-1.0.0-x86_64.zip": b"earlier zip", "staged-1.0.0-x86_64.zip.json": b"{}"}
    for name, data in earlier.items():
        (out / name).write_bytes(data)
    monkeypatch.setattr(sdk, "install_sdk", fake_install)

    code = main(["build", str(config), "--version", "1.0.0", "--out", str(out)])

    printed = capsys.readouterr()
    assert code == 2
    assert printed.err == "error: pip install of tiny==1.0.0 for arm64 failed: no wheel\n"
    assert "x86_64: 2 files" in printed.out  # the x86_64 layer really was built first...
    # ...yet --out holds exactly what it held before: no new zip, no staging leftovers.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier


def test_successful_build_moves_every_zip_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "staged.yml"
    config.write_text(CONFIG.replace("[x86_64, arm64]", "[x86_64]"))
    out = tmp_path / "out"
    monkeypatch.setattr(sdk, "install_sdk", fake_install)
    assert main(["build", str(config), "--version", "1.0.0", "--out", str(out)]) == 0, (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "staged-1.0.0-x86_64.zip",
        "staged-1.0.0-x86_64.zip.json",
    ]
    # What was moved into place is the finished build: the installed file, and a manifest
    # that describes exactly that zip.
    zip_path = out / "staged-1.0.0-x86_64.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == [
            "python/",
            "python/tiny/",
            "python/tiny/__init__.py",
            "python/tiny/_native.so",
        ]
        assert zf.read("python/tiny/__init__.py") == b"VERSION = 'new'\n"
        assert zf.read("python/tiny/_native.so") == make_elf("x86_64", kind="shared")
        assert zf.getinfo("python/tiny/__init__.py").external_attr >> 16 == 0o100644
    manifest = json.loads((out / "staged-1.0.0-x86_64.zip.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert (manifest["layer_name"], manifest["version"]) == ("Staged", "1.0.0")


def test_bad_source_date_epoch_is_refused_before_any_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "staged.yml"
    config.write_text(CONFIG)
    installs: list[str] = []
    monkeypatch.setattr(sdk, "install_sdk", lambda cfg, v, arch, root: installs.append(arch))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    code = main(["build", str(config), "--version", "1.0.0", "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: SOURCE_DATE_EPOCH='yesterday' is not a whole, non-negative number of seconds\n"
    )
    assert installs == [] and not (tmp_path / "out").exists()
