"""ELF header checks: the right architecture passes, everything Lambda cannot exec is refused."""

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
    detect_arch,
    elf_machine,
    is_pie,
    read_elf_header,
)
from layer_builder.errors import ArchitectureError, UserError
from tests.helpers.elf_fixtures import NOT_ELF, make_elf, write_elf
from tests.helpers.paths import REPO

STANDIN = REPO / "extensions" / "standin"


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.parametrize("kind", ["exec", "pie", "static-pie"])
def test_right_arch_is_accepted(arch: str, kind: str, tmp_path: Path) -> None:
    data = make_elf(arch, kind=kind)  # type: ignore[arg-type]
    check_elf(data, arch, what="bytes")
    check_elf(write_elf(tmp_path / "bin", arch, kind=kind), arch, what="file")


@pytest.mark.parametrize(("built_for", "layer"), [("x86_64", "arm64"), ("arm64", "x86_64")])
def test_wrong_arch_is_refused_naming_both(built_for: str, layer: str) -> None:
    with pytest.raises(ArchitectureError, match=f"{built_for} binary in an {layer} layer") as exc:
        check_elf(make_elf(built_for), layer, what="relay/relay")
    msg = str(exc.value)
    assert msg.startswith("relay/relay: ")
    assert f"{built_for} binary in an {layer} layer would fail with 'exec format error'" in msg
    assert isinstance(exc.value, UserError)  # exit code 2


def test_not_elf_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_bytes(NOT_ELF)
    with pytest.raises(ArchitectureError, match=r"script: is not an ELF executable"):
        check_elf(script, "x86_64", what="script")
    with pytest.raises(ArchitectureError, match="is not an ELF executable"):
        check_elf(b"\x7fEL", "x86_64", what="truncated")


def test_32_bit_is_refused() -> None:
    with pytest.raises(ArchitectureError, match="is a 32-bit i386 ELF file; an x86_64 layer"):
        check_elf(make_elf("i386", bits=32), "x86_64", what="f")


def test_relocatable_and_core_are_refused() -> None:
    with pytest.raises(ArchitectureError, match=r"relocatable object file \(ET_REL\), not an"):
        check_elf(make_elf("arm64", executable=False), "arm64", what="f.o")
    with pytest.raises(ArchitectureError, match=r"core dump"):
        check_elf(make_elf("arm64", kind="core"), "arm64", what="core")


def test_big_endian_is_refused() -> None:
    with pytest.raises(ArchitectureError, match="big-endian"):
        check_elf(make_elf("arm64", big_endian=True), "arm64", what="f")


def test_unreadable_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ArchitectureError, match="cannot read"):
        check_elf(tmp_path / "missing", "arm64", what="missing")


def test_describe_machines() -> None:
    assert elf_machine(make_elf("x86_64")) == "x86_64"
    assert elf_machine(make_elf("aarch64")) == "arm64"
    assert elf_machine(make_elf("arm", bits=32)) == "arm (32-bit)"
    assert elf_machine(make_elf("x86_64", machine=999)) == "e_machine 999"
    assert elf_machine(NOT_ELF) is None
    header = read_elf_header(make_elf("arm64", kind="shared"))
    assert header is not None and (header.bits, header.e_type, header.e_machine) == (64, 3, 183)


def test_detect_arch_only_for_runnable_files() -> None:
    assert detect_arch(make_elf("arm64")) == "arm64"
    assert detect_arch(make_elf("x86_64", kind="shared")) == "x86_64"
    assert detect_arch(make_elf("x86_64", bits=32)) is None
    assert detect_arch(make_elf("x86_64", executable=False)) is None
    assert detect_arch(make_elf("i386")) is None
    assert detect_arch(NOT_ELF) is None


@pytest.mark.parametrize(("name", "arch"), [("x86_64", "x86_64"), ("aarch64", "arm64")])
def test_prebuilt_standin_binaries(name: str, arch: str) -> None:
    binary = STANDIN / f"sentry-standin-{name}"
    check_elf(binary, arch, what=str(binary))
    assert detect_arch(binary) == arch


# ------------------------------------------------------------------------------------------------
# detect_arch() accepts only what Lambda can execute: 64-bit little-endian ET_EXEC/ET_DYN for
# x86_64 or aarch64.


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_big_endian_elf_is_no_lambda_architecture(arch: str) -> None:
    big = make_elf(arch, big_endian=True)
    header = read_elf_header(big)
    # The header itself reads fine (machine and class as for the little-endian file)...
    assert header is not None and (header.bits, header.little_endian) == (64, False)
    assert header.machine_name == arch
    # ...but Lambda cannot run it.
    assert detect_arch(big) is None
    assert detect_arch(make_elf(arch)) == arch


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kind": "exec"}, "x86_64"),
        ({"kind": "shared"}, "x86_64"),  # PIE executables are ET_DYN
        ({"kind": "relocatable"}, None),
        ({"kind": "core"}, None),
        ({"bits": 32}, None),
        ({"machine": 3}, None),  # i386: a known machine, not a Lambda architecture
    ],
)
def test_detect_arch_edges(kwargs: dict[str, object], expected: str | None) -> None:
    assert detect_arch(make_elf("x86_64", **kwargs)) == expected  # type: ignore[arg-type]


def _with_ident(data: bytes, ei_class: int, ei_data: int) -> bytes:
    return data[:4] + bytes([ei_class, ei_data]) + data[6:]


