"""Zips written byte by byte, for what the zip writer never makes (data descriptors, extra
fields in the local header only), and a file object that cannot seek."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

# 1980-01-01 00:00 in MS-DOS form, what the zipper writes by default.
DOS_TIME, DOS_DATE = 0, (0 << 9) | (1 << 5) | 1


def zip_by_hand(
    path: Path,
    name: str,
    data: bytes,
    *,
    local_extra: bytes = b"",
    central_extra: bytes = b"",
    flags: int = 0,
) -> Path:
    """One stored member, Unix-made, mode 0644, 1980 timestamp: every marker right except
    the extra fields asked for (zipfile cannot write a local-only extra field)."""
    crc = zlib.crc32(data)
    raw = name.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, DOS_TIME, DOS_DATE, crc, len(data), len(data),
        len(raw), len(local_extra),
    ) + raw + local_extra  # fmt: skip
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, flags, 0, DOS_TIME, DOS_DATE, crc,
        len(data), len(data), len(raw), len(central_extra), 0, 0, 0, 0o100644 << 16, 0,
    ) + raw + central_extra  # fmt: skip
    body = local + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(body), 0)
    path.write_bytes(body + central + end)
    return path


class Unseekable(io.RawIOBase):
    """A write-only stream zipfile cannot seek in, so it writes data descriptors."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.buffer += b
        return len(b)
