"""`optimize.bundle` in a layer config: on for node layers, off on request, refused elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_builder.cli import main
from layer_builder.config import load_config
from tests.helpers.configs import VALID, optimize_config, write


def test_bundle_is_on_for_node_layers_and_can_be_turned_off(tmp_path: Path) -> None:
    assert load_config(optimize_config(tmp_path, "node")).bundle is True
    assert load_config(optimize_config(tmp_path, "python")).bundle is False
    off = load_config(optimize_config(tmp_path, "node", "optimize:\n  bundle: false\n"))
    assert (off.bundle, off.single_sdk_copy) == (False, True)


def test_bundle_on_a_python_layer_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, VALID.replace("layout: per-arch", "layout: per-arch\noptimize: {bundle: true}")
    )
    code = main(["build", str(path), "--version", "1.2.3", "--out", str(tmp_path / "dist")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {path}: optimize.bundle: only a node layer has npm packages to bundle\n"
    )
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_optimize_false_turns_every_optimisation_off(tmp_path: Path, runtime: str) -> None:
    """`optimize: false` (or YAML's `off`) builds the plain tree; an empty `optimize:` keeps
    the defaults."""
    for text in ("optimize: false\n", "optimize: off\n"):
        cfg = load_config(optimize_config(tmp_path, runtime, text))
        assert (cfg.bytecode, cfg.single_sdk_copy, cfg.bundle) == ("", False, False)
    default = load_config(optimize_config(tmp_path, runtime, "optimize:\n"))
    assert (default.bytecode != "", default.bundle) == (runtime == "python", runtime == "node")