def test_header_fields_are_read_as_unsigned_in_either_byte_order() -> None:
    for big in (False, True):
        header = read_elf_header(make_elf("x86_64", machine=0x9026, big_endian=big))
        assert header is not None
        assert (header.bits, header.little_endian, header.e_machine) == (64, not big, 0x9026)
    header32 = read_elf_header(make_elf("arm", bits=32, big_endian=True))
    assert header32 is not None and (header32.bits, header32.e_machine) == (32, 40)


def test_truncated_or_malformed_identification_is_not_elf() -> None:
    good = make_elf("x86_64")
    assert read_elf_header(good[:19]) is None  # ELF magic, but shorter than the header
    assert read_elf_header(_with_ident(good, 3, 1)) is None  # no such class
    assert read_elf_header(_with_ident(good, 2, 3)) is None  # no such byte order
    assert read_elf_header(b"\x7fELG" + good[4:]) is None


def test_refusals_name_the_machines_with_the_right_article() -> None:
    cases = [
        (3, "x86_64", "is an i386 binary; an i386 binary in an x86_64 layer would fail with "
         "'exec format error' (need x86_64)"),
        (8, "arm64", "is a mips binary; a mips binary in an arm64 layer would fail with "
         "'exec format error' (need aarch64)"),
        (183, "x86_64", "is an arm64 binary; an arm64 binary in an x86_64 layer would fail "
         "with 'exec format error' (need x86_64)"),
    ]  # fmt: skip
    for machine, layer, message in cases:
        with pytest.raises(ArchitectureError, match="^bin: ") as exc:
            check_elf(make_elf("x86_64", machine=machine), layer, what="bin")
        assert str(exc.value) == f"bin: {message}"


def test_unknown_elf_type_and_architecture() -> None:
    data = bytearray(make_elf("x86_64"))
    data[16:18] = (0xFE00).to_bytes(2, "little")  # an OS-specific e_type
    with pytest.raises(ArchitectureError, match="^bin: ") as exc:
        check_elf(bytes(data), "x86_64", what="bin")
    assert str(exc.value) == (
        "bin: is an ELF file of type 65024, not an executable; Lambda (x86_64) cannot start it"
    )
    with pytest.raises(ValueError, match="^unknown architecture 'mips'$"):
        check_elf(make_elf("x86_64"), "mips", what="bin")


# ------------------------------------------------------------------------------------------------
# A dynamic segment that claims more file bytes than is_pie reads.
#
# A corrupt or hostile header can claim a file size with the top bit set. Read unsigned, it
# is capped at the dynamic-section budget; read as a negative number it would make the reader
# take the rest of the file, so a PIE flag far beyond the budget would decide the answer.


ONE_MIB = 1 << 20


def elf_with_huge_dynamic_size(bits: int) -> bytes:
    """A little-endian x86_64 ET_DYN file with one PT_DYNAMIC program header whose file
    size is the all-ones value; the section holds harmless entries (tag 1) for a little
    more than 1 MiB, then a DT_FLAGS_1 entry carrying the PIE flag."""
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1, 1]) + bytes(9)
    if bits == 64:
        ehsize, entsize, dyn_fmt = 64, 56, "<qQ"
        head = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, ehsize, 0, 0, ehsize,
                                   entsize, 1, 0, 0, 0)  # fmt: skip
        dyn_offset = ehsize + entsize
        phdr = struct.pack("<IIQQQQQQ", PT_DYNAMIC, 4, dyn_offset, 0, 0, 2**64 - 1, 0, 8)
    else:
        ehsize, entsize, dyn_fmt = 52, 32, "<iI"
        head = ident + struct.pack("<HHIIIIIHHHHHH", 3, 62, 1, 0, ehsize, 0, 0, ehsize,
                                   entsize, 1, 0, 0, 0)  # fmt: skip
        dyn_offset = ehsize + entsize
        phdr = struct.pack("<IIIIIIII", PT_DYNAMIC, dyn_offset, 0, 0, 2**32 - 1, 0, 4, 4)
    step = struct.calcsize(dyn_fmt)
    filler = struct.pack(dyn_fmt, 1, 5) * (ONE_MIB // step + 16)
    flag = struct.pack(dyn_fmt, DT_FLAGS_1, DF_1_PIE)
    return head + phdr + filler + flag


@pytest.mark.parametrize("bits", [64, 32])
def test_a_huge_dynamic_file_size_is_read_only_up_to_the_budget(bits: int) -> None:
    data = elf_with_huge_dynamic_size(bits)
    header = read_elf_header(data)
    assert header is not None and header.bits == bits
    # The flag lies past the first MiB of the section: not read, so not a PIE.
    assert is_pie(io.BytesIO(data), header) is False


@pytest.mark.parametrize("bits", [64, 32])
def test_the_same_flag_within_the_budget_is_read(bits: int) -> None:
    # Control for the test above: with the filler cut to a few entries the flag is found,
    # so the False above comes from the budget, not from a malformed file.
    data = elf_with_huge_dynamic_size(bits)
    step = 16 if bits == 64 else 8
    start = (64 + 56) if bits == 64 else (52 + 32)
    short = data[: start + 4 * step] + data[-step:]
    header = read_elf_header(short)
    assert header is not None
    assert is_pie(io.BytesIO(short), header) is True


# ------------------------------------------------------------------------------------------------
# Telling a position-independent executable from a shared library (both ET_DYN) by the
# program headers and the dynamic section, in both ELF classes and byte orders, with the
# bounds a corrupt file meets; and check_elf's refusals word for word. The files are built
# here, field by field.


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
