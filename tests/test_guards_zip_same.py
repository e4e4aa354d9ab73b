"""Identical files are compressed once, different ones never share data, and the cache that
recognises them keeps to its memory budget (mutation testing found the cache unchecked: it
does not change a byte of a correct zip, so the tests count the compressor's calls and look
into the cache; see docs/mutation-testing.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import deflate
import pytest

from layer_builder.build import zipper
from layer_builder.build.zipper import write_zip

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
