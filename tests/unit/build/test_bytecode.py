"""Precompiled bytecode in Python layers: which interpreter compiles each runtime, what a
runtime without one gets (said, not silently skipped), and byte-identical output whatever
the build machine's hash seed, umask or build directory."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from layer_builder.build import bytecode
from layer_builder.build.bytecode import Interpreter, compile_tree, find_interpreter
from layer_builder.config import load_config
from layer_builder.errors import ArgumentError, ConfigError
from tests.helpers.bytecode import compile_and_zip
from tests.helpers.configs import MINOR, RUNTIME, optimize_config

TAG = sys.implementation.cache_tag
HERE = (".".join(map(str, sys.version_info[:3])), "cpython", TAG)

# Set and frozenset constants are marshalled in hash order: with a random hash seed their
# bytes change from one compile to the next.
MODULE = textwrap.dedent("""\
    WORDS = frozenset({"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"})

    def known(word):
        return word in {"one", "two", "three", "four", "five", "six", "seven"}

    def fail():
        raise ValueError("from the layer")
    """)


def make_tree(root: Path) -> Path:
    pkg = root / "python" / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text(MODULE)
    (pkg / "sub" / "__init__.py").write_text("from pkg import WORDS\n")
    (pkg / "sub" / "newer.py").write_text("x = 1\n")
    (root / "python" / "pkg-1.0.dist-info").mkdir()
    (root / "python" / "pkg-1.0.dist-info" / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")
    return root


def here_only(minor: str) -> Interpreter | None:
    return Interpreter(Path(sys.executable), HERE[0], TAG) if minor == MINOR else None


# ------------------------------------------------------------------------- interpreters


def fake_probe(answers: dict[str, tuple[str, str, str] | None]):  # type: ignore[no-untyped-def]
    return lambda path: answers.get(str(path))


def test_explicit_interpreter_wins_and_a_wrong_one_is_an_error(tmp_path: Path) -> None:
    env = {"LAYER_BUILDER_PYTHON3_12": "/x/py312", "PATH": ""}
    got = find_interpreter("3.12", env=env, run_probe=fake_probe(
        {"/x/py312": ("3.12.8", "cpython", "cpython-312")}))  # fmt: skip
    assert got == Interpreter(Path("/x/py312"), "3.12.8", "cpython-312")
    with pytest.raises(ArgumentError, match=r"LAYER_BUILDER_PYTHON3_12=/x/py312: is cpython 3\.11"):
        find_interpreter("3.12", env=env, run_probe=fake_probe(
            {"/x/py312": ("3.11.7", "cpython", "cpython-311")}))  # fmt: skip
    with pytest.raises(ArgumentError, match="does not run, not CPython 3.12"):
        find_interpreter("3.12", env=env, run_probe=fake_probe({}))


def test_a_failing_path_entry_falls_back_to_pyenv_newest_patch(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python3.12"
    shim.write_text("#!/bin/sh\nexit 127\n")  # a pyenv shim for a version not selected
    shim.chmod(0o755)
    versions = tmp_path / "pyenv" / "versions"
    for v in ("3.12.1", "3.12.10", "3.12-dev", "3.13.0"):
        (versions / v / "bin").mkdir(parents=True)
    env = {"PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "pyenv")}
    newest = str(versions / "3.12.10" / "bin" / "python3.12")
    answers = {str(shim): None, newest: ("3.12.10", "cpython", "cpython-312")}
    got = find_interpreter("3.12", env=env, run_probe=fake_probe(answers))
    assert got == Interpreter(Path(newest), "3.12.10", "cpython-312")
    assert find_interpreter("3.14", env=env, run_probe=fake_probe(answers)) is None


def test_the_real_probe_finds_this_interpreter_by_name(tmp_path: Path) -> None:
    (tmp_path / f"python{MINOR}").symlink_to(sys.executable)
    env = {"PATH": str(tmp_path), "PYENV_ROOT": str(tmp_path / "none")}
    got = find_interpreter(MINOR, env=env)
    assert got is not None and got.cache_tag == TAG and got.version == HERE[0]


# ------------------------------------------------------------------------- compiling


def test_a_runtime_without_interpreter_is_reported_with_the_fix(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "layer")
    said: list[str] = []
    infos = compile_tree(root, (RUNTIME, "python3.99"), say=said.append, find=here_only)
    here, missing = infos
    assert (here.runtime, here.compiled, here.cache_tag, here.files) == (RUNTIME, True, TAG, 3)
    assert here.invalidation_mode == "checked-hash" and here.python == HERE[0]
    assert (missing.runtime, missing.compiled, missing.files) == ("python3.99", False, 0)
    assert "LAYER_BUILDER_PYTHON3_99=/path/to/python3.99" in missing.reason
    assert any(
        line.startswith("python3.99: no bytecode: no Python 3.99 interpreter") for line in said
    )
    assert any(line.startswith(f"{RUNTIME}: bytecode for 3 of 3 modules") for line in said)
    assert not list(root.rglob("*.cpython-399.pyc"))


def test_bytecode_names_lambda_paths_and_loads(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "layer")
    compile_tree(root, (RUNTIME,), find=here_only)
    pyc = root / "python" / "pkg" / "__pycache__" / f"__init__.{TAG}.pyc"
    data = pyc.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked
    code = marshal.loads(data[16:])
    # Tracebacks name the file where Lambda mounts it, not the build directory.
    assert code.co_filename == "/opt/python/pkg/__init__.py"
    assert str(tmp_path).encode() not in data
    # The source is in the zip beside it: the importer uses the bytecode (no compile).
    out = subprocess.run(
        [sys.executable, "-S", "-c", "import pkg; print(pkg.__cached__); print(pkg.known('two'))"],
        env={"PYTHONPATH": str(root / "python"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.split() == [str(pyc), "True"]


def test_a_module_this_version_cannot_compile_is_listed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "layer")
    (root / "python" / "pkg" / "sub" / "newer.py").write_text("def f(:\n")
    (info,) = compile_tree(root, (RUNTIME,), find=here_only)
    assert info.compiled and info.files == 2 and info.not_compiled == ("pkg/sub/newer.py",)


def _build(workdir: Path, umask: int, seed: str, minor: str = MINOR) -> bytes:
    """Compile and zip the tree in ``workdir``, from a process with that umask and seed."""
    make_tree(workdir)
    env = {"PYTHONHASHSEED": seed}
    if minor == MINOR:
        env[bytecode.env_var(MINOR)] = sys.executable
    return compile_and_zip(workdir, f"compile_tree(root, ({'python' + minor!r},))", umask, env)


def test_two_builds_with_other_seed_umask_and_directory_are_identical(tmp_path: Path) -> None:
    first = _build(tmp_path / "a", 0o022, "1")
    second = _build(tmp_path / "deeper" / "b-other", 0o077, "4242")
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = zf.namelist()
    assert f"python/pkg/__pycache__/__init__.{TAG}.pyc" in names
    assert f"python/pkg/sub/__pycache__/newer.{TAG}.pyc" in names


PY310 = find_interpreter("3.10")


@pytest.mark.skipif(PY310 is None, reason="needs a Python 3.10 interpreter (pyenv or PATH)")
def test_the_seed_is_what_makes_it_reproducible(tmp_path: Path) -> None:
    # The trap the fixed seed closes: before 3.11, marshal writes set constants in hash
    # order, so one compile under two seeds gives other bytes.
    assert PY310 is not None
    src = tmp_path / "m.py"
    src.write_text(MODULE)
    outs = []
    for seed in ("1", "2", "3"):
        code = (
            f"import py_compile; py_compile.compile({str(src)!r}, cfile={str(tmp_path / seed)!r})"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([str(PY310.path), "-S", "-c", code], env=env, check=True)
        outs.append((tmp_path / seed).read_bytes())
    assert len(set(outs)) > 1
    # Through the build's compile step, the same seeds give one result.
    zips = [_build(tmp_path / f"b{seed}", 0o022, seed, minor="3.10") for seed in ("1", "2")]
    assert zips[0] == zips[1]
    with zipfile.ZipFile(tmp_path / "b1.zip") as zf:
        assert "python/pkg/__pycache__/__init__.cpython-310.pyc" in zf.namelist()


# ------------------------------------------------------------------------- config


def test_each_optimisation_is_on_for_its_family_and_can_be_turned_off(tmp_path: Path) -> None:
    python = load_config(optimize_config(tmp_path, "python"))
    node = load_config(optimize_config(tmp_path, "node"))
    assert (python.bytecode, python.single_sdk_copy) == ("cold-path", False)
    assert (node.bytecode, node.single_sdk_copy) == ("", True)
    plain = load_config(optimize_config(tmp_path, "node", "optimize:\n  single_sdk_copy: false\n"))
    assert plain.single_sdk_copy is False
    off = "optimize:\n  bytecode: false\n"
    assert load_config(optimize_config(tmp_path, "python", off)).bytecode == ""
    with pytest.raises(
        ConfigError, match="optimize.bytecode: only a python layer carries bytecode"
    ):
        load_config(optimize_config(tmp_path, "node", "optimize:\n  bytecode: true\n"))
