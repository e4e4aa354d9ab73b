"""The deterministic zip writer: byte-identical rebuilds, modes, timestamps, symlinks, checks."""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import deflate
import pytest

from layer_builder.build import zipper
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import Entry, collect_tree, resolve_source_date_epoch, write_zip
from layer_builder.errors import ArgumentError, ArtifactError, SizeLimitError
from tests.helpers.zips import Unseekable, zip_by_hand

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
    # Literal modes, not the zipper's own constants: a changed constant must fail here.
    executable = {"python/bin/tool", "extensions/sentry-lambda-extension"}  # 0o750, 0o755
    for name in TREE:
        assert modes[name] == (0o100755 if name in executable else 0o100644), name
    assert modes["a/"] == 0o40755 and modes["empty-dir/"] == 0o40755
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
        assert alias.external_attr >> 16 == 0o100755
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


# ------------------------------------------------------------------------------------------------
# The zip writer and the read-back checker at their edges: the exec bit is taken from the
# owner bit only, an extra field that only the local header carries, a data descriptor.


def test_any_exec_bit_makes_a_file_executable(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "python").mkdir(parents=True)
    # Modes whose only exec bit is the owner's, the group's or the others'.
    modes = {"owner": 0o744, "group": 0o610, "other": 0o601, "none": 0o644, "setuid": 0o4700}
    for name, mode in modes.items():
        path = tree / "python" / name
        path.write_bytes(name.encode())
        os.chmod(path, mode)
    with zipfile.ZipFile(write_zip(tree, tmp_path / "l.zip").path) as zf:
        got = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert got == {
        "python/": 0o40755,
        "python/group": 0o100755,
        "python/none": 0o100644,
        "python/other": 0o100755,
        "python/owner": 0o100755,
        "python/setuid": 0o100755,  # set-id bits never reach a layer
    }


def test_hand_made_zip_without_extras_is_clean(tmp_path: Path) -> None:
    # The control for the two tests below: the hand-made zip itself passes.
    inspection = inspect_zip(zip_by_hand(tmp_path / "ok.zip", "python/a.py", b"x = 1\n"))
    assert inspection.problems() == []


def test_an_extra_field_only_in_the_local_header_is_found(tmp_path: Path) -> None:
    # Info-ZIP's "UT" extended timestamp: 5 bytes of data after a 4-byte field header.
    ut = struct.pack("<HHBI", 0x5455, 5, 1, 1_700_000_000)
    zip_path = zip_by_hand(tmp_path / "ut.zip", "python/a.py", b"x = 1\n", local_extra=ut)
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.getinfo("python/a.py").extra == b""  # invisible to zipfile
    inspection = inspect_zip(zip_path)
    assert inspection.entries[0].has_extra is True
    assert inspection.problems() == [
        "extra fields (timestamps, uid/gid) on 1 members, e.g. python/a.py"
    ]


def test_an_extra_field_in_the_central_directory_is_found(tmp_path: Path) -> None:
    ux = struct.pack("<HHBBIBI", 0x7875, 11, 1, 4, 1000, 4, 1000)  # Info-ZIP uid/gid
    zip_path = zip_by_hand(tmp_path / "ux.zip", "python/a.py", b"x = 1\n", central_extra=ux)
    assert inspect_zip(zip_path).problems() == [
        "extra fields (timestamps, uid/gid) on 1 members, e.g. python/a.py"
    ]


