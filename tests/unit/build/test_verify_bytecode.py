"""`verify` refuses bytecode that does not match the source beside it: an unchecked .pyc would
run old code, a checked one would be compiled on every cold start, an orphan is never read."""

from __future__ import annotations

import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from layer_builder.build import pyc
from layer_builder.build.verify import VerifyError, verify_zip
from layer_builder.build.zipper import write_zip

TAG = sys.implementation.cache_tag
MOD = "python/pkg/mod.py"
CACHED = f"python/pkg/__pycache__/mod.{TAG}.pyc"


def layer(tmp_path: Path, mode: str = "CHECKED_HASH") -> Path:
    """A minimal Python layer tree whose module has bytecode of this interpreter."""
    root = tmp_path / "layer"
    (root / "python" / "pkg").mkdir(parents=True)
    (root / "python" / "pkg" / "__init__.py").write_text("")
    (root / MOD).write_text("def answer():\n    return 41\n")
    for rel in ("python/pkg/__init__.py", MOD):
        py_compile.compile(str(root / rel), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode[mode])  # fmt: skip
    return root


def zipped(root: Path) -> Path:
    out = root.with_name("layer.zip")
    write_zip(root, out, source_date_epoch=315532800)
    return out


def problems(path: Path) -> list[str]:
    with pytest.raises(VerifyError) as info:
        verify_zip(path)
    return [p.message for p in info.value.problems]


def test_matching_bytecode_passes(tmp_path: Path) -> None:
    report = verify_zip(zipped(layer(tmp_path)))
    assert report.family == "python" and report.file_count == 4


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("UNCHECKED_HASH", "Lambda would run the old code"),
        ("CHECKED_HASH", "compiled from source on every cold start"),
    ],
)
def test_a_source_edited_after_compiling_is_refused(tmp_path: Path, mode: str, says: str) -> None:
    root = layer(tmp_path, mode)
    (root / MOD).write_text("def answer():\n    return 42\n")
    found = problems(zipped(root))
    assert len(found) == 1
    assert found[0].startswith(
        f"{tmp_path / 'layer.zip'}:{CACHED}: was compiled from another {MOD}"
    )
    assert says in found[0]
    if mode == "UNCHECKED_HASH":
        # What verify prevents: Python really runs the stale bytecode.
        out = subprocess.run(
            [sys.executable, "-S", "-c", "import pkg.mod; print(pkg.mod.answer())"],
            env={"PYTHONPATH": str(root / "python"), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert out.stdout.strip() == "41"


def test_orphan_timestamp_and_foreign_bytecode_are_refused(tmp_path: Path) -> None:
    root = layer(tmp_path)
    cache = root / "python" / "pkg" / "__pycache__"
    (cache / f"gone.{TAG}.pyc").write_bytes((cache / f"mod.{TAG}.pyc").read_bytes())
    # This version's bytecode under another version's tag: the importer rejects its magic.
    other = "cpython-38" if TAG != "cpython-38" else "cpython-39"
    (cache / f"mod.{other}.pyc").write_bytes((cache / f"mod.{TAG}.pyc").read_bytes())
    (cache / f"__init__.{TAG}.pyc").unlink()
    py_compile.compile(str(root / "python/pkg/__init__.py"), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)  # fmt: skip
    found = "\n".join(problems(zipped(root)))
    assert f"gone.{TAG}.pyc: has no source python/pkg/gone.py beside it" in found
    assert f"mod.{other}.pyc: holds bytecode of Python 3.{TAG[len('cpython-3') :]}" in found
    assert f"__init__.{TAG}.pyc: records its source's mtime, not its hash" in found


def test_source_hash_matches_every_cpython_here() -> None:
    # Fixed vectors taken from CPython 3.10 (SipHash-2-4) and 3.11 (SipHash-1-3):
    # _imp.source_hash(1234, b"hello world\n").
    assert (
        pyc.siphash(1234, 0, b"hello world\n", 2, 4).to_bytes(8, "little").hex()
        == "f878dbfd33fb84f3"
    )
    assert (
        pyc.siphash(1234, 0, b"hello world\n", 1, 3).to_bytes(8, "little").hex()
        == "47a021d632ac62e4"
    )
    source = bytes(range(256)) * 3 + b"tail"
    for versions in sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3")):
        out = subprocess.run(
            [str(versions), "-S", "-c",
             "import importlib.util as u, sys; sys.stdout.write(u.MAGIC_NUMBER.hex() + ' ' + "
             f"u.source_hash({source!r}).hex())"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0 or " " not in out.stdout:
            continue  # an interpreter older than 3.7
        magic, want = out.stdout.split()
        assert pyc.source_hash(bytes.fromhex(magic), source).hex() == want, versions


@pytest.mark.parametrize(
    ("magic", "version"),
    [(3394, "3.7"), (3413, "3.8"), (3425, "3.9"), (3439, "3.10"), (3495, "3.11"),
     (3531, "3.12"), (3571, "3.13"), (3627, "3.14"), (3000, None)],
)  # fmt: skip
def test_magic_numbers_name_their_python(magic: int, version: str | None) -> None:
    assert pyc.python_of_magic(magic) == version
