"""The cold-start benchmark's comparison layout: the same config, SDK and extension as ours,
with every optimisation off, so the two zips differ by the optimisation alone."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from layer_builder.build.bytecode import find_interpreter
from layer_builder.config import load_config

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parent.parent / "bench" / "smoke_bench.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["smoke_bench"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(find_interpreter("3.12") is None, reason="needs a Python 3.12 interpreter")
def test_upstream_style_is_ours_without_the_bytecode(tmp_path: Path) -> None:
    project = tmp_path / "tiny-sdk"
    (project / "tiny_sdk").mkdir(parents=True)
    (project / "tiny_sdk" / "__init__.py").write_text("VERSION = '0.3.0'\n")
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tiny-sdk"
        version = "0.3.0"
        """))  # fmt: skip
    (tmp_path / "wrapper.py").write_text("import tiny_sdk\n")
    config = tmp_path / "tiny.yml"
    config.write_text(textwrap.dedent("""\
        name: "TinySDK"
        description: "Tiny SDK {{ version }}"
        license: MIT
        canonical: "aws-layer:tiny"
        runtime: python
        compatible_runtimes: [python3.12]
        architectures: [x86_64]
        sdk: {package: tiny-sdk, source: path, path: tiny-sdk}
        files: [{from: wrapper.py, to: python/tiny_wrapper.py}]
        registry: {runtime_dir: tiny}
        """))  # fmt: skip
    bench = load_bench()
    zips = bench.build_pair(load_config(config), "0.3.0", tmp_path / "out")
    with zipfile.ZipFile(zips[bench.OURS]) as ours, zipfile.ZipFile(zips[bench.UPSTREAM]) as up:
        mine = {i.filename: ours.read(i) for i in ours.infolist()}
        theirs = {i.filename: up.read(i) for i in up.infolist()}
    extra = sorted(set(mine) - set(theirs))
    assert [n for n in extra if not n.endswith("__pycache__/")] == [
        "python/__pycache__/tiny_wrapper.cpython-312.pyc",
        "python/tiny_sdk/__pycache__/__init__.cpython-312.pyc",
    ]
    assert all(n.endswith((".pyc", "__pycache__/")) for n in extra)
    assert set(theirs) <= set(mine)
    assert all(mine[n] == theirs[n] for n in theirs)  # the same inputs, byte for byte
    assert not any(n.endswith(".pyc") for n in theirs)
