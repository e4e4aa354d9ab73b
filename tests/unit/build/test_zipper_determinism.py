"""The zip's bytes depend on the tree alone: not on threads, batch sizes or the reuse cache.

The trees here are the awkward ones for a batching, multi-threaded writer: thousands of
tiny files, empty files, large incompressible files (stored, each a batch of its own),
identical files (compressed once), names that sort differently per directory than
globally, and paths deeper than Python's recursion limit.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import zipfile
from pathlib import Path

import pytest

from layer_builder.build import zipper
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import collect_tree, write_zip

# One fixed tree, written byte for byte the same on every machine (seeded generator).
RNG_SEED = 12


def make_awkward_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Build the tree and return ``{name: (content, mode)}`` of every regular file."""
    rng = random.Random(RNG_SEED)
    files: dict[str, tuple[bytes, int]] = {}
    words = [b"import", b"export", b"const", b"function", b"return", b"sentry", b"=>", b"{}"]
    for i in range(1500):  # many tiny files, a few bytes to a few hundred
        body = b" ".join(rng.choice(words) for _ in range(rng.randrange(0, 60)))
        files[f"node_modules/pkg{i % 37}/lib/f{i}.js"] = (body, 0o644)
    for i in range(40):  # empty files, some executable
        files[f"empty/e{i}"] = (b"", 0o755 if i % 3 == 0 else 0o644)
    for i in range(3):  # large incompressible: stored, each bigger than a batch
        files[f"bin/blob{i}.so"] = (rng.randbytes(700_000 + i), 0o755)
    text = b"".join(b"line %d of a large source map\n" % i for i in range(40_000))
    for ext in ("d.ts", "d.mts", "d.cts"):  # identical contents under different names
        files[f"types/index.{ext}"] = (text, 0o644)
    # Names whose per-directory order differs from a naive sort: '-' and '.' sort before
    # '/', '0' after it; a directory "x" must come after "x-y" and "x.y" but before "x0".
    for name in (
        "x-y",
        "x.y",
        "x/inner",
        "x0",
        "x/a-b",
        "x/a/b",
        "x/a.b",
        "\u00e9t\u00e9/caf\u00e9",
    ):
        files[f"order/{name}"] = (name.encode() * 3, 0o644)
    deep = "/".join(f"d{i}" for i in range(60))
    files[f"deep/{deep}/leaf.txt"] = (b"deep\n" * 100, 0o600)
    for name, (content, mode) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
    (root / "empty-dir" / "nested-empty").mkdir(parents=True)
    return files


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[bytes, int]]]:
    root = tmp_path_factory.mktemp("awkward") / "tree"
    return root, make_awkward_tree(root)


@pytest.fixture(scope="module")
def reference(
    awkward: tuple[Path, dict[str, tuple[bytes, int]]], tmp_path_factory: pytest.TempPathFactory
) -> bytes:
    """The zip written the plainest way: one thread, one member per batch, no reuse cache."""
    root, _ = awkward
    out = tmp_path_factory.mktemp("ref") / "ref.zip"
    saved = zipper._SAME_CONTENT_BYTES
    zipper._SAME_CONTENT_BYTES = 0
    try:
        write_zip(root, out, threads=1, batch_files=1, batch_bytes=1)
    finally:
        zipper._SAME_CONTENT_BYTES = saved
    return out.read_bytes()


@pytest.mark.parametrize(
    ("threads", "batch_files", "batch_bytes"),
    [
        (1, 64, 512 * 1024),  # the defaults, on one thread
        (2, 64, 512 * 1024),  # the defaults, on two
        (2, 1, 1),  # one member per task
        (3, 7, 10_000),  # odd sizes: batches end mid-directory
        (8, 100_000, 1 << 40),  # one batch holding everything
        (4, 3, 1 << 40),  # count-limited only
    ],
)
def test_bytes_do_not_depend_on_threads_or_batches(
    awkward: tuple[Path, dict[str, tuple[bytes, int]]],
    reference: bytes,
    tmp_path: Path,
    threads: int,
    batch_files: int,
    batch_bytes: int,
) -> None:
    root, _ = awkward
    out = tmp_path / "z.zip"
    result = write_zip(root, out, threads=threads, batch_files=batch_files, batch_bytes=batch_bytes)
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(reference).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.zip_size == len(data)


