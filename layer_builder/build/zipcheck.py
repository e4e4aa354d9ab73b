"""Read a layer zip back and report the markers of a deterministic, safe archive.

Used by ``verify`` and by tests; reading is done by the stdlib :mod:`zipfile`, with one look
at each local header because zipfile does not expose the local extra fields that Info-ZIP
and others write there.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

from layer_builder.build.zipper import _LOCAL, _LOCAL_SIG
from layer_builder.errors import ArtifactError


@dataclass(frozen=True)
class ZipEntryInfo:
    """One member of an inspected zip."""

    name: str
    mode: int  #: Unix ``st_mode`` from the external attributes (0 if none recorded)
    is_dir: bool
    size: int
    compressed_size: int
    compress_type: int
    date_time: tuple[int, int, int, int, int, int]
    has_extra: bool  #: an extra field in the central or the local header
    create_system: int  #: 3 = Unix, 0 = MS-DOS
    has_data_descriptor: bool


@dataclass(frozen=True)
class ZipInspection:
    """A zip read back, with the markers of a deterministic, safe archive."""

    path: Path
    entries: tuple[ZipEntryInfo, ...]
    zip_size: int
    sha256: str
    code_sha256: str
    has_comment: bool
    timestamps_equal: bool
    entries_sorted: bool
    unsafe_names: tuple[str, ...]  #: absolute, drive-letter or ``..`` paths
    duplicate_names: tuple[str, ...]

    @property
    def unzipped_size(self) -> int:
        """Sum of the members' uncompressed sizes."""
        return sum(e.size for e in self.entries)

    @property
    def no_extra_fields(self) -> bool:
        """No member carries an extra field (uid/gid, extended timestamps...)."""
        return not any(e.has_extra for e in self.entries)

    @property
    def safe_paths(self) -> bool:
        """No member would land outside the extraction directory or overwrite another."""
        return not self.unsafe_names and not self.duplicate_names

    @property
    def is_deterministic(self) -> bool:
        """All markers of a reproducible build are present (see :meth:`problems`)."""
        return not self.determinism_problems()

    def determinism_problems(self) -> list[str]:
        """Why the zip would not come out byte-identical from another machine or time."""
        found: list[str] = []
        if not self.timestamps_equal:
            found.append("members have different timestamps")
        if not self.entries_sorted:
            found.append("members are not sorted by name")
        extra = [e.name for e in self.entries if e.has_extra]
        if extra:
            found.append(
                f"extra fields (timestamps, uid/gid) on {len(extra)} members, e.g. {extra[0]}"
            )
        if any(e.has_data_descriptor for e in self.entries):
            found.append("data descriptors are used")
        if any(e.create_system != 3 for e in self.entries):
            found.append("some members were not made on Unix, so modes are not recorded")
        if self.has_comment:
            found.append("the archive has a comment")
        return found

    def problems(self) -> list[str]:
        """Every determinism and path-safety problem, human-readable; empty if none."""
        found = self.determinism_problems()
        if self.unsafe_names:
            found.append(f"unsafe member names: {', '.join(self.unsafe_names)}")
        if self.duplicate_names:
            found.append(f"duplicate member names: {', '.join(self.duplicate_names)}")
        return found


def _is_unsafe_name(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return True
    return ".." in re.split(r"[/\\]", name)


def inspect_zip(path: Path, *, check_crc: bool = True) -> ZipInspection:
    """Read ``path`` with :mod:`zipfile` and report its members and determinism markers.

    With ``check_crc`` every member is decompressed and its CRC checked. Raises
    :class:`ArtifactError` naming ``path`` if the file is missing or not a valid zip.
    """
    try:
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
            zip_size = fh.tell()
            with zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
                local_extra = [_local_extra_length(fh, info) for info in infos]
                bad = zf.testzip() if check_crc else None
                comment = zf.comment
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: not a valid zip: {exc}") from exc
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        NotImplementedError,  # an unsupported compression method or encryption
        ValueError,  # e.g. a name flagged UTF-8 that does not decode
    ) as exc:
        raise ArtifactError(f"{path}: not a valid zip: {exc}") from exc
    if bad is not None:
        raise ArtifactError(f"{path}: not a valid zip: {bad}: CRC mismatch")

    entries = tuple(
        ZipEntryInfo(
            name=info.filename,
            mode=info.external_attr >> 16,
            is_dir=info.is_dir(),
            size=info.file_size,
            compressed_size=info.compress_size,
            compress_type=info.compress_type,
            date_time=info.date_time,
            has_extra=bool(info.extra) or extra > 0,
            create_system=info.create_system,
            has_data_descriptor=bool(info.flag_bits & 0x08),
        )
        for info, extra in zip(infos, local_extra, strict=True)
    )
    names = [e.name for e in entries]
    keys = [n.encode("utf-8") for n in names]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    digest = sha.digest()
    return ZipInspection(
        path=path,
        entries=entries,
        zip_size=zip_size,
        sha256=digest.hex(),
        code_sha256=base64.b64encode(digest).decode("ascii"),
        has_comment=bool(comment),
        timestamps_equal=len({e.date_time for e in entries}) <= 1,
        entries_sorted=all(a <= b for a, b in pairwise(keys)),
        unsafe_names=tuple(n for n in names if _is_unsafe_name(n)),
        duplicate_names=tuple(duplicates),
    )


def _local_extra_length(fh: BinaryIO, info: zipfile.ZipInfo) -> int:
    # zipfile exposes only the central directory's extra field; Info-ZIP and others write
    # a different one (e.g. with access times) into the local header, so look there too.
    fh.seek(info.header_offset)
    header = fh.read(_LOCAL.size)
    if len(header) != _LOCAL.size or _LOCAL.unpack(header)[0] != _LOCAL_SIG:
        raise ArtifactError(f"{info.filename}: bad local header")
    return int(_LOCAL.unpack(header)[-1])
