"""Telling a position-independent executable from a shared library (both ET_DYN) by the
program headers and the dynamic section, in both ELF classes and byte orders, with the
bounds a corrupt file meets; and check_elf's refusals word for word (mutation testing found
is_pie() unchecked; see docs/mutation-testing.md). The files are built here, field by field."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from layer_builder.elf import (
    DF_1_PIE,
    DT_FLAGS_1,
    DT_NULL,
    PT_DYNAMIC,
    PT_INTERP,
    check_elf,
    is_pie,
    read_elf_header,
)
from layer_builder.errors import ArchitectureError

PT_LOAD = 1
ET_EXEC, ET_DYN = 2, 3


def build_elf(
    *,
    bits: int = 64,
    big: bool = False,
    e_type: int = ET_DYN,
    segments: tuple[int, ...] = (PT_LOAD,),
    dynamic: tuple[tuple[int, int], ...] = (),
    phentsize: int | None = None,
    phnum: int | None = None,
    truncate: int | None = None,
    after: bytes = b"",
    phoff: int | None = None,
) -> bytes:
    """An x86_64 ELF file with the given program header types; the PT_DYNAMIC one (if any)
    covers ``dynamic``'s (tag, value) entries, placed after the program headers. ``after``
    follows them in the file, outside the segment (its memory size covers it, its file size
    does not); ``phoff`` overrides where the header says the program headers are."""
    o = ">" if big else "<"
    ehsize, entsize = (64, 56) if bits == 64 else (52, 32)
    size = phentsize or entsize
    dyn_fmt = o + ("qQ" if bits == 64 else "iI")
    dyn = b"".join(struct.pack(dyn_fmt, tag, value) for tag, value in dynamic)
    dyn_offset = ehsize + size * len(segments)
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 2 if big else 1, 1]) + bytes(9)
    count = len(segments) if phnum is None else phnum
    if bits == 64:
        head = ident + struct.pack(
            o + "HHIQQQIHHHHHH",
            e_type,
            62,
            1,
            0,
            phoff or ehsize,
            0,
            0,
            ehsize,
            size,
            count,
            0,
            0,
            0,
        )
    else:
        head = ident + struct.pack(
            o + "HHIIIIIHHHHHH",
            e_type,
            62,
            1,
            0,
            phoff or ehsize,
            0,
            0,
            ehsize,
            size,
            count,
            0,
            0,
            0,
        )
    table = b""
    for p_type in segments:
        offset, filesz = (dyn_offset, len(dyn)) if p_type == PT_DYNAMIC else (0, 0)
        memsz = filesz + len(after) if p_type == PT_DYNAMIC else 0
        if bits == 64:
            entry = struct.pack(o + "IIQQQQQQ", p_type, 4, offset, 0, 0, filesz, memsz, 8)
        else:
            entry = struct.pack(o + "IIIIIIII", p_type, offset, 0, 0, filesz, memsz, 4, 4)
        table += (entry + bytes(max(0, size - len(entry))))[:size]
    data = head + table + dyn + after
    return data[:truncate] if truncate is not None else data


def pie(data: bytes) -> bool:
    header = read_elf_header(data)
    assert header is not None
    return is_pie(io.BytesIO(data), header)


PIE_FLAG = ((DT_FLAGS_1, DF_1_PIE | 0x1),)


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("big", [False, True])
def test_interpreter_or_pie_flag_makes_a_pie(bits: int, big: bool) -> None:
    assert pie(build_elf(bits=bits, big=big, segments=(PT_LOAD, PT_INTERP))) is True
    assert pie(build_elf(bits=bits, big=big, segments=(PT_DYNAMIC,), dynamic=PIE_FLAG)) is True
    # A library: a dynamic section, other flags, no interpreter.
    other = ((5, 1), (DT_FLAGS_1, 0x1))
    assert pie(build_elf(bits=bits, big=big, segments=(PT_DYNAMIC,), dynamic=other)) is False
    assert pie(build_elf(bits=bits, big=big, segments=(PT_LOAD,))) is False


def test_the_dynamic_section_is_read_entry_by_entry_up_to_dt_null() -> None:
    later = ((1, 5), (12, 0x1000), (DT_FLAGS_1, DF_1_PIE))
    assert pie(build_elf(segments=(PT_LOAD, PT_DYNAMIC), dynamic=later)) is True
    ended = ((1, 5), (DT_NULL, 0), (DT_FLAGS_1, DF_1_PIE))
    assert pie(build_elf(segments=(PT_DYNAMIC,), dynamic=ended)) is False
    # The interpreter decides even when it comes after the dynamic segment.
    assert pie(build_elf(segments=(PT_DYNAMIC, PT_INTERP), dynamic=((1, 5),))) is True


def test_padded_program_header_entries_are_stepped_over() -> None:
    data = build_elf(segments=(PT_LOAD, PT_LOAD, PT_INTERP), phentsize=72)
    assert pie(data) is True
    data32 = build_elf(bits=32, segments=(PT_LOAD, PT_DYNAMIC), dynamic=PIE_FLAG, phentsize=40)
    assert pie(data32) is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phnum": 0},  # no program headers at all
        {"phnum": 4097},  # more than any real file has
        {"phentsize": 24},  # entries too small to hold the fields
        {"truncate": 60},  # shorter than a 64-bit file header
        {"bits": 32, "truncate": 50},  # shorter than a 32-bit file header
    ],
)
def test_corrupt_headers_are_not_a_pie(kwargs: dict[str, int]) -> None:
    data = build_elf(segments=(PT_INTERP,), **kwargs)
    assert pie(data) is False


def test_a_program_header_table_cut_short_is_read_as_far_as_it_goes() -> None:
    data = build_elf(segments=(PT_LOAD, PT_INTERP), phnum=3)  # claims 3, holds 2
    assert pie(data) is True
    assert pie(build_elf(segments=(PT_LOAD, PT_LOAD), phnum=3)) is False


def test_check_elf_on_pies_libraries_and_executables(tmp_path: Path) -> None:
    library = build_elf(segments=(PT_LOAD,))
    with pytest.raises(ArchitectureError, match="shared library") as exc:
        check_elf(library, "x86_64", what="lib.so")
    assert str(exc.value) == (
        "lib.so: is a shared library (ET_DYN without a program interpreter or the PIE flag), "
        "not an executable; Lambda (x86_64) cannot start it"
    )
    check_elf(library, "x86_64", what="lib.so", executable=False)  # loadable, not startable
    path = tmp_path / "relay"
    path.write_bytes(build_elf(segments=(PT_LOAD, PT_INTERP)))
    check_elf(path, "x86_64", what="relay")  # a path
    with path.open("rb") as f:  # a file object, as for a zip member
        check_elf(f, "x86_64", what="relay")
    with path.open("rb") as f, pytest.raises(ArchitectureError, match="^member: is an x86_64"):
        check_elf(f, "arm64", what="member")
    check_elf(build_elf(e_type=ET_EXEC), "x86_64", what="static")
    with pytest.raises(ArchitectureError, match="cannot read") as exc:
        check_elf(tmp_path, "x86_64", what="dir")
    assert str(exc.value) == "dir: cannot read: Is a directory"


def test_check_elf_refusals_name_the_machine_needed() -> None:
    arm = build_elf()[:18] + struct.pack("<H", 183) + build_elf()[20:]
    cases = [
        (b"#!/bin/sh\n" + bytes(20), "relay: is not an ELF executable (Lambda x86_64 needs one)"),
        (build_elf(bits=32), "relay: is a 32-bit x86_64 ELF file; an x86_64 layer needs a "
         "64-bit x86_64 executable"),
        (build_elf(big=True), "relay: is a big-endian ELF file; a x86_64 layer needs a "
         "little-endian x86_64 executable"),
        (arm, "relay: is an arm64 binary; an arm64 binary in an x86_64 layer would fail with "
         "'exec format error' (need x86_64)"),
    ]  # fmt: skip
    for data, message in cases:
        with pytest.raises(ArchitectureError, match="^relay: ") as exc:
            check_elf(data, "x86_64", what="relay")
        assert str(exc.value) == message
    with pytest.raises(ArchitectureError, match="needs a 64-bit aarch64") as exc:
        check_elf(build_elf(bits=32), "arm64", what="relay")
    assert str(exc.value).endswith("an arm64 layer needs a 64-bit aarch64 executable")


@pytest.mark.parametrize("bits", [64, 32])
def test_only_the_dynamic_segments_file_bytes_are_read(bits: int) -> None:
    # The segment holds one harmless entry and no DT_NULL; a PIE flag right after it in the
    # file (inside the memory size, outside the file size) is not part of it.
    fmt = "<qQ" if bits == 64 else "<iI"
    data = build_elf(
        bits=bits, segments=(PT_DYNAMIC,), dynamic=((1, 5),),
        after=struct.pack(fmt, DT_FLAGS_1, DF_1_PIE),
    )  # fmt: skip
    assert pie(data) is False


def test_edges_of_the_bounds_are_still_read() -> None:
    # Exactly _MAX_PHNUM headers claimed (only one present), entries exactly as large as
    # the fields read: both are still parsed.
    assert pie(build_elf(segments=(PT_INTERP,), phnum=4096)) is True
    assert pie(build_elf(segments=(PT_LOAD, PT_INTERP), phentsize=40)) is True
    assert pie(build_elf(bits=32, segments=(PT_LOAD, PT_INTERP), phentsize=24)) is True


def test_large_unsigned_fields_are_not_negative() -> None:
    # A 32 KiB entry size (0x8000 as a signed 16-bit number is negative).
    big_entries = build_elf(segments=(PT_INTERP,), phentsize=0x8000)
    assert pie(big_entries + bytes(0x8000)) is True
    assert pie(build_elf(bits=32, segments=(PT_INTERP,), phentsize=0x8000) + bytes(0x8000))
    # Program headers "at" offsets past the end (negative if read as signed): no crash.
    assert pie(build_elf(segments=(PT_INTERP,), phoff=2**64 - 8)) is False
    assert pie(build_elf(bits=32, segments=(PT_INTERP,), phoff=2**32 - 8)) is False


def test_a_library_given_as_a_path_or_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "libx.so"
    path.write_bytes(build_elf(segments=(PT_LOAD,)))
    with pytest.raises(ArchitectureError, match="shared library"):
        check_elf(path, "x86_64", what="libx.so")
    with path.open("rb") as f, pytest.raises(ArchitectureError, match="shared library"):
        check_elf(f, "x86_64", what="libx.so")
