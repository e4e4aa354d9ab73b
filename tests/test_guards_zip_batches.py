"""How the zip writer splits its work: the batches it cuts, how far compression may run ahead
of the writer, and which threads do the packing (mutation testing found these unchecked:
the output bytes do not depend on them, so only direct tests can tell; see
docs/mutation-testing.md).

The batches and the window are tested with stand-in entries (only name and size matter to
them) and a stand-in pool that runs each task at once and logs the order of submissions and
hand-backs: that order is the memory bound the writer promises.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from layer_builder.build import zipper
from layer_builder.build.zipper import Entry, write_zip
from layer_builder.errors import SizeLimitError

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
