"""`build` reports each phase's time (install, assemble, zip, verify) in --json and the summary.

A fake clock replaces ``time`` in the two modules that measure, and each faked phase moves
it by a known amount, so the test checks which phase each second is charged to without
reading a real clock.
"""

from __future__ import annotations

import json
import textwrap
import types
import uuid
from pathlib import Path
from typing import Any

import pytest

from layer_builder.build import assemble, sdk
from layer_builder.cli import build as cli_build
from layer_builder.cli import main
from layer_builder.config import LayerConfig
from tests.helpers.clock import Clock
from tests.helpers.elf_fixtures import write_elf
from tests.helpers.paths import REPO

PHASES = ["install", "assemble", "zip", "verify"]


def write_config(tmp_path: Path, layout: str) -> Path:
    path = tmp_path / "phases.yml"
    path.write_text(
        textwrap.dedent(f"""\
            name: "Phases{uuid.uuid4().hex[:8]}{{{{ arch_suffix }}}}"
            description: "Phases test {{{{ version }}}}"
            license: MIT
            layout: {layout}
            canonical: "aws-layer:python"
            runtime: python
            compatible_runtimes: [python3.12]
            architectures: [x86_64, arm64]
            sdk:
              package: tiny
            extension: {REPO / "extensions" / "relay.yml"}
            registry:
              runtime_dir: python
            """),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1000.0)
    for module in (assemble, cli_build):
        monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=fake.monotonic))

    def install(cfg: LayerConfig, sdk_version: str, arch: str, root: Path) -> None:
        (root / "python" / "tiny").mkdir(parents=True, exist_ok=True)
        (root / "python" / "tiny" / "__init__.py").write_text("VERSION = 1\n")
        fake.now += 7.0

    real_zip = assemble.write_zip  # type: ignore[attr-defined]
    real_verify = cli_build.verify_zip  # type: ignore[attr-defined]

    def write_zip(*args: object, **kwargs: object) -> object:
        fake.now += 3.0
        return real_zip(*args, **kwargs)  # type: ignore[arg-type]

    def verify_zip(*args: object, **kwargs: object) -> object:
        fake.now += 2.0
        return real_verify(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sdk, "install_sdk", install)
    monkeypatch.setattr(assemble, "write_zip", write_zip)
    monkeypatch.setattr(cli_build, "verify_zip", verify_zip)
    return fake


def run_build(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    bins = tmp_path / "bin"
    bins.mkdir()
    args = []
    for arch in ("x86_64", "arm64"):
        binary = write_elf(bins / f"relay-{arch}", arch, payload=arch.encode() * 10)
        args += ["--extension-file", f"{arch}={binary}"]
    config = write_config(tmp_path, layout)
    out = tmp_path / "out"
    code = main(["build", str(config), "--version", "1.2.3", "--out", str(out), "--json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    layers: list[dict[str, Any]] = json.loads(captured.out)["layers"]
    return layers


def test_universal_build_reports_every_phase_in_json(
    tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    (layer,) = run_build(tmp_path, "universal", capsys)
    assert sorted(layer["phases"]) == sorted(PHASES)
    assert layer["phases"] == {"install": 7.0, "assemble": 0.0, "zip": 3.0, "verify": 2.0}


def test_per_arch_build_reports_phases_per_layer_with_the_shared_install_once(
    tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = run_build(tmp_path, "per-arch", capsys)
    assert sorted(first["phases"]) == sorted(second["phases"]) == sorted(PHASES)
    # The pure-Python install is done once and shared: the second layer's install phase
    # is the copy of the shared tree (no fake install time charged to it).
    assert first["phases"]["install"] == 7.0
    assert second["phases"]["install"] == 0.0
    assert first["phases"]["zip"] == second["phases"]["zip"] == 3.0
    assert first["phases"]["verify"] == second["phases"]["verify"] == 2.0


def test_the_summary_shows_the_phases(
    tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    bins = tmp_path / "bin"
    bins.mkdir()
    binary = write_elf(bins / "relay-x86_64", "x86_64", payload=b"x" * 10)
    config = write_config(tmp_path, "universal")
    code = main(["build", str(config), "--version", "1.2.3", "--out", str(tmp_path / "o"),
                 "--arch", "x86_64", "--extension-file", f"x86_64={binary}"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = captured.out + captured.err
    # One line per layer under the table: the total, then each phase in order.
    assert ": 12.0 s (install 7.0, assemble 0.0, zip 3.0, verify 2.0)\n" in text
