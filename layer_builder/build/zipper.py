"""Deterministic zip archives for Lambda layers, and a reader that checks them.

The same tree gives the same bytes on any machine, whatever the umask, file mtimes, build
directory, time zone or directory listing order. Choices, fixed so rebuilds stay identical:

* **Directory entries are included** (``name/``, mode ``0o40755``), like Info-ZIP ``zip -r``.
  Lambda does not need them, but they keep empty directories and give directories a fixed
  mode when someone runs ``unzip`` on the layer.
* **Symlinks are followed** when their target resolves inside the tree: the member is a
  regular file (or directory) with the target's content and exec bit. Lambda unpacks layers
  without preserving links, so a stored link could only be a surprise. A link that leaves
  the tree, dangles, or loops is an :class:`ArtifactError` naming the link.
* **Modes** are ``0o100755`` if the file has any exec bit, else ``0o100644``; "version made
  by" says Unix so ``unzip`` and Lambda restore them.
* **Compression**: raw DEFLATE from libdeflate 1.26 as bundled in PyPI ``deflate==0.9.0``
  (pinned exactly: deflate bytes are stable only for one implementation and version) at
  level 7. Level 7 is the lowest level whose output is no bigger than Info-ZIP's (zlib
  level 6) on both reference layers: level 6 is 0.16% bigger on the Node layer, level 7
  0.5% smaller, for about 25% more deflate time; level 8 costs 40% more than level 7 for
  another 0.5%. A file that deflate does not make smaller (always an empty one) is stored
  (method 0), as Info-ZIP does.
* **Speed** (see ``bench/README.md``): the tree is listed lazily in sorted order, so
  compressing starts with the first directory; consecutive members are packed in batches
  (local headers and data laid out by the worker, so the writer makes one write per
  batch); files are read with one ``open``/``read``/``close``; libdeflate and the reads
  run without the GIL; identical files are compressed once. None of it changes a byte:
  batches are written in order, whatever the thread count or batch size.
* **Nothing machine specific**: one timestamp for every member (``SOURCE_DATE_EPOCH``,
  in UTC), no extra fields, no comment, no data descriptors, internal attributes 0.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import logging
import os
import re
import struct
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import deflate

from layer_builder.build.ziptree import (  # re-exported: the tree walk was split out of here
    DIR_MODE,
    EXEC_MODE,
    FILE_MODE,
    Entry,
    collect_tree,
    iter_tree,
)
from layer_builder.errors import ArgumentError, ArtifactError, SizeLimitError
from layer_builder.fsutil import replacing

logger = logging.getLogger(__name__)

#: libdeflate level used for every layer; changing it changes every layer's bytes.
COMPRESSION_LEVEL = 7
#: 1980-01-01T00:00:00Z: the earliest DOS timestamp, and the default member time.
DOS_EPOCH_MIN = 315_532_800
#: 2107-12-31T23:59:58Z: the latest DOS timestamp.
DOS_EPOCH_MAX = calendar.timegm((2107, 12, 31, 23, 59, 58, 0, 0, 0))


__all__ = [
    "COMPRESSION_LEVEL",
    "DIR_MODE",
    "EXEC_MODE",
    "FILE_MODE",
    "Entry",
    "ZipResult",
    "collect_tree",
    "dos_date_time",
    "iter_tree",
    "resolve_source_date_epoch",
    "write_zip",
]

_MADE_BY = (3 << 8) | 20  # host system 3 (Unix) so readers honour the mode; spec 2.0
_NEEDS_DEFLATE = 20  # version needed for deflate and for directories
_NEEDS_STORE = 10
_FLAG_UTF8 = 0x800
_MSDOS_DIR = 0x10
# Sizes, offsets and counts must stay below these: the all-ones value means "see Zip64".
_MAX_U32 = 0xFFFFFFFF
_MAX_U16 = 0xFFFF
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
# The central record without its last field, the member's offset, which only the writer knows.
_CENTRAL_HEAD = struct.Struct(_CENTRAL.format[:-1])
_U32 = struct.Struct("<I")
_END = struct.Struct("<IHHHHIIH")
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50

# Compression runs ahead of the writer by at most this much input, so memory is bounded by
# the window (plus the largest single file), not by the size of the layer.
_WINDOW_BYTES = 64 * 1024 * 1024
_WINDOW_PER_THREAD = 4
#: A batch ends after this many members or once it holds this much input (see _batches).
BATCH_FILES = 64
BATCH_BYTES = 512 * 1024
_STORED, _DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
# Identical files are compressed once; this caps the contents kept to recognise them.
_SAME_CONTENT_BYTES = 64 * 1024 * 1024
_MAX_THREADS = 8


@dataclass(frozen=True)
class ZipResult:
    """What :func:`write_zip` produced."""

    path: Path
    sha256: str  #: hex digest of the zip
    code_sha256: str  #: base64 of the raw sha256 digest, as Lambda reports ``CodeSha256``
    zip_size: int
    unzipped_size: int  #: sum of the file sizes
    file_count: int  #: regular files (directory entries not counted)


@dataclass(frozen=True)
class _Batch:
    """Consecutive members, packed by a worker into their final local-header form."""

    blob: bytes  #: local headers, names and data, exactly as they go into the zip
    #: per member: the central record up to (not including) its offset field, the
    #: member's offset inside ``blob``, and its encoded name
    records: list[tuple[bytes, int, bytes]]
    unzipped_size: int
    file_count: int


def resolve_source_date_epoch(value: int | None = None) -> int:
    """Return the member timestamp: ``value``, else ``$SOURCE_DATE_EPOCH``, else 1980-01-01.

    An unparsable environment value is an ArgumentError: silently using another timestamp
    would give different bytes than the release engineer asked for. The result is clamped to
    the range a DOS timestamp can hold (1980..2107).
    """
    if value is None:
        raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if raw and not re.fullmatch(r"[0-9]+", raw):
            raise ArgumentError(
                f"SOURCE_DATE_EPOCH={raw!r} is not a whole, non-negative number of seconds"
            )
        value = int(raw) if raw else DOS_EPOCH_MIN
    clamped = min(max(value, DOS_EPOCH_MIN), DOS_EPOCH_MAX)
    if clamped != value:
        logger.info("SOURCE_DATE_EPOCH %d is outside the zip date range; using %d", value, clamped)
    return clamped


def dos_date_time(epoch: int) -> tuple[int, int]:
    """Return the ``(time, date)`` DOS fields for ``epoch``, computed in UTC."""
    # gmtime, never localtime: the bytes must not depend on the builder's time zone.
    t = time.gmtime(min(max(epoch, DOS_EPOCH_MIN), DOS_EPOCH_MAX))
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))  # honours CPU limits set on the process
    except AttributeError:  # macOS has no sched_getaffinity
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_THREADS))


def write_zip(
    root: Path,
    out: Path,
    *,
    source_date_epoch: int | None = None,
    level: int = COMPRESSION_LEVEL,
    threads: int | None = None,
    batch_files: int = BATCH_FILES,
    batch_bytes: int = BATCH_BYTES,
) -> ZipResult:
    """Zip the tree at ``root`` into ``out`` deterministically and atomically.

    Consecutive members are packed in batches (at most ``batch_files`` members or about
    ``batch_bytes`` of input each) by ``threads`` workers (default: the usable CPUs), and
    the batches are written strictly in sorted order, so neither the thread count nor the
    batch size changes a byte. ``out`` is replaced only once complete.
    Raises :class:`ArtifactError` for an unusable tree and :class:`SizeLimitError` when the
    archive would need Zip64.
    """
    if not 0 <= level <= 12:
        raise ValueError(f"compression level must be 0..12, not {level}")
    if batch_files < 1 or batch_bytes < 1:
        raise ValueError("batch_files and batch_bytes must be positive")
    dos_time, dos_date = dos_date_time(resolve_source_date_epoch(source_date_epoch))
    if out.resolve().is_relative_to(root.resolve()):
        raise ArtifactError(f"{out}: the zip must not be written inside the tree it zips ({root})")
    workers = threads if threads and threads > 0 else _default_threads()
    same = _SameContent(_SAME_CONTENT_BYTES)
    pack = partial(_pack_batch, level=level, dos_time=dos_time, dos_date=dos_date, same=same)
    # The walk is lazy: listing the tree overlaps with compressing what was listed first.
    batches = _batches(root, iter_tree(root), batch_files, batch_bytes)

    out.parent.mkdir(parents=True, exist_ok=True)
    # A release artifact is meant to be read by others: 0644 whatever the umask.
    with replacing(out, sync_file=True, mode=0o644) as stream:
        writer = _Writer(stream)
        if workers == 1:
            for batch in batches:
                writer.add(pack(batch))
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="zipper") as pool:
                for packed in _packed_in_order(batches, pool, pack, workers):
                    writer.add(packed)
        writer.finish()
    digest = writer.sha.digest()
    result = ZipResult(
        path=out,
        sha256=digest.hex(),
        code_sha256=base64.b64encode(digest).decode("ascii"),
        zip_size=writer.offset,
        unzipped_size=writer.unzipped_size,
        file_count=writer.file_count,
    )
    logger.info(
        "wrote %s: %d files, %d bytes (sha256 %s)",
        out,
        result.file_count,
        result.zip_size,
        result.sha256,
    )
    return result


def _batches(
    root: Path, entries: Iterable[Entry], max_files: int, max_bytes: int
) -> Iterator[list[Entry]]:
    """Cut the sorted members into consecutive runs of at most ``max_files`` members.

    A run also ends once it holds ``max_bytes`` of input, so a large file is a batch of
    its own and the CPUs share the work evenly. Batching saves the per-task cost of the
    thread pool (a future, two lock round trips) on every one of thousands of small files.
    Members that would need Zip64 are refused here, before anything is compressed.
    """
    current: list[Entry] = []
    size = 0
    for count, entry in enumerate(entries, 1):
        # Lambda's 250 MB limit makes Zip64 moot, so it is not written at all.
        if count >= _MAX_U16:
            raise SizeLimitError(f"{root}: {count} or more entries is too many without Zip64")
        if entry.size >= _MAX_U32:
            raise SizeLimitError(
                f"{root / entry.name}: {entry.size} bytes is too big without Zip64"
            )
        current.append(entry)
        size += entry.size
        if len(current) >= max_files or size >= max_bytes:
            yield current
            current, size = [], 0
    if current:
        yield current


def _packed_in_order(
    batches: Iterable[list[Entry]],
    pool: ThreadPoolExecutor,
    pack: Callable[[list[Entry]], _Batch],
    workers: int,
) -> Iterator[_Batch]:
    pending: deque[tuple[int, Future[_Batch]]] = deque()
    in_flight = 0
    for batch in batches:
        size = sum(e.size for e in batch)
        # Hand back the oldest results before submitting more, so the window stays bounded.
        while pending and (
            len(pending) >= workers * _WINDOW_PER_THREAD or in_flight + size > _WINDOW_BYTES
        ):
            done_size, future = pending.popleft()
            in_flight -= done_size
            yield future.result()
        pending.append((size, pool.submit(pack, batch)))
        in_flight += size
    while pending:
        yield pending.popleft()[1].result()


def _read(path: str, size: int) -> bytes:
    """The whole file in as few system calls as possible (open, one read, close).

    Asking for one byte more than the walk saw tells a file that grew from one that did
    not; any other length (shrunk, or a short read) reads on to the end of the file.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, size + 1)
            if len(data) != size:
                chunks = [data]
                while chunk := os.read(fd, max(size, 1 << 20)):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) >= _MAX_U32:
        raise SizeLimitError(f"{path}: {len(data)} bytes is too big without Zip64")
    return data


