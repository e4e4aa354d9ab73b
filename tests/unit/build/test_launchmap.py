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

from layer_builder.build.launchmap import MachineArm, read_launcher
from layer_builder.cli import main

LAUNCHER = "extensions/sentry-lambda-extension"
X86, ARM = "relay/relay-x86_64", "relay/relay-aarch64"


@pytest.fixture
def layer(universal_layer: tuple[Path, Path]) -> Path:
    """The good universal layer's zip (its build manifest beside it)."""
    return universal_layer[0]


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


def test_the_real_launcher_is_read_as_built(layer: Path) -> None:
    launcher = read_launcher(member(layer, LAUNCHER).decode())
    assert launcher.arms == (MachineArm("x86_64", X86), MachineArm("aarch64", ARM))
    assert launcher.targets == (ARM, X86)


@pytest.mark.parametrize("manifest", [True, False], ids=["with-manifest", "without-manifest"])
def test_a_swapped_mapping_is_refused(
    layer: Path, capsys: pytest.CaptureFixture[str], manifest: bool
) -> None:
    launcher = member(layer, LAUNCHER)
    rewrite(layer, {LAUNCHER: (0o100755, swapped_mapping(launcher))})
    if not manifest:
        layer.with_name(layer.name + ".json").unlink()
    found = errors(capsys, layer)
    where = f"error: {layer}:{LAUNCHER}: "
    assert f"{where}runs /opt/{ARM} on x86_64, but that file is built for arm64; x86_64 " \
        "functions would fail with exec format error" in found  # fmt: skip
    assert f"{where}runs /opt/{X86} on aarch64, but that file is built for x86_64; arm64 " \
        "functions would fail with exec format error" in found  # fmt: skip


def test_swapped_binaries_are_refused_without_a_manifest(
    layer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x86, arm = member(layer, X86), member(layer, ARM)
    rewrite(layer, {X86: (0o100755, arm), ARM: (0o100755, x86)})
    layer.with_name(layer.name + ".json").unlink()
    assert errors(capsys, layer) == [
        f"error: {layer}:{LAUNCHER}: runs /opt/{X86} on x86_64, but that file is built for "
        "arm64; x86_64 functions would fail with exec format error",
        f"error: {layer}:{LAUNCHER}: runs /opt/{ARM} on aarch64, but that file is built for "
        "x86_64; arm64 functions would fail with exec format error",
    ]


def test_without_a_manifest_what_the_launcher_execs_must_be_there_and_executable(
    layer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer.with_name(layer.name + ".json").unlink()
    assert main(["verify", str(layer)]) == 0, capsys.readouterr().err
    original = layer.read_bytes()

    rewrite(layer, {ARM: None})
    assert errors(capsys, layer) == [
        f"error: {layer}:{LAUNCHER}: execs /opt/{ARM}, which is not in the layer"
    ]
    layer.write_bytes(original)
    rewrite(layer, {ARM: (0o100644, member(layer, ARM))})
    assert errors(capsys, layer) == [
        f"error: {layer}:{LAUNCHER}: execs /opt/{ARM}, which is not executable (it needs mode 0755)"
    ]
    layer.write_bytes(original)
    rewrite(layer, {LAUNCHER: (0o100644, member(layer, LAUNCHER))})
    assert errors(capsys, layer) == [
        f"error: {layer}: {LAUNCHER} is not executable (it needs mode 0755); "
        "Lambda would not start it"
    ]


def test_a_plain_exec_target_is_checked_and_a_computed_one_is_not(
    layer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = b'#!/bin/sh\nexec /opt/relay/relay run --aws-runtime-api="$AWS_LAMBDA_RUNTIME_API"\n'
    assert read_launcher(plain.decode()).targets == ("relay/relay",)
    computed = b"#!/bin/sh\nexec /opt/relay/relay-$(uname -m) run\n"
    assert read_launcher(computed.decode()).targets == ()
    layer.with_name(layer.name + ".json").unlink()
    rewrite(layer, {LAUNCHER: (0o100755, plain)})
    assert errors(capsys, layer) == [
        f"error: {layer}:{LAUNCHER}: execs /opt/relay/relay, which is not in the layer"
    ]


def test_the_last_arm_may_end_at_esac() -> None:
    script = 'case "$(uname -m)" in\n  x86_64) binary=/opt/a ;;\n  aarch64) binary=/opt/b\nesac\n'
    assert read_launcher(script).arms == (MachineArm("x86_64", "a"), MachineArm("aarch64", "b"))


def test_extra_arms_without_a_machine_binary_are_tolerated(
    layer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fallback for unknown machines (a script of the runtime's own language), an arm that
    # only echoes, and a multi-line arm for two machine names.
    launcher = member(layer, LAUNCHER).replace(
        b"\nesac\n",
        b"\n    armv8l|arm64)\n        binary=/opt/" + ARM.encode() + b"\n        ;;\n"
        b"    i686) echo 'no binary here' >&2 ;;\n"
        b'    riscv64) binary="/opt/fallback/extension.py" ;;\n'
        b"esac\n",
        1,
    )
    assert launcher != member(layer, LAUNCHER)
    fallback = b"#!/usr/bin/env python3\nprint('fallback')\n"
    rewrite(layer, {LAUNCHER: (0o100755, launcher), "fallback/extension.py": (0o100755, fallback)})
    read = read_launcher(launcher.decode())
    assert MachineArm("arm64", ARM) in read.arms and MachineArm("armv8l", ARM) in read.arms
    assert read.arms[-1] == MachineArm("riscv64", "fallback/extension.py")  # after the echo arm
    assert "fallback/extension.py" in read.targets
    layer.with_name(layer.name + ".json").unlink()
    assert main(["verify", str(layer)]) == 0, capsys.readouterr().err
