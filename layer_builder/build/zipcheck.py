"""Read a layer zip back and report the markers of a deterministic, safe archive.

Used by ``verify`` and by tests; reading is done by the stdlib :mod:`zipfile`, with one look
at each local header because zipfile does not expose the local extra fields that Info-ZIP
and others write there.
"""

from __future__ import annotations

import base64
import hashlib
import re
import stat
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

from layer_builder.aws.facts import MAX_UNZIPPED_BYTES
from layer_builder.build.zipper import _LOCAL, _LOCAL_SIG
from layer_builder.errors import ArtifactError

#: Directory levels and bytes a member name may have: a Node layer's deepest paths have about
#: 15 levels; Linux's PATH_MAX (4096) bounds /opt/ + the name.
MAX_MEMBER_DEPTH = 100
MAX_MEMBER_PATH = 4000
#: A symlink member's target is read only up to this length (a path, not data).
_MAX_LINK_TARGET = 4096


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
    links: tuple[tuple[str, str], ...] = ()  #: (member, target) of every symlink member

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

    def unpack_problems(self) -> list[str]:
        """Why unpacking this zip could touch anything outside the directory it goes to, or
        could not give what Lambda gives: unsafe or duplicate names, symlinks leaving the tree
        (or members reached through a symlink), members that are neither files, directories
        nor symlinks, set-id bits, and more unzipped bytes than Lambda allows. Checked before
        anything is unpacked (``smoke``); ``verify`` reports the same through its own checks.
        """
        found = []
        if self.unsafe_names:
            found.append(f"unsafe member names: {_shown(self.unsafe_names)}")
        if self.duplicate_names:
            found.append(f"duplicate member names: {_shown(self.duplicate_names)}")
        escaping = link_escapes(self.links, [e.name for e in self.entries])
        if escaping:
            found.append(f"symlinks leaving the layer or followed by members: {_shown(escaping)}")
        deep = [
            e.name
            for e in self.entries
            if e.name.count("/") > MAX_MEMBER_DEPTH or len(e.name.encode()) > MAX_MEMBER_PATH
        ]
        if deep:
            found.append(
                f"members nested deeper than {MAX_MEMBER_DEPTH} directories or longer than "
                f"{MAX_MEMBER_PATH:,} bytes (no layer needs that; /opt/ + it must fit "
                f"Linux's PATH_MAX): {_shown([d[:60] + '...' for d in deep])}"
            )
        odd = [e.name for e in self.entries if _odd_mode(e.mode)]
        if odd:
            found.append(f"members that are devices, pipes or set-id files: {_shown(odd)}")
        if self.unzipped_size > MAX_UNZIPPED_BYTES:
            found.append(
                f"{self.unzipped_size:,} bytes unzipped; Lambda allows {MAX_UNZIPPED_BYTES:,} "
                "for a function and its layers"
            )
        return found

    def problems(self) -> list[str]:
        """Every determinism and path-safety problem, human-readable; empty if none."""
        found = self.determinism_problems()
        if self.unsafe_names:
            found.append(f"unsafe member names: {', '.join(self.unsafe_names)}")
        if self.duplicate_names:
            found.append(f"duplicate member names: {', '.join(self.duplicate_names)}")
        return found


class _Refused(ArtifactError):
    """A readable zip that no check needs to look into further (e.g. encrypted)."""


def _shown(names: tuple[str, ...] | list[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more


def _odd_mode(mode: int) -> bool:
    """A member Lambda's unpacking or ours should not create: not a file, directory or
    symlink, or carrying setuid/setgid/sticky bits (mode 0: no Unix mode recorded, a file)."""
    kind = stat.S_IFMT(mode)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
        return True
    return bool(mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX))


def link_escapes(links: tuple[tuple[str, str], ...], names: list[str]) -> list[str]:
    """Symlink members whose target leaves the tree, goes through another symlink, is
    absolute or empty, and members whose path runs through a symlink member."""
    linked = {name.rstrip("/") for name, _ in links}
    bad = []
    for name, target in links:
        if not target or target.startswith("/") or "\0" in target:
            bad.append(f"{name} -> {target}")
            continue
        parts: list[str] = name.rstrip("/").split("/")[:-1]
        for i, part in enumerate(target.split("/")):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    bad.append(f"{name} -> {target}")
                    break
                parts.pop()
                continue
            parts.append(part)
            if "/".join(parts) in linked and i < len(target.split("/")) - 1:
                bad.append(f"{name} -> {target} (through a symlink)")
                break
    for name in names:
        parents = name.rstrip("/").split("/")[:-1]
        if any("/".join(parents[: i + 1]) in linked for i in range(len(parents))):
            bad.append(f"{name} (under a symlink)")
    return bad


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
                encrypted = [i.filename for i in infos if i.flag_bits & 0x1]
                if encrypted:
                    raise _Refused(
                        f"{path}: encrypted member(s) {_shown(encrypted)}; Lambda cannot "
                        "unpack an encrypted zip"
                    )
                local_extra = [_local_extra_length(fh, info) for info in infos]
                # A zip claiming more than Lambda allows fails on that alone (verify and smoke
                # report it); decompressing it first would let a zip bomb fill the memory.
                declared = sum(i.file_size for i in infos)
                bad = zf.testzip() if check_crc and declared <= MAX_UNZIPPED_BYTES else None
                links = tuple(
                    (i.filename, _link_target(zf, i))
                    for i in infos
                    if stat.S_ISLNK(i.external_attr >> 16)
                )
                comment = zf.comment
    except _Refused:
        raise
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
        links=links,
    )


def _link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > _MAX_LINK_TARGET:
        return "\0(too long)"
    with zf.open(info) as member:
        data = member.read(_MAX_LINK_TARGET + 1)
    return data.decode("utf-8", errors="replace")


def _local_extra_length(fh: BinaryIO, info: zipfile.ZipInfo) -> int:
    # zipfile exposes only the central directory's extra field; Info-ZIP and others write
    # a different one (e.g. with access times) into the local header, so look there too.
    fh.seek(info.header_offset)
    header = fh.read(_LOCAL.size)
    if len(header) != _LOCAL.size or _LOCAL.unpack(header)[0] != _LOCAL_SIG:
        raise ArtifactError(f"{info.filename}: bad local header")
    return int(_LOCAL.unpack(header)[-1])
