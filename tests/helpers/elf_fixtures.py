"""Tiny ELF files for tests: a valid header and one program header, nothing to execute.

Usage ::

    from tests.helpers.elf_fixtures import make_elf
    make_elf("arm64")                       # 64-bit little-endian ET_EXEC for aarch64
    make_elf("x86_64", executable=False)    # ET_REL: a relocatable object, not runnable
    make_elf("x86_64", kind="shared")       # ET_DYN without interpreter or PIE flag: a .so
    make_elf("x86_64", kind="pie")          # ET_DYN with PT_INTERP: a dynamically linked PIE
    make_elf("x86_64", kind="static-pie")   # ET_DYN with DT_FLAGS_1 = DF_1_PIE, no PT_INTERP
    make_elf("x86_64", bits=32)             # 32-bit class
    make_elf("x86_64", machine=3)           # any e_machine (3: i386)

``write_elf(path, arch, **kw)`` writes one to disk with mode 0755.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Literal

MACHINES = {"x86_64": 62, "arm64": 183, "aarch64": 183, "i386": 3, "arm": 40}
_TYPES = {"exec": 2, "shared": 3, "pie": 3, "static-pie": 3, "relocatable": 1, "core": 4}
Kind = Literal["exec", "shared", "pie", "static-pie", "relocatable", "core"]

NOT_ELF = b"#!/bin/sh\necho this is a shell script, not an ELF file\n"


def make_elf(
    arch: str,
    *,
    executable: bool = True,
    kind: Kind | None = None,
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
        # Extra program headers make an ET_DYN file a PIE; their data follows the table.
        extra_phdrs, extra_data = [], b""
        data_at = ehsize + phentsize * (2 if kind in ("pie", "static-pie") else 1)
        if kind == "pie":
            extra_data = b"/lib/ld-linux.so.1\0"
            extra_phdrs.append((3, 4, data_at, len(extra_data)))  # PT_INTERP
        elif kind == "static-pie":
            # DT_FLAGS_1 = DF_1_PIE, then DT_NULL
            extra_data = struct.pack(order + "qQqQ", 0x6FFFFFFB, 0x08000000, 0, 0)
            extra_phdrs.append((2, 6, data_at, len(extra_data)))  # PT_DYNAMIC
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
            1 + len(extra_phdrs),
            0,
            0,
            0,
        )
        # One PT_LOAD covering the file, read + execute.
        phdr = struct.pack(order + "IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 0, 0, 0x1000)
        for p_type, flags, offset, size in extra_phdrs:
            phdr += struct.pack(order + "IIQQQQQQ", p_type, flags, offset, offset, offset, size,
                                size, 8)  # fmt: skip
        phdr += extra_data
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
