"""Config validation at its edges: Lambda's 140-character layer-name limit and duplicate
runtimes (mutants the older tests let through; see docs/mutation-testing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_builder.config import load_config
from layer_builder.errors import ConfigError
from layer_builder.model import ReleaseVersion
from tests.helpers.configs import VALID, write

# One architecture, so the name renders without an arch suffix and its length is exact.
ONE_ARCH = VALID.replace("[x86_64, arm64]", "[x86_64]")


def test_a_140_character_layer_name_is_accepted(tmp_path: Path) -> None:
    name = "L" * 140
    cfg = load_config(write(tmp_path, ONE_ARCH.replace("TestLayer{{ arch_suffix }}", name)))
    assert cfg.layer_name(ReleaseVersion.parse("1.0.0"), "x86_64") == name


def test_a_141_character_layer_name_is_refused(tmp_path: Path) -> None:
    name = "L" * 141
    path = write(tmp_path, ONE_ARCH.replace("TestLayer{{ arch_suffix }}", name))
    with pytest.raises(ConfigError, match=r"is 141 characters; the limit is 140$") as exc:
        load_config(path)
    assert exc.value.key == "name"
    assert str(exc.value).startswith(f"{path}: name: layer name '{name}' ")


def test_a_runtime_listed_twice_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("[python3.12, python3.13]", "[python3.12, python3.13, python3.12]")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"compatible_runtimes: lists a runtime twice$") as exc:
        load_config(path)
    assert exc.value.key == "compatible_runtimes"