def test_a_small_window_and_a_small_reuse_cache_do_not_change_bytes(
    awkward: tuple[Path, dict[str, tuple[bytes, int]]],
    reference: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = awkward
    monkeypatch.setattr(zipper, "_WINDOW_BYTES", 1000)  # the writer waits on every batch
    monkeypatch.setattr(zipper, "_SAME_CONTENT_BYTES", 300_000)  # fills up part way
    write_zip(root, tmp_path / "z.zip", threads=2, batch_files=5, batch_bytes=4096)
    assert (tmp_path / "z.zip").read_bytes() == reference


def test_contents_modes_methods_and_order(
    awkward: tuple[Path, dict[str, tuple[bytes, int]]], reference: bytes, tmp_path: Path
) -> None:
    root, files = awkward
    path = tmp_path / "ref.zip"
    path.write_bytes(reference)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = [i.filename for i in zf.infolist()]
        for name, (content, mode) in files.items():
            info = infos[name]
            assert zf.read(info) == content, name
            # Literals on purpose: these are what Lambda and unzip read back.
            assert info.external_attr >> 16 == (0o100755 if mode & 0o111 else 0o100644), name
            assert info.create_system == 3 and info.extra == b"" and info.date_time == (
                1980, 1, 1, 0, 0, 0)  # fmt: skip
    dirs = [n for n in names if n.endswith("/")]
    assert {infos[d].external_attr >> 16 for d in dirs} == {0o40755}
    assert "empty-dir/nested-empty/" in names
    # Stored: empty files (crc 0, no data) and the random blobs; deflated: the rest.
    for i in range(40):
        e = infos[f"empty/e{i}"]
        assert (e.compress_type, e.compress_size, e.CRC) == (zipfile.ZIP_STORED, 0, 0)
    for i in range(3):
        assert infos[f"bin/blob{i}.so"].compress_type == zipfile.ZIP_STORED
    trio = [infos[f"types/index.{ext}"] for ext in ("d.ts", "d.mts", "d.cts")]
    assert {i.compress_type for i in trio} == {zipfile.ZIP_DEFLATED}
    assert len({i.compress_size for i in trio}) == 1 and trio[0].compress_size < 200_000
    # The global byte order of the full names, computed here independently of the walk.
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))
    order = [n.removeprefix("order/") for n in names if n.startswith("order/") and n != "order/"]
    assert order[:6] == ["x-y", "x.y", "x/", "x/a-b", "x/a.b", "x/a/"]
    assert order.index("x/inner") < order.index("x0") < order.index("\u00e9t\u00e9/")
    assert inspect_zip(path).problems() == []


def test_collect_tree_order_is_the_global_byte_order(
    awkward: tuple[Path, dict[str, tuple[bytes, int]]],
) -> None:
    root, files = awkward
    names = [e.name for e in collect_tree(root)]
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))
    assert set(files) <= set(names) and len(names) == len(set(names))


def test_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    # 400 nested directories under a recursion limit of 300 (the test itself sits some 60
    # frames deep): a recursive walk raises RecursionError, the writer's explicit stack
    # does not. Lowering the limit keeps the tree shallow enough for pytest to delete.
    root = deep = tmp_path / "t"
    root.mkdir()
    for _ in range(400):
        deep = deep / "d"
        deep.mkdir()
    (deep / "leaf").write_bytes(b"at the bottom\n")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        result = write_zip(root, tmp_path / "deep.zip", threads=2, batch_files=50)
    finally:
        sys.setrecursionlimit(limit)
    with zipfile.ZipFile(result.path) as zf:
        assert zf.read("d/" * 400 + "leaf") == b"at the bottom\n"
        assert len(zf.namelist()) == 401
    assert result.file_count == 1


@pytest.mark.parametrize("change", ["same", "grew", "shrank"])
def test_a_file_is_read_to_its_end_whatever_size_the_walk_saw(tmp_path: Path, change: str) -> None:
    path = tmp_path / "f"
    content = bytes(range(256)) * 40
    path.write_bytes(content)
    seen = {"same": len(content), "grew": len(content) - 1000, "shrank": len(content) + 1000}
    assert zipper._read(str(path), seen[change]) == content


def test_the_bytes_are_pinned(tmp_path: Path) -> None:
    """A small fixed tree gives these exact bytes: on every machine, in every release.

    It fails when the compressor, its version or level, or any header field changes, so
    such a change is a deliberate one (it changes every layer's CodeSha256).
    """
    root = tmp_path / "t"
    rng = random.Random(RNG_SEED)
    members = {
        "python/sdk/__init__.py": (b"from .api import capture  # noqa\n" * 40, 0o644),
        "python/sdk/api.py": (b"def capture(event):\n    return event\n" * 90, 0o644),
        "python/sdk/empty.typed": (b"", 0o644),
        "python/sdk/blob.bin": (rng.randbytes(3000), 0o644),
        "extensions/sentry-lambda-extension": (b"#!/bin/sh\nexec relay run\n", 0o755),
    }
    for name, (content, mode) in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
        os.chmod(root / name, mode)
    one = write_zip(root, tmp_path / "1.zip", threads=1, source_date_epoch=1_700_000_000)
    two = write_zip(root, tmp_path / "2.zip", threads=2, batch_files=1)
    assert one.sha256 == "6d07c7f06c9c8797d4cae5a6243c9cac599bbe6db6c371284ae983eaf4fa6287"
    assert two.sha256 != one.sha256  # another timestamp: the pin is not trivially met
