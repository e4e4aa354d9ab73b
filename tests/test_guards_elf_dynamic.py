"""A dynamic segment that claims more file bytes than is_pie reads (mutation testing found
the unsigned reading of the program-header fields unchecked; see docs/mutation-testing.md).

A corrupt or hostile header can claim a file size with the top bit set. Read unsigned, it
is capped at the dynamic-section budget; read as a negative number it would make the reader
take the rest of the file, so a PIE flag far beyond the budget would decide the answer.
"""

from __future__ import annotations

import io
import struct

import pytest

from layer_builder.elf import DF_1_PIE, DT_FLAGS_1, PT_DYNAMIC, is_pie, read_elf_header

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
