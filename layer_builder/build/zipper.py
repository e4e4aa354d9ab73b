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
* **Compression**: raw DEFLATE from the pinned libdeflate (PyPI ``deflate``) at level 6,
  which is as small as zlib 6 and about twice as fast (see FACTS.md). A file that deflate
  does not make smaller (always an empty one) is stored (method 0), as Info-ZIP does.
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
import stat
import struct
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import deflate

from layer_builder.errors import ArgumentError, ArtifactError, SizeLimitError

logger = logging.getLogger(__name__)

#: libdeflate level used for every layer; changing it changes every layer's bytes.
COMPRESSION_LEVEL = 6
#: 1980-01-01T00:00:00Z: the earliest DOS timestamp, and the default member time.
DOS_EPOCH_MIN = 315_532_800
#: 2107-12-31T23:59:58Z: the latest DOS timestamp.
DOS_EPOCH_MAX = calendar.timegm((2107, 12, 31, 23, 59, 58, 0, 0, 0))

FILE_MODE = 0o100644
EXEC_MODE = 0o100755
DIR_MODE = 0o040755

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
_END = struct.Struct("<IHHHHIIH")
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50

# Compression runs ahead of the writer by at most this much input, so memory is bounded by
# the window (plus the largest single file), not by the size of the layer.
_WINDOW_BYTES = 64 * 1024 * 1024
_WINDOW_PER_THREAD = 8
_MAX_THREADS = 8
_KINDS = {
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


@dataclass(frozen=True)
class Entry:
    """One archive member as found in the tree."""

    name: str  #: POSIX path relative to the root; directories end with ``/``
    source: Path  #: what to read (the resolved target for a followed symlink)
    mode: int  #: Unix mode stored in the archive
    size: int  #: size when the tree was walked (0 for directories)

    @property
    def is_dir(self) -> bool:
        """True for a directory entry."""
        return self.name.endswith("/")


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
class _Packed:
    crc: int
    size: int
    method: int
    data: bytes | bytearray


_DIR_PACKED = _Packed(0, 0, zipfile.ZIP_STORED, b"")


def collect_tree(root: Path) -> list[Entry]:
    """Walk ``root`` and return its members sorted by the UTF-8 bytes of their names.

    Raises :class:`ArtifactError` for symlinks leaving the tree, dangling or looping, for
    fifos, sockets and devices, and for names that are not valid UTF-8.
    """
    try:
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ArtifactError(f"{root}: cannot read the layer tree: {exc}") from exc
    if not real_root.is_dir():
        raise ArtifactError(f"{root}: the layer tree is not a directory")
    entries: list[Entry] = []
    _walk(root, real_root, real_root, "", (real_root,), entries)
    # Sorting the whole list (not each directory) gives one global byte order, the same
    # order inspect_zip() checks, whatever order the file system lists names in.
    entries.sort(key=lambda e: e.name.encode("utf-8"))
    return entries


def _walk(
    shown: Path,
    real_dir: Path,
    real_root: Path,
    prefix: str,
    stack: tuple[Path, ...],
    out: list[Entry],
) -> None:
    try:
        with os.scandir(real_dir) as it:
            children = list(it)
    except OSError as exc:
        raise ArtifactError(f"{shown}: cannot list directory: {exc.strerror}") from exc
    for child in children:
        rel = prefix + child.name
        path = shown / child.name  # the path as the user knows it, for messages
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ArtifactError(f"{path}: file name is not valid UTF-8") from exc
        source = Path(child.path)
        try:
            st = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                source = _resolve_link(path, source, real_root)
                st = source.stat()
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot stat: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode):
            if source in stack:
                raise ArtifactError(f"{path}: symlink loop (points to its ancestor {source})")
            out.append(Entry(rel + "/", source, DIR_MODE, 0))
            _walk(path, source, real_root, rel + "/", (*stack, source), out)
        elif stat.S_ISREG(st.st_mode):
            mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
            out.append(Entry(rel, source, mode, st.st_size))
        else:
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), f"mode {st.st_mode:o}")
            raise ArtifactError(
                f"{path}: unsupported file type ({kind}); a layer may hold only "
                "regular files, directories and symlinks to them"
            )


