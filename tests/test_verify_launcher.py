"""`verify` checks what the launcher would exec: the machine-to-binary mapping against each
binary's ELF machine, and that every target exists and is executable, with or without the
build manifest beside the zip.

The layer is built through the CLI (pip replaced by a stand-in, real tiny ELF binaries, the
real launcher template), then broken one way at a time.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from elf_fixtures import write_elf
from test_universal import FakeInstall, build, ext_args, write_config

from layer_builder.build import sdk
from layer_builder.build.launchmap import MachineArm, read_launcher
from layer_builder.cli import main

LAUNCHER = "extensions/sentry-lambda-extension"
X86, ARM = "relay/relay-x86_64", "relay/relay-aarch64"


@pytest.fixture
def built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A good universal layer zip (its build manifest beside it)."""
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
    return Path(data["layers"][0]["zip"])


def rewrite(zip_path: Path, changes: dict[str, tuple[int, bytes] | None]) -> None:
    """Change or add members (name -> (mode, content)) or drop them (None), in name order."""
    with zipfile.ZipFile(zip_path) as zf:
        members = {i.filename: (i, zf.read(i)) for i in zf.infolist()}
    template = next(iter(members.values()))[0]
    for name, change in changes.items():
        if change is None:
            del members[name]
            continue
        info = members[name][0] if name in members else zipfile.ZipInfo(name, template.date_time)
        info.external_attr = change[0] << 16
        info.compress_type = template.compress_type
        members[name] = (info, change[1])
    with zipfile.ZipFile(zip_path, "w") as out:
        for name in sorted(members):
            info, data = members[name]
            out.writestr(info, data, compress_type=info.compress_type)


def member(zip_path: Path, name: str) -> bytes:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.read(name)


def swapped_mapping(launcher: bytes) -> bytes:
    return (
        launcher.replace(b"binary=/opt/" + X86.encode(), b"binary=@@")
        .replace(b"binary=/opt/" + ARM.encode(), b"binary=/opt/" + X86.encode())
        .replace(b"binary=@@", b"binary=/opt/" + ARM.encode())
    )


def errors(capsys: pytest.CaptureFixture[str], zip_path: Path) -> list[str]:
    assert main(["verify", str(zip_path)]) == 2
    return capsys.readouterr().err.splitlines()


def test_the_real_launcher_is_read_as_built(built: Path) -> None:
    launcher = read_launcher(member(built, LAUNCHER).decode())
    assert launcher.arms == (MachineArm("x86_64", X86), MachineArm("aarch64", ARM))
    assert launcher.targets == (ARM, X86)


@pytest.mark.parametrize("manifest", [True, False], ids=["with-manifest", "without-manifest"])
def test_a_swapped_mapping_is_refused(
    built: Path, capsys: pytest.CaptureFixture[str], manifest: bool
) -> None:
    launcher = member(built, LAUNCHER)
    rewrite(built, {LAUNCHER: (0o100755, swapped_mapping(launcher))})
    if not manifest:
        built.with_name(built.name + ".json").unlink()
    found = errors(capsys, built)
    where = f"error: {built}:{LAUNCHER}: "
    assert f"{where}runs /opt/{ARM} on x86_64, but that file is built for arm64; x86_64 " \
        "functions would fail with exec format error" in found  # fmt: skip
    assert f"{where}runs /opt/{X86} on aarch64, but that file is built for x86_64; arm64 " \
        "functions would fail with exec format error" in found  # fmt: skip


def test_swapped_binaries_are_refused_without_a_manifest(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x86, arm = member(built, X86), member(built, ARM)
    rewrite(built, {X86: (0o100755, arm), ARM: (0o100755, x86)})
    built.with_name(built.name + ".json").unlink()
    assert errors(capsys, built) == [
        f"error: {built}:{LAUNCHER}: runs /opt/{X86} on x86_64, but that file is built for "
        "arm64; x86_64 functions would fail with exec format error",
        f"error: {built}:{LAUNCHER}: runs /opt/{ARM} on aarch64, but that file is built for "
        "x86_64; arm64 functions would fail with exec format error",
    ]


def test_without_a_manifest_what_the_launcher_execs_must_be_there_and_executable(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built.with_name(built.name + ".json").unlink()
    assert main(["verify", str(built)]) == 0, capsys.readouterr().err
    original = built.read_bytes()

    rewrite(built, {ARM: None})
    assert errors(capsys, built) == [
        f"error: {built}:{LAUNCHER}: execs /opt/{ARM}, which is not in the layer"
    ]
    built.write_bytes(original)
    rewrite(built, {ARM: (0o100644, member(built, ARM))})
    assert errors(capsys, built) == [
        f"error: {built}:{LAUNCHER}: execs /opt/{ARM}, which is not executable (mode 0755)"
    ]
    built.write_bytes(original)
    rewrite(built, {LAUNCHER: (0o100644, member(built, LAUNCHER))})
    assert errors(capsys, built) == [
        f"error: {built}: {LAUNCHER} is not executable (mode 0755); Lambda would not start it"
    ]


def test_extra_arms_without_a_machine_binary_are_tolerated(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fallback for unknown machines (a script of the runtime's own language), an arm that
    # only echoes, and a multi-line arm for two machine names.
    launcher = member(built, LAUNCHER).replace(
        b"    *)\n",
        b"    armv8l|arm64)\n        binary=/opt/" + ARM.encode() + b"\n        ;;\n"
        b"    i686) echo 'no binary here' >&2 ;;\n"
        b'    riscv64) binary="/opt/fallback/extension.py" ;;\n'
        b"    *)\n",
    )
    assert launcher != member(built, LAUNCHER)
    fallback = b"#!/usr/bin/env python3\nprint('fallback')\n"
    rewrite(built, {LAUNCHER: (0o100755, launcher), "fallback/extension.py": (0o100755, fallback)})
    read = read_launcher(launcher.decode())
    assert MachineArm("arm64", ARM) in read.arms and MachineArm("armv8l", ARM) in read.arms
    assert "fallback/extension.py" in read.targets
    built.with_name(built.name + ".json").unlink()
    assert main(["verify", str(built)]) == 0, capsys.readouterr().err
