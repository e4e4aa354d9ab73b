"""`verify` of a universal layer whose build manifest and zip disagree, one change at a time:
every finding word for word, none left out, none said twice (mutation testing found these
unchecked; see docs/mutation-testing.md)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from layer_builder.build import sdk
from layer_builder.build.verify import VerifyError, verify_zip
from tests.helpers.elf_fixtures import make_elf, write_elf
from tests.helpers.universal import (
    LAUNCHER,
    FakeInstall,
    build,
    edit_manifest,
    ext_args,
    rewrite,
    write_config,
)

ARM = "relay/relay-aarch64"
X86 = "relay/relay-x86_64"


@pytest.fixture
def layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """A good universal layer: (zip, manifest)."""
    monkeypatch.setattr(sdk, "install_sdk", FakeInstall())
    (tmp_path / "bin").mkdir()
    binaries = {
        "x86_64": write_elf(tmp_path / "bin" / "relay-x86", "x86_64", payload=b"x86" * 20),
        "arm64": write_elf(tmp_path / "bin" / "relay-arm", "arm64", payload=b"arm" * 20),
    }
    code, data, err = build(
        capsys, write_config(tmp_path), tmp_path / "out", *ext_args(binaries, "x86_64", "arm64")
    )
    assert code == 0 and data is not None, err
    zip_path = Path(data["layers"][0]["zip"])
    return zip_path, zip_path.with_name(zip_path.name + ".json")


def _drop(zip_path: Path, manifest_path: Path, *names: str) -> None:
    """Remove members, then re-record the zip's digest so only the removal is a finding."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist() if i.filename not in names]
    with zipfile.ZipFile(zip_path, "w") as out:
        for info, data in members:
            out.writestr(info, data, compress_type=info.compress_type)
    rewrite(zip_path, manifest_path)


def _findings(zip_path: Path, **kwargs: str) -> list[str]:
    with pytest.raises(VerifyError, match=str(zip_path)) as exc:
        verify_zip(zip_path, **kwargs)
    return [line.removeprefix(f"{zip_path}") for line in str(exc.value).splitlines()]


def test_a_missing_launcher(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    _drop(zip_path, manifest_path, LAUNCHER)
    assert _findings(zip_path) == [
        f": {LAUNCHER} is missing",
        f": {LAUNCHER} never starts /opt/{X86}; the x86_64 extension would not run",
        f": {LAUNCHER} never starts /opt/{ARM}; the arm64 extension would not run",
        f": {LAUNCHER} must be a launcher script that picks the binary by machine (uname -m) "
        "in a universal layer",
    ]


def test_a_format_1_entry_does_not_stop_the_next_one(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    with zipfile.ZipFile(zip_path) as zf:
        arm = zf.read(ARM)
    rewrite(zip_path, manifest_path, **{ARM: (0o100644, arm)})
    x86, arm_entry = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "path": ""}, arm_entry])
    assert _findings(zip_path) == [f": {ARM} is not executable (it needs mode 0755)"]


def test_a_missing_binary_does_not_stop_the_next_one(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    with zipfile.ZipFile(zip_path) as zf:
        arm = zf.read(ARM)
    rewrite(zip_path, manifest_path, **{ARM: (0o100644, arm)})
    x86, arm_entry = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "path": "relay/gone"}, arm_entry])
    assert _findings(zip_path) == [
        ": the x86_64 extension relay/gone is missing",
        f": {ARM} is not executable (it needs mode 0755)",
    ]


def test_a_wrong_binary_is_reported_once(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    rewrite(zip_path, manifest_path, **{ARM: (0o100755, make_elf("arm64", kind="shared"))})
    found = _findings(zip_path)
    assert found[0] == (
        f":{ARM}: is a shared library (ET_DYN without a program interpreter or the PIE flag), "
        "not an executable; Lambda (arm64) cannot start it"
    )
    assert len(found) == 2 and found[1].startswith(f": {ARM} differs from the arm64 binary")


def test_one_binary_needs_no_picking_launcher(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    rewrite(
        zip_path, manifest_path, **{LAUNCHER: (0o100755, f"#!/bin/sh\nexec /opt/{X86}\n".encode())}
    )
    _drop(zip_path, manifest_path, ARM)
    x86, _ = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[x86], architectures=["x86_64"])
    assert verify_zip(zip_path).layout == "universal"


def test_a_changed_zip_names_both_digests(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    actual = json.loads(manifest_path.read_text())["sha256"]
    edit_manifest(manifest_path, sha256="ab" * 32)
    assert _findings(zip_path) == [
        f": sha256 {actual[:12]}... differs from its build manifest (abababababab...); "
        "the zip changed after it was built"
    ]


def test_an_arch_the_manifest_does_not_list(layer: tuple[Path, Path]) -> None:
    # Reachable from the library only (the CLI's --arch has two choices, both served here).
    zip_path, _ = layer
    assert _findings(zip_path, arch="mips") == [": built for x86_64, arm64, not mips"]


def test_the_stand_in_note(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    x86, arm = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "source": "the stand-in"}, arm])
    assert verify_zip(zip_path).notes == (
        "carries the sandbox STAND-IN extension (not Relay): publish refuses it outside --sandbox",
    )


def test_binaries_listed_for_no_claimed_architecture(layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = layer
    x86, _ = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "architecture": "i386", "path": ""}])
    assert _findings(zip_path)[0] == (
        ": the manifest claims x86_64, arm64 but lists no extension binary for x86_64, arm64"
    )
