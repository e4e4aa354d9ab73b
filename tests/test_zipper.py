"""The deterministic zip writer: byte-identical rebuilds, modes, timestamps, symlinks, checks."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import stat
import subprocess
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from layer_builder.build import zipper
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import (
    DIR_MODE,
    EXEC_MODE,
    FILE_MODE,
    collect_tree,
    write_zip,
)
from layer_builder.errors import ArgumentError, ArtifactError, SizeLimitError

# name -> (content, mode); directories are implied by the names.
TREE: dict[str, tuple[bytes, int]] = {
    "python/sentry_sdk/__init__.py": (b"from .api import *  # noqa\n" * 50, 0o644),
    "python/sentry_sdk/api.py": (b"def capture(): return None\n" * 200, 0o600),
    "python/sentry_sdk/py.typed": (b"", 0o644),
    "python/bin/tool": (b'#!/bin/sh\nexec python -m tool "$@"\n', 0o750),
    "python/data/random.bin": (random.Random(7).randbytes(4096), 0o644),
    "python/caf\u00e9/na\u00efve.txt": ("d\u00e9j\u00e0 vu\n".encode() * 10, 0o644),
    "extensions/sentry-lambda-extension": (b"#!/bin/sh\nexec /opt/relay/relay run\n", 0o755),
    "a-b.txt": (b"sorts before a/ in byte order\n", 0o444),
    "a/z.txt": (b"z\n", 0o644),
}


def make_tree(root: Path, names: list[str] | None = None, mtime: float | None = None) -> Path:
    """Create TREE under ``root`` in the order of ``names``; modes set with chmod, not umask."""
    for name in names or list(TREE):
        content, mode = TREE[name]
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    (root / "empty-dir").mkdir(exist_ok=True)
    return root


@contextmanager
def time_zone(tz: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


_REAL_SCANDIR = os.scandir


class _ReversedScandir:
    """Stands in for os.scandir, listing entries in reverse order."""

    def __init__(self, path: Path) -> None:
        with _REAL_SCANDIR(path) as it:
            self._entries = sorted(it, key=lambda e: e.name, reverse=True)

    def __enter__(self) -> Iterator[os.DirEntry[str]]:
        return iter(self._entries)

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(autouse=True)
def _no_env_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def test_byte_identical_across_dir_umask_order_mtime_tz_and_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    epoch = 1_700_000_001  # 2023-11-14T22:13:21Z: a different calendar day in most zones
    with umask(0o022), time_zone("UTC"):
        first = make_tree(tmp_path / "one", mtime=1_000_000_000)
        a = write_zip(first, tmp_path / "a.zip", source_date_epoch=epoch)

    names = list(TREE)
    random.Random(3).shuffle(names)
    with umask(0o077), time_zone("KIT-14"):  # POSIX spelling of UTC+14: needs no tzdata
        assert time.localtime(epoch).tm_mday != time.gmtime(epoch).tm_mday
        second = make_tree(tmp_path / "deeper" / "build" / "two", names, mtime=1_600_000_000)
        monkeypatch.setattr(os, "scandir", _ReversedScandir)
        b = write_zip(second, tmp_path / "out" / "b.zip", source_date_epoch=epoch, threads=1)
        monkeypatch.undo()

    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "out" / "b.zip").read_bytes()
    assert (a.sha256, a.code_sha256, a.zip_size) == (b.sha256, b.code_sha256, b.zip_size)
    with zipfile.ZipFile(a.path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_thread_count_and_window_do_not_change_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "t")
    one = write_zip(tree, tmp_path / "1.zip", threads=1)
    monkeypatch.setattr(zipper, "_WINDOW_BYTES", 100)  # forces the writer to wait on workers
    four = write_zip(tree, tmp_path / "4.zip", threads=4)
    assert one.sha256 == four.sha256


def test_contents_round_trip_sorted_with_directories(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    result = write_zip(tree, tmp_path / "l.zip")
    with zipfile.ZipFile(result.path) as zf:
        names = zf.namelist()
        for name, (content, _) in TREE.items():
            assert zf.read(name) == content
        methods = {i.filename: i.compress_type for i in zf.infolist()}
    assert names == sorted(names, key=lambda n: n.encode())
    assert names.index("a-b.txt") < names.index("a/") < names.index("a/z.txt")
    assert "empty-dir/" in names and "python/" in names
    assert methods["python/sentry_sdk/api.py"] == zipfile.ZIP_DEFLATED
    assert methods["python/sentry_sdk/py.typed"] == zipfile.ZIP_STORED
    assert methods["python/data/random.bin"] == zipfile.ZIP_STORED  # incompressible
    assert result.file_count == len(TREE)
    assert result.unzipped_size == sum(len(c) for c, _ in TREE.values())


def test_modes_follow_the_exec_bit(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    os.chmod(tree / "a", 0o700)  # directory modes are fixed, whatever the tree says
    result = write_zip(tree, tmp_path / "l.zip")
    with zipfile.ZipFile(result.path) as zf:
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        systems = {i.create_system for i in zf.infolist()}
    for name, (_, mode) in TREE.items():
        assert modes[name] == (EXEC_MODE if mode & 0o111 else FILE_MODE), name
    assert modes["a/"] == DIR_MODE and stat.S_ISDIR(modes["a/"])
    assert systems == {3}


def test_code_sha256_and_metadata_free_headers(tmp_path: Path) -> None:
    result = write_zip(make_tree(tmp_path / "t"), tmp_path / "l.zip")
    data = result.path.read_bytes()
    digest = hashlib.sha256(data).digest()
    assert result.code_sha256 == base64.b64encode(digest).decode()
    assert result.sha256 == digest.hex() and result.zip_size == len(data)
    with zipfile.ZipFile(result.path) as zf:
        assert zf.comment == b""
        for info in zf.infolist():
            assert info.extra == b""
            assert info.flag_bits == (0x800 if not info.filename.isascii() else 0)
    inspection = inspect_zip(result.path)
    assert inspection.problems() == [] and inspection.is_deterministic
    assert inspection.code_sha256 == result.code_sha256
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".l.zip.*"))


def test_source_date_epoch_env_argument_default_and_clamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "t")

    def stamps(**kwargs: int) -> set[tuple[int, ...]]:
        with zipfile.ZipFile(write_zip(tree, tmp_path / "l.zip", **kwargs).path) as zf:
            return {i.date_time for i in zf.infolist()}

    assert stamps() == {(1980, 1, 1, 0, 0, 0)}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1717171717")  # 2024-05-31T16:08:37Z
    assert stamps() == {(2024, 5, 31, 16, 8, 36)}
    assert stamps(source_date_epoch=1_500_000_000) == {(2017, 7, 14, 2, 40, 0)}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ArgumentError, match=r"SOURCE_DATE_EPOCH='yesterday' is not a whole"):
        stamps()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert stamps(source_date_epoch=0) == {(1980, 1, 1, 0, 0, 0)}
    assert stamps(source_date_epoch=2**40) == {(2107, 12, 31, 23, 59, 58)}


def test_symlink_inside_tree_is_stored_as_its_target(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    (tree / "python" / "bin" / "alias").symlink_to("tool")
    (tree / "sdk").symlink_to("python/sentry_sdk", target_is_directory=True)
    with zipfile.ZipFile(write_zip(tree, tmp_path / "l.zip").path) as zf:
        alias = zf.getinfo("python/bin/alias")
        assert zf.read(alias) == TREE["python/bin/tool"][0]
        assert alias.external_attr >> 16 == EXEC_MODE
        assert zf.read("sdk/api.py") == TREE["python/sentry_sdk/api.py"][0]


@pytest.mark.parametrize(
    ("target", "message"),
    [("../../outside.txt", "outside the layer tree"), ("missing", "dangling symlink")],
)
def test_symlink_leaving_the_tree_or_dangling_is_refused(
    tmp_path: Path, target: str, message: str
) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    tree = make_tree(tmp_path / "t")
    link = tree / "python" / "leak"
    link.symlink_to(target)
    with pytest.raises(ArtifactError, match=message) as info:
        write_zip(tree, tmp_path / "l.zip")
    assert str(link) in str(info.value)
    assert not (tmp_path / "l.zip").exists()


def test_symlink_loop_and_special_files_are_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    (tree / "a" / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(ArtifactError, match="symlink loop") as info:
        collect_tree(tree)
    assert "a/up" in str(info.value)
    (tree / "a" / "up").unlink()
    os.mkfifo(tree / "pipe")
    with pytest.raises(ArtifactError, match=r"pipe: unsupported file type \(fifo\)"):
        collect_tree(tree)


def test_output_inside_the_tree_is_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    with pytest.raises(ArtifactError, match="inside the tree"):
        write_zip(tree, tree / "layer.zip")


def test_failure_leaves_previous_zip_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "t")
    out = tmp_path / "dist" / "l.zip"
    out.parent.mkdir()
    out.write_bytes(b"previous")

    def broken(path: str, size: int) -> bytes:
        raise ArtifactError(f"{path}: cannot read: boom")

    monkeypatch.setattr(zipper, "_read", broken)
    with pytest.raises(ArtifactError, match="boom"):
        write_zip(tree, out)
    assert out.read_bytes() == b"previous"
    assert [p.name for p in out.parent.iterdir()] == ["l.zip"]


@pytest.mark.parametrize("where", ["member", "offset", "central directory"])
def test_sizes_that_need_zip64_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    rng = random.Random(1)
    for i in range(10):
        (tree / f"f{i}").write_bytes(rng.randbytes(1000))  # incompressible: stored
    with zipfile.ZipFile(write_zip(tree, tmp_path / "ok.zip").path) as zf:
        data_end = zf.start_dir
    limit = {"member": 900, "offset": 3000, "central directory": data_end + 1}[where]
    monkeypatch.setattr(zipper, "_MAX_U32", limit)  # stands in for 4 GiB
    with pytest.raises(SizeLimitError, match="Zip64"):
        write_zip(tree, tmp_path / "l.zip")
    assert not (tmp_path / "l.zip").exists() and not list(tmp_path.glob(".l.zip*"))


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip is not installed")
def test_unzip_accepts_and_restores_modes(tmp_path: Path) -> None:
    result = write_zip(make_tree(tmp_path / "t"), tmp_path / "l.zip")
    subprocess.run(["unzip", "-t", "-q", str(result.path)], check=True, capture_output=True)
    dest = tmp_path / "x"
    subprocess.run(["unzip", "-q", str(result.path), "-d", str(dest)], check=True)
    assert os.access(dest / "extensions" / "sentry-lambda-extension", os.X_OK)
    assert stat.S_IMODE((dest / "a-b.txt").stat().st_mode) == 0o644


def test_inspect_flags_a_stdlib_zip_as_not_deterministic(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    os.utime(tree / "a" / "z.txt", (1_600_000_000, 1_600_000_000))
    path = tmp_path / "stdlib.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tree / "a-b.txt", "a-b.txt")  # local-time mtime of each file
        zf.write(tree / "a" / "z.txt", "a/z.txt")
        info = zipfile.ZipInfo("a/extra.txt", (2020, 1, 1, 0, 0, 0))
        info.extra = b"UT\x05\x00\x01\x00\x00\x00\x00"  # extended-timestamp field
        zf.writestr(info, b"x")
    inspection = inspect_zip(path)
    assert not inspection.timestamps_equal
    assert not inspection.entries_sorted
    assert not inspection.no_extra_fields
    assert not inspection.is_deterministic
    assert inspection.safe_paths
    assert any("timestamps" in p for p in inspection.problems())


def test_inspect_flags_path_traversal_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name in ["../x", "/abs", "C:/win", "fine.txt", "fine.txt", "ok/../../up"]:  # sorted
            zf.writestr(zipfile.ZipInfo(name), b"x")
    inspection = inspect_zip(path)
    assert set(inspection.unsafe_names) == {"../x", "/abs", "ok/../../up", "C:/win"}
    assert inspection.duplicate_names == ("fine.txt",)
    assert not inspection.safe_paths
    assert inspection.is_deterministic  # safety is reported apart from determinism
    assert len(inspection.problems()) == 2


@pytest.mark.parametrize("damage", ["not a zip", "truncated", "flipped"])
def test_inspect_refuses_a_corrupt_zip_naming_it(tmp_path: Path, damage: str) -> None:
    result = write_zip(make_tree(tmp_path / "t"), tmp_path / "l.zip")
    data = bytearray(result.path.read_bytes())
    if damage == "not a zip":
        data = bytearray(b"PK but not really" * 10)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # corrupt a deflated member's data: only the CRC check can notice
        with zipfile.ZipFile(result.path) as zf:
            info = zf.getinfo("python/sentry_sdk/api.py")
        data[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    result.path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="not a valid zip") as err:
        inspect_zip(result.path)
    assert str(result.path) in str(err.value)


def test_inspect_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="missing.zip"):
        inspect_zip(tmp_path / "missing.zip")
