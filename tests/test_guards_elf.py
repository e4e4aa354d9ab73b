"""detect_arch() accepts only what Lambda can execute: 64-bit little-endian ET_EXEC/ET_DYN for
x86_64 or aarch64 (a big-endian binary was accepted by a mutant the older tests let through)."""

from __future__ import annotations

import pytest

from layer_builder.elf import check_elf, detect_arch, read_elf_header
from layer_builder.errors import ArchitectureError
from tests.helpers.elf_fixtures import make_elf


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
