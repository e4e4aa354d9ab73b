"""An emulated run of one architecture cannot pass on another machine's binary.

The layers here carry the sandbox's two real stand-in extension binaries
(``extensions/standin/``) and the launcher rendered from the real template, as a universal
build makes it; then either the files or the launcher's mapping are swapped. Without the
stubs, the arm64 run (qemu-user playing aarch64 on an x86_64 host) would exec the x86_64
binary natively and pass.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from layer_builder.aws.facts import MACHINE_NAME
from layer_builder.build.extension import load_manifest
from layer_builder.build.launcher import render_launcher
from layer_builder.model import UNIVERSAL
from layer_builder.smoke import environment
from layer_builder.smoke.lifecycle import Limits
from layer_builder.smoke.runner import SmokeOptions, host_architecture, smoke_zip
from tests.helpers.elf_fixtures import make_elf
from tests.helpers.paths import REPO as ROOT
from tests.helpers.smoke_layers import WRAPPER_VIA_EXTENSION, make_layer

STANDIN = ROOT / "extensions" / "standin"
HOST = host_architecture()
OTHER = "arm64" if HOST == "x86_64" else "x86_64"
FAST = Limits(init_s=5.0, timeout_s=8.0)
needs_qemu = pytest.mark.skipif(
    shutil.which(f"qemu-{MACHINE_NAME[OTHER]}") is None,
    reason=f"qemu-user for {OTHER} not installed",
)


@pytest.fixture(autouse=True)
def own_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's processes carry a marker of their own (other smoke runs may be going on)."""
    monkeypatch.setattr(environment, "MARKER_VAR", f"LAYER_BUILDER_SMOKE_TEST_{os.getpid()}")


def universal_standin_layer(
    path: Path, *, swap_files: bool = False, swap_map: bool = False
) -> Path:
    """A universal layer as the build makes it, optionally with the two binaries' contents
    (``swap_files``) or the launcher's machine-to-binary arms (``swap_map``) swapped."""
    manifest = load_manifest(ROOT / "extensions" / "standin.yml")
    launcher = render_launcher(manifest, ["x86_64", "arm64"], layout=UNIVERSAL).decode()
    if swap_map:
        launcher = (
            launcher.replace("binary=/opt/relay/relay-x86_64", "binary=@A@")
            .replace("binary=/opt/relay/relay-aarch64", "binary=/opt/relay/relay-x86_64")
            .replace("binary=@A@", "binary=/opt/relay/relay-aarch64")
        )
    z = make_layer(
        path, extensions={"sentry-lambda-extension": launcher}, wrapper=WRAPPER_VIA_EXTENSION
    )
    with zipfile.ZipFile(z, "a") as zf:
        for machine, source in (("x86_64", "x86_64"), ("aarch64", "aarch64")):
            if swap_files:
                source = "aarch64" if machine == "x86_64" else "x86_64"
            info = zipfile.ZipInfo(f"relay/relay-{machine}")
            info.external_attr = 0o100755 << 16
            zf.writestr(info, (STANDIN / f"sentry-standin-{source}").read_bytes())
    z.with_name(z.name + ".json").write_text(json.dumps({"architectures": ["x86_64", "arm64"]}))
    return z


@needs_qemu
@pytest.mark.parametrize("swap", ["files", "mapping"])
def test_the_other_architecture_fails_on_this_machines_binary(tmp_path: Path, swap: str) -> None:
    z = universal_standin_layer(
        tmp_path / "swapped.zip", swap_files=swap == "files", swap_map=swap == "mapping"
    )
    opts = SmokeOptions(baseline=False, limits=FAST, architectures=(OTHER,))
    (report,) = smoke_zip(z, opts)
    assert (report.architecture, report.status, report.phase) == (OTHER, "failed", "extension init")
    played, host = MACHINE_NAME[OTHER], MACHINE_NAME[HOST]
    assert "extension sentry-lambda-extension exited with code 126" in report.cause
    assert f"exec format error: an {host} binary cannot run on this {played} machine" in (
        report.cause
    )


@needs_qemu
def test_the_correct_layer_runs_each_machines_own_binary(tmp_path: Path) -> None:
    z = universal_standin_layer(tmp_path / "good.zip")
    reports = smoke_zip(z, SmokeOptions(baseline=False, limits=FAST))
    assert [(r.architecture, r.status) for r in reports] == [
        ("x86_64", "passed"),
        ("arm64", "passed"),
    ], [(r.phase, r.cause) for r in reports]
    by_arch = {r.architecture: r for r in reports}
    # Each run had the other machine's binary stubbed, and ran its own.
    for arch in (HOST, OTHER):
        assert "1 ELF file(s) for another machine fail with exec format error" in (
            by_arch[arch].mount
        )
        log = by_arch[arch].logs["extension-sentry-lambda-extension"]
        assert f"relay-{MACHINE_NAME[arch]}" in log


def test_stubs_replace_other_machines_files_and_are_put_back(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    (root / "bin").mkdir(parents=True)
    own, other = MACHINE_NAME[HOST], MACHINE_NAME[OTHER]
    (root / "bin" / own).write_bytes(make_elf(HOST))
    (root / "bin" / own).chmod(0o755)
    (root / "bin" / other).write_bytes(make_elf(OTHER))
    (root / "bin" / other).chmod(0o755)
    (root / "lib.so").write_bytes(make_elf(OTHER, kind="shared"))
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    played = environment._played_machine(None)
    assert played is not None
    stubbed = environment.stub_other_machines(root, *played)
    assert stubbed == [f"bin/{other}", "lib.so"]
    stub = (root / "bin" / other).read_text()
    assert stub.startswith("#!/bin/sh\n") and "exec format error" in stub
    assert (
        os.access(root / "bin" / other, os.X_OK) and (root / "lib.so").stat().st_mode & 0o111 == 0
    )
    assert (root / "bin" / own).read_bytes() == make_elf(HOST)  # this machine's: untouched

    # The next run starts from the files as unpacked.
    assert environment.restore_replaced(root) == 2
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
