"""The zip writer's limits, counts, arguments and file handling, word for word (mutation
testing found these unchecked; see docs/mutation-testing.md).

A 4 GiB tree is out of reach in a test, so the Zip64 edges stand the 4 GiB limit in by the
exact size of a small archive (as test_zipper does): one byte under, at, and over.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import zipfile
from pathlib import Path

import deflate
import pytest

from layer_builder.build import zipper
from layer_builder.build.zipper import resolve_source_date_epoch, write_zip
from layer_builder.errors import ArtifactError, SizeLimitError

# 36 bytes that libdeflate 1.26 at level 7 turns into exactly 36 bytes: no gain, so stored.
NO_GAIN = (
    b"\x06\x08\x05\t\x12\x10\x0b\n\x0f\r\x06\x05\x12\t\x04\n\x06\x05"
    b"\x12\x05\x0b\x12\x0c\x03\x12\t\x0b\t\x0f\x02\t\x01\r\x02\x0e\x0f"
)
TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(400))


@pytest.fixture(autouse=True)
def _no_env_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


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
