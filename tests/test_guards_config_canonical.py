"""The canonical registry entry must not name the other runtime family: consumers pick the
entry by the function's runtime (``python3.*`` -> ``aws-layer:python``), so a Python layer
recorded as ``aws-layer:node`` would be attached to Node functions. A name of the layer's
own (``aws-layer:tiny``) stays allowed: consumers reach it with ``--canonical``. Only the
``<runtime>`` of ``aws-layer:<runtime>`` (after the first colon) is compared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from layer_builder.config import load_config
from layer_builder.errors import ConfigError
from tests.helpers.configs import VALID, write

PYTHON_ENTRY = 'canonical: "aws-layer:python"'
NODE = (
    VALID.replace("runtime: python", "runtime: node")
    .replace("[python3.12, python3.13]", "[nodejs20.x]")
    .replace(PYTHON_ENTRY, 'canonical: "aws-layer:node"')
)


def test_a_python_layer_under_the_node_entry_is_refused(tmp_path: Path) -> None:
    assert PYTHON_ENTRY in VALID
    path = write(tmp_path, VALID.replace(PYTHON_ENTRY, 'canonical: "aws-layer:node"'))
    expected = "canonical: 'aws-layer:node' names the node layer, but runtime is python"
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_a_node_layer_under_the_python_entry_is_refused(tmp_path: Path) -> None:
    assert 'canonical: "aws-layer:node"' in NODE
    path = write(tmp_path, NODE.replace('"aws-layer:node"', '"aws-layer:python"'))
    expected = "canonical: 'aws-layer:python' names the python layer, but runtime is node"
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("base", "canonical", "family"),
    [
        (VALID, "aws-layer:python", "python"),
        (NODE, "aws-layer:node", "node"),
        (VALID, "aws-layer:tiny", "python"),
        (NODE, "aws-layer:tiny", "node"),
        (VALID, "sentry:aws-layer:node", "python"),  # its <runtime> is "aws-layer:node"
    ],
)
def test_the_own_entry_or_a_custom_one_is_kept(
    tmp_path: Path, base: str, canonical: str, family: str
) -> None:
    text = re.sub(r"(?m)^canonical: .*$", f'canonical: "{canonical}"', base)
    cfg = load_config(write(tmp_path, text))
    assert (cfg.canonical, cfg.family) == (canonical, family)