def _resolve_link(shown: Path, link: Path, real_root: Path) -> Path:
    try:
        target_text = os.readlink(link)
    except OSError:
        target_text = "?"
    try:
        target = link.resolve(strict=True)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{shown}: dangling symlink (-> {target_text})") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: loop, before Python 3.13
        raise ArtifactError(f"{shown}: cannot resolve symlink (-> {target_text}): {exc}") from exc
    if not target.is_relative_to(real_root):
        raise ArtifactError(
            f"{shown}: symlink points outside the layer tree (-> {target_text}); "
            "copy the file into the tree instead"
        )
    return target


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
) -> ZipResult:
    """Zip the tree at ``root`` into ``out`` deterministically and atomically.

    Files are compressed concurrently by ``threads`` workers (default: the usable CPUs)
    but written strictly in sorted order. ``out`` is replaced only once complete.
    Raises :class:`ArtifactError` for an unusable tree and :class:`SizeLimitError` when the
    archive would need Zip64.
    """
    if not 0 <= level <= 12:
        raise ValueError(f"compression level must be 0..12, not {level}")
    dos_time, dos_date = dos_date_time(resolve_source_date_epoch(source_date_epoch))
    entries = collect_tree(root)
    if out.resolve().is_relative_to(root.resolve()):
        raise ArtifactError(f"{out}: the zip must not be written inside the tree it zips ({root})")
    # Refuse early what would need Zip64 (Lambda's 250 MB limit makes it moot anyway).
    if len(entries) >= _MAX_U16:
        raise SizeLimitError(f"{root}: {len(entries)} entries is too many without Zip64")
    big = next((e for e in entries if e.size >= _MAX_U32), None)
    if big is not None:
        raise SizeLimitError(f"{root / big.name}: {big.size} bytes is too big without Zip64")
    workers = threads if threads and threads > 0 else _default_threads()

    out.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file sits beside the target so os.replace() is an atomic rename.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            writer = _Writer(stream, dos_time, dos_date)
            with ThreadPoolExecutor(workers, thread_name_prefix="zipper") as pool:
                for entry, packed in _packed_in_order(entries, pool, level, workers):
                    writer.add(entry, packed)
            writer.finish()
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates 0600; a release artifact is meant to be read by others.
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def _packed_in_order(
    entries: list[Entry], pool: ThreadPoolExecutor, level: int, workers: int
) -> Iterator[tuple[Entry, _Packed]]:
    pending: deque[tuple[Entry, Future[_Packed] | None]] = deque()
    in_flight = 0
    for entry in entries:
        # Hand back the oldest results before submitting more, so the window stays bounded.
        while pending and (
            len(pending) >= workers * _WINDOW_PER_THREAD or in_flight + entry.size > _WINDOW_BYTES
        ):
            done, future = pending.popleft()
            in_flight -= done.size
            yield done, future.result() if future else _DIR_PACKED
        pending.append((entry, None if entry.is_dir else pool.submit(_pack, entry, level)))
        in_flight += entry.size
    while pending:
        done, future = pending.popleft()
        yield done, future.result() if future else _DIR_PACKED


def _pack(entry: Entry, level: int) -> _Packed:
    try:
        data = entry.source.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{entry.source}: cannot read: {exc.strerror}") from exc
    if len(data) >= _MAX_U32:
        raise SizeLimitError(f"{entry.source}: {len(data)} bytes is too big without Zip64")
    crc = deflate.crc32(data)
    if data:
        compressed = deflate.deflate_compress(data, level)  # raw DEFLATE, releases the GIL
        if len(compressed) < len(data):
            return _Packed(crc, len(data), zipfile.ZIP_DEFLATED, compressed)
    return _Packed(crc, len(data), zipfile.ZIP_STORED, data)


class _Writer:
    """Writes local headers and data as they come, then the central directory."""

    def __init__(self, stream: BinaryIO, dos_time: int, dos_date: int) -> None:
        self._stream = stream
        self._time = dos_time
        self._date = dos_date
        self._central: list[bytes] = []
        self.sha = hashlib.sha256()
        self.offset = 0
        self.unzipped_size = 0
        self.file_count = 0

    def _write(self, data: bytes | bytearray) -> None:
        self._stream.write(data)
        self.sha.update(data)
        self.offset += len(data)

    def add(self, entry: Entry, packed: _Packed) -> None:
        name = entry.name.encode("utf-8")
        # Bit 11 only when needed: ASCII names then look exactly like Info-ZIP's.
        flags = 0 if name.isascii() else _FLAG_UTF8
        deflated = packed.method == zipfile.ZIP_DEFLATED
        needs = _NEEDS_DEFLATE if deflated or entry.is_dir else _NEEDS_STORE
        header_offset = self.offset
        if header_offset + len(packed.data) >= _MAX_U32:
            raise SizeLimitError(f"{entry.name}: the zip would exceed 4 GiB (Zip64 needed)")
        fields = (
            packed.method,
            self._time,
            self._date,
            packed.crc,
            len(packed.data),
            packed.size,
            len(name),
        )
        self._write(_LOCAL.pack(_LOCAL_SIG, needs, flags, *fields, 0))
        self._write(name)
        self._write(packed.data)
        external = (entry.mode << 16) | (_MSDOS_DIR if entry.is_dir else 0)
        self._central.append(
            _CENTRAL.pack(
                _CENTRAL_SIG, _MADE_BY, needs, flags, *fields, 0, 0, 0, 0, external, header_offset
            )
            + name
        )
        if not entry.is_dir:
            self.file_count += 1
            self.unzipped_size += packed.size

    def finish(self) -> None:
        start = self.offset
        for record in self._central:
            self._write(record)
        size = self.offset - start
        if self.offset >= _MAX_U32:
            raise SizeLimitError("the zip's central directory would pass 4 GiB (Zip64 needed)")
        count = len(self._central)
        self._write(_END.pack(_END_SIG, 0, 0, count, count, size, start, 0))