def test_data_descriptors_are_found(tmp_path: Path) -> None:
    stream = Unseekable()
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ("python/a.py", "python/b.py"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            zf.writestr(info, b"y = 2\n" * 10)
    zip_path = tmp_path / "dd.zip"
    zip_path.write_bytes(bytes(stream.buffer))
    inspection = inspect_zip(zip_path)
    assert [e.has_data_descriptor for e in inspection.entries] == [True, True]
    assert inspection.problems() == ["data descriptors are used"]
    assert inspection.is_deterministic is False


# ------------------------------------------------------------------------------------------------
# How the zip writer splits its work: the batches it cuts, how far compression may run ahead
# of the writer, and which threads do the packing.
#
# The batches and the window are tested with stand-in entries (only name and size matter to
# them) and a stand-in pool that runs each task at once and logs the order of submissions and
# hand-backs: that order is the memory bound the writer promises.


MIB = 1 << 20


def entries(*sizes: int) -> list[Entry]:
    return [Entry(f"f{i}", f"/nowhere/f{i}", 0o100644, size) for i, size in enumerate(sizes)]


def partition(sizes: list[int], max_files: int, max_bytes: int) -> list[list[int]]:
    cut = zipper._batches(Path("/layer"), entries(*sizes), max_files, max_bytes)
    return [[e.size for e in batch] for batch in cut]


@pytest.mark.parametrize(
    ("sizes", "max_files", "max_bytes", "expected"),
    [
        # Count-limited: at most 3 members, whatever their size.
        ([10, 10, 10, 10], 3, 1000, [[10, 10, 10], [10]]),
        # Byte-limited: a batch ends once it holds 100 bytes, not before, and the next one
        # starts counting from nothing.
        ([60, 39, 1, 5], 10, 100, [[60, 39, 1], [5]]),
        ([100, 60, 39, 1, 5], 10, 100, [[100], [60, 39, 1], [5]]),
        ([60, 41, 2], 10, 100, [[60, 41], [2]]),
        # Either limit ends a batch on its own.
        ([1, 1, 200, 1], 3, 100, [[1, 1, 200], [1]]),
        ([], 3, 100, []),
    ],
)
def test_batches_are_consecutive_runs_cut_by_count_or_bytes(
    sizes: list[int], max_files: int, max_bytes: int, expected: list[list[int]]
) -> None:
    assert partition(sizes, max_files, max_bytes) == expected


def test_65534_entries_fit_without_zip64() -> None:
    cut = zipper._batches(Path("/layer"), entries(*[0] * 65534), 64, 1)
    assert sum(len(batch) for batch in cut) == 65534


def test_the_65535th_entry_is_refused_word_for_word() -> None:
    cut = zipper._batches(Path("/layer"), entries(*[0] * 65535), 64, 1)
    with pytest.raises(SizeLimitError, match="65535 or more") as exc:
        list(cut)
    assert str(exc.value) == "/layer: 65535 or more entries is too many without Zip64"


def test_a_member_of_4_gib_minus_one_is_refused_word_for_word() -> None:
    with pytest.raises(SizeLimitError, match="too big") as exc:
        partition([1, 0xFFFFFFFF], 64, MIB)
    assert str(exc.value) == "/layer/f1: 4294967295 bytes is too big without Zip64"


def test_a_member_just_under_4_gib_is_not_refused_by_size() -> None:
    assert partition([0xFFFFFFFE, 1], 64, MIB) == [[0xFFFFFFFE], [1]]


class LoggingPool:
    """Runs each task when submitted; logs "S<n>" per submission (n: the batch's first size)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def submit(self, fn: object, batch: list[Entry]) -> Future[str]:
        self.log.append(f"S{batch[0].name}")
        future: Future[str] = Future()
        future.set_result(batch[0].name)
        return future


def window_order(sizes_mib: list[int], workers: int) -> list[str]:
    """The order of submissions (S) and hand-backs to the writer (Y), one batch per size."""
    log: list[str] = []
    batches = [[e] for e in entries(*(s * MIB for s in sizes_mib))]
    pool = LoggingPool(log)
    for name in zipper._packed_in_order(iter(batches), pool, lambda b: b, workers):  # type: ignore[arg-type]
        log.append(f"Y{name}")
    return log


def test_compression_runs_at_most_64_mib_of_input_ahead_of_the_writer() -> None:
    # f0 40 MiB; f1 would make 80 in flight: f0 is handed back first. f2 (20) and f3 (4)
    # fill the window to exactly 64 MiB, which is allowed; f4 (30) waits for f1.
    order = window_order([40, 40, 20, 4, 30], workers=8)
    assert order == ["Sf0", "Yf0", "Sf1", "Sf2", "Sf3", "Yf1", "Sf4", "Yf2", "Yf3", "Yf4"]


def test_compression_runs_at_most_four_batches_per_worker_ahead() -> None:
    order = window_order([0] * 10, workers=2)
    assert order == (
        [f"Sf{i}" for i in range(8)]
        + ["Yf0", "Sf8", "Yf1", "Sf9"]
        + [f"Yf{i}" for i in range(2, 10)]
    )


def test_default_threads_are_the_usable_cpus_capped_at_8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert zipper._default_threads() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert zipper._default_threads() == 8


def test_default_threads_on_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert zipper._default_threads() == 1


@pytest.mark.parametrize(("cpu_count", "expected"), [(3, 3), (None, 1)])
def test_default_threads_without_sched_getaffinity(
    monkeypatch: pytest.MonkeyPatch, cpu_count: int | None, expected: int
) -> None:
    # macOS: no sched_getaffinity; os.cpu_count() may not know (None).
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cpu_count)
    assert zipper._default_threads() == expected


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    for i in range(6):
        (root / f"d{i}").mkdir(parents=True)
        (root / f"d{i}" / "f.txt").write_bytes(b"some text %d\n" % i * 50)
    return root


@pytest.fixture
def packing_threads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[object]]:
    """Records the thread each batch is packed on, and the max_workers of each pool made.

    The machine is made to look like 4 CPUs, so the default differs from 1, 2 and 3."""
    names: list[str] = []
    pools: list[object] = []
    real_pack = zipper._pack_batch

    def pack(batch: list[Entry], **kwargs: object) -> object:
        names.append(threading.current_thread().name)
        return real_pack(batch, **kwargs)  # type: ignore[arg-type]

    class RecordingPool(ThreadPoolExecutor):
        def __init__(self, max_workers: int | None = None, **kwargs: object) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipper, "_pack_batch", pack)
    monkeypatch.setattr(zipper, "ThreadPoolExecutor", RecordingPool)
    monkeypatch.setattr(zipper, "_default_threads", lambda: 4)
    return names, pools


def test_one_thread_packs_on_the_calling_thread(
    small_tree: Path, tmp_path: Path, packing_threads: tuple[list[str], list[object]]
) -> None:
    names, pools = packing_threads
    write_zip(small_tree, tmp_path / "l.zip", threads=1, batch_files=1)
    assert (pools, set(names)) == ([], {threading.current_thread().name})


@pytest.mark.parametrize(("threads", "expected"), [(2, 2), (3, 3), (None, 4), (0, 4), (-2, 4)])
def test_more_threads_pack_on_a_pool_of_that_size(
    small_tree: Path,
    tmp_path: Path,
    packing_threads: tuple[list[str], list[object]],
    threads: int | None,
    expected: int,
) -> None:
    names, pools = packing_threads
    write_zip(small_tree, tmp_path / "l.zip", threads=threads, batch_files=1)
    assert pools == [expected]
    # Named for the writer, so a thread dump shows whose threads these are.
    assert names and all(name.startswith("zipper_") for name in names)


# ------------------------------------------------------------------------------------------------
# Identical files are compressed once, different ones never share data, and the cache that
# recognises them keeps to its memory budget.


TYPES = b"".join(b"export declare function f%d(x: number): string;\n" % i for i in range(300))
# Two different 12-byte contents with the same CRC-32 (found by a birthday search).
CRC_TWINS = (b"wunrmhczpspm", b"toobxpfdwogy")


@pytest.fixture
def compress_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls to libdeflate (the length of each input)."""
    calls: list[int] = []
    real = deflate.deflate_compress

    def counting(data: bytes, level: int = 6) -> bytes:
        calls.append(len(data))
        return real(data, level)

    monkeypatch.setattr(deflate, "deflate_compress", counting)
    return calls


def test_identical_files_are_compressed_once(tmp_path: Path, compress_calls: list[int]) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    for ext in ("d.ts", "d.mts", "d.cts"):
        (tree / f"index.{ext}").write_bytes(TYPES)
    (tree / "other.js").write_bytes(b"module.exports = {};\n" * 20)
    # One thread: the three copies meet the cache one after the other.
    out = write_zip(tree, tmp_path / "l.zip", threads=1, batch_files=1).path
    assert sorted(compress_calls) == sorted([len(TYPES), 20 * 21])
    with zipfile.ZipFile(out) as zf:
        assert [zf.read(f"index.{e}") for e in ("d.ts", "d.mts", "d.cts")] == [TYPES] * 3


def test_files_with_the_same_size_and_crc_keep_their_own_contents(tmp_path: Path) -> None:
    a, b = CRC_TWINS
    assert a != b and len(a) == len(b) and deflate.crc32(a) == deflate.crc32(b)  # the premise
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_bytes(a)
    (tree / "b").write_bytes(b)
    out = write_zip(tree, tmp_path / "l.zip", threads=1).path
    with zipfile.ZipFile(out) as zf:
        assert (zf.read("a"), zf.read("b")) == (a, b)


def test_the_cache_keeps_contents_only_while_they_fit_its_budget() -> None:
    same = zipper._SameContent(100)
    big, small, tiny = b"b" * 60, b"s" * 10, b"t"
    crc = deflate.crc32
    same.put(big, crc(big), zipfile.ZIP_DEFLATED, b"c" * 30)  # raw + compressed: 90 of 100
    same.put(small, crc(small), zipfile.ZIP_STORED, small)  # stored: counted once, 10 of 10
    same.put(tiny, crc(tiny), zipfile.ZIP_STORED, tiny)  # no room left
    assert same.get(big, crc(big)) == (zipfile.ZIP_DEFLATED, b"c" * 30)
    assert same.get(small, crc(small)) == (zipfile.ZIP_STORED, small)
    assert same.get(tiny, crc(tiny)) is None


# ------------------------------------------------------------------------------------------------
# The zip writer's limits, counts, arguments and file handling, word for word.
#
# A 4 GiB tree is out of reach in a test, so the Zip64 edges stand the 4 GiB limit in by the
# exact size of a small archive (as test_zipper does): one byte under, at, and over.


# 36 bytes that libdeflate 1.26 at level 7 turns into exactly 36 bytes: no gain, so stored.
NO_GAIN = (
    b"\x06\x08\x05\t\x12\x10\x0b\n\x0f\r\x06\x05\x12\t\x04\n\x06\x05"
    b"\x12\x05\x0b\x12\x0c\x03\x12\t\x0b\t\x0f\x02\t\x01\r\x02\x0e\x0f"
)
TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(400))


