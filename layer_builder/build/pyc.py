"""Reading ``.pyc`` headers and checking them against their sources, for ``verify``.

A hash-based ``.pyc`` (PEP 552) records ``_imp.source_hash(MAGIC, source)``: a SipHash of
the source keyed with the 4 magic bytes of the Python version that wrote it. CPython 3.7-3.10
use SipHash-2-4 for it, 3.11 and newer SipHash-1-3, so checking a layer for several runtimes
from one interpreter needs both: the running interpreter's own variant through ``_imp`` (C),
the other one here in Python.
"""

from __future__ import annotations

import _imp
import struct
import sys
from dataclasses import dataclass

_MASK = (1 << 64) - 1
#: The first magic number of Python 3.11, the first version keying with SipHash-1-3.
_SIPHASH13_FROM = 3450
_OWN_ROUNDS = (1, 3) if sys.version_info >= (3, 11) else (2, 4)
#: Magic numbers (first two bytes of a .pyc, little-endian) per CPython version, as blocks
#: the CPython project assigns them: (first magic, X.Y). 3.11 on get a block of 50 each.
_MAGIC_BLOCKS = ((3390, "3.7"), (3400, "3.8"), (3420, "3.9"), (3430, "3.10"))


def python_of_magic(magic: int) -> str | None:
    """The CPython ``X.Y`` that writes ``.pyc`` files with this magic number."""
    if magic >= _SIPHASH13_FROM:
        return f"3.{11 + (magic - _SIPHASH13_FROM) // 50}"
    found = None
    for first, version in _MAGIC_BLOCKS:
        if magic >= first:
            found = version
    return found


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    return v0, v1, _rotl(v2, 32), v3


def siphash(k0: int, k1: int, data: bytes, c_rounds: int, d_rounds: int) -> int:
    """SipHash-c-d of ``data`` with the 128-bit key ``k0 || k1`` (as CPython's pyhash.c)."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    whole = len(data) // 8 * 8
    tail = data[whole:] + bytes(7 - len(data) % 8)
    last = (len(data) & 0xFF) << 56 | int.from_bytes(tail, "little")
    words = [*struct.unpack(f"<{whole // 8}Q", data[:whole]), last]
    for m in words:
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def source_hash(magic: bytes, source: bytes) -> bytes:
    """What the Python version that writes ``magic`` records for ``source`` in a .pyc."""
    key = int.from_bytes(magic[:4], "little")
    number = int.from_bytes(magic[:2], "little")
    rounds = (1, 3) if number >= _SIPHASH13_FROM else (2, 4)
    if rounds == _OWN_ROUNDS:
        return bytes(_imp.source_hash(key, source))
    return siphash(key, 0, source, *rounds).to_bytes(8, "little")


@dataclass(frozen=True)
class PycHeader:
    magic: bytes
    hash_based: bool
    check_source: bool
    recorded: bytes  # the source hash (hash-based) or mtime + size (timestamp-based)

    @property
    def python(self) -> str | None:
        return python_of_magic(int.from_bytes(self.magic[:2], "little"))


def read_header(data: bytes) -> PycHeader | None:
    """The PEP 552 header of a .pyc (Python 3.7+), or None when it is not one."""
    if len(data) < 16 or data[2:4] != b"\r\n":
        return None
    flags = int.from_bytes(data[4:8], "little")
    return PycHeader(data[:4], bool(flags & 1), bool(flags & 2), data[8:16])


def source_of(name: str) -> tuple[str, str] | None:
    """``pkg/__pycache__/mod.cpython-312.pyc`` -> (``pkg/mod.py``, ``3.12``); None for a .pyc
    outside ``__pycache__`` or with another implementation's tag."""
    head, sep, file = name.rpartition("__pycache__/")
    if not sep or "/" in file or not file.endswith(".pyc"):
        return None
    parts = file[: -len(".pyc")].split(".")
    if len(parts) < 2 or not parts[1].startswith("cpython-3"):
        return None
    minor = parts[1][len("cpython-3") :]
    return f"{head}{parts[0]}.py", f"3.{minor}"


def check(name: str, data: bytes, source: bytes | None) -> str | None:
    """Why the ``__pycache__`` member ``name`` (bytes ``data``) does not match its source
    (``None``: the zip has no such source), or None when it does."""
    where = source_of(name)
    if where is None:
        return None
    src, tag_python = where
    header = read_header(data)
    if header is None:
        return "is not a Python 3.7+ .pyc file"
    if header.python != tag_python:
        return (
            f"holds bytecode of Python {header.python or 'unknown'}, not {tag_python}: "
            "the importer ignores it and compiles the source on every cold start"
        )
    if source is None:
        return f"has no source {src} beside it: the importer never reads it"
    if not header.hash_based:
        return (
            "records its source's mtime, not its hash: it cannot be checked against "
            f"{src}, and whether Lambda uses it depends on the extracted mtimes"
        )
    if header.recorded == source_hash(header.magic, source):
        return None
    if header.check_source:
        return (
            f"was compiled from another {src} than the one in the zip (checked-hash): "
            "ignored at import, so it is compiled from source on every cold start"
        )
    return (
        f"was compiled from another {src} than the one in the zip (unchecked-hash): "
        "Lambda would run the old code, not the source in the zip"
    )
