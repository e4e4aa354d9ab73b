"""Tiny ELF files for tests: a valid header and one program header, nothing to execute.

Usage (the tests directory is on ``sys.path``)::

    from elf_fixtures import make_elf
    make_elf("arm64")                       # 64-bit little-endian ET_EXEC for aarch64
    make_elf("x86_64", executable=False)    # ET_REL: a relocatable object, not runnable
    make_elf("x86_64", kind="shared")       # ET_DYN (PIE executables and .so files)
    make_elf("x86_64", bits=32)             # 32-bit class
    make_elf("x86_64", machine=3)           # any e_machine (3: i386)

``write_elf(path, arch, **kw)`` writes one to disk with mode 0755.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Literal

MACHINES = {"x86_64": 62, "arm64": 183, "aarch64": 183, "i386": 3, "arm": 40}
_TYPES = {"exec": 2, "shared": 3, "relocatable": 1, "core": 4}

NOT_ELF = b"#!/bin/sh\necho this is a shell script, not an ELF file\n"


def make_elf(
    arch: str,
    *,
    executable: bool = True,
    kind: Literal["exec", "shared", "relocatable", "core"] | None = None,
    bits: Literal[32, 64] = 64,
    big_endian: bool = False,
    machine: int | None = None,
    payload: bytes = b"",
) -> bytes:
    """The bytes of a minimal ELF file for ``arch`` (x86_64, arm64/aarch64, i386, arm).

    ``executable=False`` gives ET_REL unless ``kind`` says otherwise. ``payload`` is appended
    after the headers, so tests can make files of different contents (and sha256) per arch.
    """
    e_type = _TYPES[kind or ("exec" if executable else "relocatable")]
    e_machine = MACHINES[arch] if machine is None else machine
    order = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 2 if big_endian else 1, 1, 0]) + bytes(8)
    if bits == 64:
        ehsize, phentsize = 64, 56
        header = ident + struct.pack(
            order + "HHIQQQIHHHHHH",
            e_type,
            e_machine,
            1,
            0x400000,
            ehsize,
            0,
            0,
            ehsize,
            phentsize,
            1,
            0,
            0,
            0,
        )
        # One PT_LOAD covering the file, read + execute.
        phdr = struct.pack(order + "IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 0, 0, 0x1000)
    else:
        ehsize, phentsize = 52, 32
        header = ident + struct.pack(
            order + "HHIIIIIHHHHHH",
            e_type,
            e_machine,
            1,
            0x8048000,
            ehsize,
            0,
            0,
            ehsize,
            phentsize,
            1,
            0,
            0,
            0,
        )
        phdr = struct.pack(order + "IIIIIIII", 1, 0, 0x8048000, 0x8048000, 0, 0, 5, 0x1000)
    return header + phdr + payload


def write_elf(path: Path, arch: str, **kwargs: object) -> Path:
    """Write ``make_elf(arch, **kwargs)`` to ``path`` (mode 0755) and return the path."""
    path.write_bytes(make_elf(arch, **kwargs))  # type: ignore[arg-type]
    path.chmod(0o755)
    return path