@pytest.fixture
def ten_files(tmp_path: Path) -> tuple[Path, int, int]:
    """f0..f9, 1000 incompressible bytes each (stored), no directories; returns the tree,
    where the central directory starts and the zip's size."""
    tree = tmp_path / "t"
    tree.mkdir()
    rng = random.Random(1)
    for i in range(10):
        (tree / f"f{i}").write_bytes(rng.randbytes(1000))
    result = write_zip(tree, tmp_path / "ok.zip")
    with zipfile.ZipFile(result.path) as zf:
        return tree, zf.start_dir, result.zip_size


def test_data_reaching_the_limit_names_the_last_member_of_the_batch(
    ten_files: tuple[Path, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, data_end, _ = ten_files
    monkeypatch.setattr(zipper, "_MAX_U32", data_end)  # the data alone reaches "4 GiB"
    with pytest.raises(SizeLimitError, match="Zip64") as exc:
        write_zip(tree, tmp_path / "l.zip")  # one batch: f0..f9
    assert str(exc.value) == "f9: the zip would exceed 4 GiB (Zip64 needed)"


def test_a_central_directory_reaching_the_limit_is_refused(
    ten_files: tuple[Path, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, _, zip_size = ten_files
    # The end record (22 bytes) would start exactly at "4 GiB".
    monkeypatch.setattr(zipper, "_MAX_U32", zip_size - 22)
    with pytest.raises(SizeLimitError, match="Zip64") as exc:
        write_zip(tree, tmp_path / "l.zip")
    assert str(exc.value) == "the zip's central directory would pass 4 GiB (Zip64 needed)"


def test_a_zip_whose_end_record_starts_just_under_the_limit_is_written(
    ten_files: tuple[Path, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, _, zip_size = ten_files
    monkeypatch.setattr(zipper, "_MAX_U32", zip_size - 21)
    assert write_zip(tree, tmp_path / "l.zip").zip_size == zip_size


def test_counts_and_sizes_add_up_over_many_batches(
    ten_files: tuple[Path, int, int], tmp_path: Path
) -> None:
    tree, _, _ = ten_files
    (tree / "sub").mkdir()
    (tree / "sub" / "g").write_bytes(b"x" * 77)
    result = write_zip(tree, tmp_path / "l.zip", threads=1, batch_files=2)
    assert (result.file_count, result.unzipped_size) == (11, 10 * 1000 + 77)


def test_an_unreadable_file_is_named_word_for_word(tmp_path: Path) -> None:
    gone = tmp_path / "gone.txt"
    with pytest.raises(ArtifactError, match="cannot read") as exc:
        zipper._read(str(gone), 3)
    assert str(exc.value) == f"{gone}: cannot read: No such file or directory"


def test_a_file_the_walk_saw_empty_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"written after the walk\n" * 3)
    assert zipper._read(str(path), 0) == b"written after the walk\n" * 3


def test_a_file_that_grew_to_the_limit_is_refused_word_for_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    monkeypatch.setattr(zipper, "_MAX_U32", 10)  # stands in for 4 GiB
    with pytest.raises(SizeLimitError, match="too big") as exc:
        zipper._read(str(path), 4)  # the walk saw 4 bytes; it has 10 now
    assert str(exc.value) == f"{path}: 10 bytes is too big without Zip64"


def test_a_file_just_under_the_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"012345678")
    monkeypatch.setattr(zipper, "_MAX_U32", 10)
    assert zipper._read(str(path), 9) == b"012345678"


def member_data(path: Path, name: str) -> tuple[int, bytes]:
    """A member's method and its stored (compressed) bytes, read from the local header."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = path.read_bytes()
    start = info.header_offset + 30 + len(name.encode())
    return info.compress_type, raw[start : start + info.compress_size]


@pytest.mark.parametrize("level", [0, 1, 12])
def test_every_level_from_0_to_12_is_used_as_given(tmp_path: Path, level: int) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "text").write_bytes(TEXT)
    out = write_zip(tree, tmp_path / "l.zip", level=level).path
    expected = deflate.deflate_compress(TEXT, level)
    if level == 0:  # level 0 does not compress: no gain, so stored
        assert member_data(out, "text") == (zipfile.ZIP_STORED, TEXT)
    else:
        assert member_data(out, "text") == (zipfile.ZIP_DEFLATED, expected)


def test_levels_1_and_12_give_different_data() -> None:
    # Makes the test above able to fail: the levels differ on this input.
    assert deflate.deflate_compress(TEXT, 1) != deflate.deflate_compress(TEXT, 12)


@pytest.mark.parametrize("level", [-1, 13])
def test_a_level_outside_0_to_12_is_refused_word_for_word(tmp_path: Path, level: int) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(ValueError, match="compression level") as exc:
        write_zip(tmp_path / "t", tmp_path / "l.zip", level=level)
    assert str(exc.value) == f"compression level must be 0..12, not {level}"


@pytest.mark.parametrize(("files", "size"), [(0, 1), (1, 0), (-1, 5)])
def test_batch_limits_must_be_positive(tmp_path: Path, files: int, size: int) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(ValueError, match="positive") as exc:
        write_zip(tmp_path / "t", tmp_path / "l.zip", batch_files=files, batch_bytes=size)
    assert str(exc.value) == "batch_files and batch_bytes must be positive"
    assert not (tmp_path / "l.zip").exists()


def test_a_file_deflate_cannot_shrink_is_stored(tmp_path: Path) -> None:
    assert len(deflate.deflate_compress(NO_GAIN, 7)) == len(NO_GAIN)  # the premise
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "same-size").write_bytes(NO_GAIN)
    out = write_zip(tree, tmp_path / "l.zip").path
    assert member_data(out, "same-size") == (zipfile.ZIP_STORED, NO_GAIN)


def test_missing_parent_directories_of_the_output_are_made(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_bytes(b"x")
    out = tmp_path / "dist" / "x86_64" / "l.zip"
    with zipfile.ZipFile(write_zip(tmp_path / "t", out).path) as zf:
        assert zf.read("f") == b"x"


def test_the_zip_is_written_to_a_hidden_temporary_file_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_bytes(b"x")
    dist = tmp_path / "dist"
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(sorted(p.name for p in dist.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_zip(tmp_path / "t", dist / "l.zip")
    assert len(seen) == 1 and len(seen[0]) == 1
    assert re.fullmatch(r"\.l\.zip\.[^.]+\.tmp", seen[0][0]), seen
    assert sorted(p.name for p in dist.iterdir()) == ["l.zip"]


def test_a_failure_after_the_temporary_file_vanished_is_reported_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone cleans the directory while the zip is written, then the disk fails: the
    # error is the disk's, not the cleanup's FileNotFoundError.
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_bytes(b"x")
    dist = tmp_path / "dist"

    def fsync(fd: int) -> None:
        for stray in dist.glob(".l.zip.*"):
            stray.unlink()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match=r"^\[Errno 5\] Input/output error$"):
        write_zip(tmp_path / "t", dist / "l.zip")


def test_a_source_date_epoch_outside_the_dos_range_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="layer_builder.build.zipper"):
        assert resolve_source_date_epoch(100) == 315_532_800
    assert caplog.messages == [
        "SOURCE_DATE_EPOCH 100 is outside the zip date range; using 315532800"
    ]


def test_a_source_date_epoch_inside_the_dos_range_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="layer_builder.build.zipper"):
        assert resolve_source_date_epoch(1_700_000_000) == 1_700_000_000
    assert caplog.messages == []