class _SameContent:
    """Compressed data of the files already packed, so identical files are deflated once.

    A layer repeats files (``.d.ts``/``.d.mts``/``.d.cts`` triples, vendored copies): 952 of
    the Node layer's 7,013 files, 2.5 MB. libdeflate gives the same output for the same
    input and level, so reusing it changes no byte. A hit is looked up by size and CRC and
    confirmed by comparing the contents; the cache holds at most ``budget`` bytes.
    """

    def __init__(self, budget: int) -> None:
        self._seen: dict[tuple[int, int], tuple[bytes, int, bytes | bytearray]] = {}
        self._budget = budget
        self._lock = threading.Lock()

    def get(self, raw: bytes, crc: int) -> tuple[int, bytes | bytearray] | None:
        hit = self._seen.get((len(raw), crc))
        if hit is not None and hit[0] == raw:
            return hit[1], hit[2]
        return None

    def put(self, raw: bytes, crc: int, method: int, data: bytes | bytearray) -> None:
        cost = len(raw) + (len(data) if data is not raw else 0)
        with self._lock:
            if cost <= self._budget:
                self._budget -= cost
                self._seen.setdefault((len(raw), crc), (raw, method, data))


def _pack_batch(
    batch: list[Entry], *, level: int, dos_time: int, dos_date: int, same: _SameContent
) -> _Batch:
    """Read, checksum and compress ``batch``, and lay out its local headers and data.

    Runs on a worker thread: libdeflate and the reads release the GIL, and doing the
    header packing here too leaves the writer one write per batch.
    """
    parts: list[bytes | bytearray] = []
    records: list[tuple[bytes, int, bytes]] = []
    offset = unzipped = files = 0
    data: bytes | bytearray
    for entry in batch:
        name = entry.name.encode("utf-8")
        if entry.mode == DIR_MODE:
            crc = size = 0
            method, data = _STORED, b""
            needs, external = _NEEDS_DEFLATE, (DIR_MODE << 16) | _MSDOS_DIR
        else:
            raw = _read(entry.source, entry.size)
            crc, size = deflate.crc32(raw), len(raw)
            hit = same.get(raw, crc)
            if hit is not None:
                method, data = hit
            else:
                method, data = _STORED, raw
                # A file that deflate does not make smaller (always an empty one) is stored.
                if raw:
                    compressed = deflate.deflate_compress(raw, level)  # GIL released
                    if len(compressed) < size:
                        method, data = _DEFLATED, compressed
                same.put(raw, crc, method, data)
            needs = _NEEDS_DEFLATE if method == _DEFLATED else _NEEDS_STORE
            external = entry.mode << 16
            unzipped += size
            files += 1
        # Bit 11 only when needed: ASCII names then look exactly like Info-ZIP's.
        flags = 0 if name.isascii() else _FLAG_UTF8
        fields = (method, dos_time, dos_date, crc, len(data), size, len(name))
        local = _LOCAL.pack(_LOCAL_SIG, needs, flags, *fields, 0)
        central = _CENTRAL_HEAD.pack(
            _CENTRAL_SIG, _MADE_BY, needs, flags, *fields, 0, 0, 0, 0, external
        )
        records.append((central, offset, name))
        parts += (local, name, data)
        offset += len(local) + len(name) + len(data)
    return _Batch(b"".join(parts), records, unzipped, files)


class _Writer:
    """Writes the packed batches as they come, then the central directory."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._central: list[bytes] = []
        self.sha = hashlib.sha256()
        self.offset = 0
        self.unzipped_size = 0
        self.file_count = 0

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self.sha.update(data)
        self.offset += len(data)

    def add(self, batch: _Batch) -> None:
        base = self.offset
        if base + len(batch.blob) >= _MAX_U32:
            last = batch.records[-1][2].decode("utf-8")
            raise SizeLimitError(f"{last}: the zip would exceed 4 GiB (Zip64 needed)")
        self._central += [head + _U32.pack(base + rel) + name for head, rel, name in batch.records]
        self._write(batch.blob)
        self.unzipped_size += batch.unzipped_size
        self.file_count += batch.file_count

    def finish(self) -> None:
        start = self.offset
        self._write(b"".join(self._central))
        size = self.offset - start
        if self.offset >= _MAX_U32:
            raise SizeLimitError("the zip's central directory would pass 4 GiB (Zip64 needed)")
        count = len(self._central)
        self._write(_END.pack(_END_SIG, 0, 0, count, count, size, start, 0))
