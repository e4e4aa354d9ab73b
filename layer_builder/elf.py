"""Just enough of the ELF header to tell whether a binary can run on a Lambda architecture.

Lambda runs 64-bit little-endian Linux executables, x86_64 or aarch64. A binary for the
other architecture is not caught by anything else before the function starts and fails with
``exec format error``, so the builder and ``verify`` check the header of every extension
binary. The header parse uses :mod:`struct` only; no ELF library is needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from layer_builder.aws.facts import ELF_MACHINE, MACHINE_NAME
from layer_builder.errors import ArchitectureError

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
#: e_ident (16 bytes) + e_type (2) + e_machine (2): all we read.
_HEADER_BYTES = 20

_TYPE_NAMES = {
    ET_REL: "a relocatable object file (ET_REL)",
    ET_CORE: "a core dump (ET_CORE)",
}
#: Lambda's architecture names first, then the machines people most often mix them up with.
_MACHINE_NAMES: dict[int, str] = {
    **{machine: arch for arch, machine in ELF_MACHINE.items()},
    3: "i386",
    8: "mips",
    20: "powerpc",
    21: "ppc64",
    22: "s390x",
    40: "arm (32-bit)",
    243: "riscv64",
}


@dataclass(frozen=True)
class ElfHeader:
    """The fields of an ELF header that decide whether Lambda can execute the file."""

    bits: int  # 32 or 64
    little_endian: bool
    e_type: int
    e_machine: int

    @property
    def machine_name(self) -> str:
        """``x86_64``/``arm64`` for Lambda's architectures, else a readable name."""
        return _MACHINE_NAMES.get(self.e_machine, f"e_machine {self.e_machine}")


def read_elf_header(data: bytes) -> ElfHeader | None:
    """Parse the start of a file; None if it is not an ELF file (or is truncated)."""
    if len(data) < _HEADER_BYTES or data[:4] != ELF_MAGIC:
        return None
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (ELFCLASS32, ELFCLASS64) or ei_data not in (ELFDATA2LSB, ELFDATA2MSB):
        return None
    little = ei_data == ELFDATA2LSB
    e_type, e_machine = struct.unpack_from("<HH" if little else ">HH", data, 16)
    return ElfHeader(32 if ei_class == ELFCLASS32 else 64, little, e_type, e_machine)


def _a(name: str) -> str:
    # "an x86_64", "an arm64", "an i386" but "a mips": spoken names decide the article.
    return f"an {name}" if name[:1] in "aeiox" else f"a {name}"


def _head(path_or_bytes: Path | bytes) -> bytes:
    if isinstance(path_or_bytes, bytes):
        return path_or_bytes[:_HEADER_BYTES]
    with Path(path_or_bytes).open("rb") as f:
        return f.read(_HEADER_BYTES)


def elf_machine(path_or_bytes: Path | bytes) -> str | None:
    """What a file is built for: ``x86_64`` or ``arm64`` for Lambda's architectures, another
    readable name (``i386``, ``arm (32-bit)``, ...) otherwise, None if it is not ELF."""
    header = read_elf_header(_head(path_or_bytes))
    return header.machine_name if header else None


def detect_arch(path_or_bytes: Path | bytes) -> str | None:
    """The Lambda architecture a 64-bit little-endian ELF executable runs on, else None."""
    header = read_elf_header(_head(path_or_bytes))
    if header is None or header.bits != 64 or not header.little_endian:
        return None
    if header.e_type not in (ET_EXEC, ET_DYN):
        return None
    return header.machine_name if header.machine_name in ELF_MACHINE else None


def check_elf(path_or_bytes: Path | bytes, arch: str, *, what: str) -> None:
    """Raise :class:`ArchitectureError` unless the file is an executable Lambda ``arch`` can run.

    ``what`` names the file in the message (a path, a URL, or ``layer.zip:extensions/x``).
    ET_EXEC and ET_DYN are accepted: position-independent executables, static or not, are
    ET_DYN. Relocatable objects, core dumps, 32-bit and big-endian files are refused.
    """
    if arch not in ELF_MACHINE:
        raise ValueError(f"unknown architecture {arch!r}")
    try:
        head = _head(path_or_bytes)
    except OSError as exc:
        raise ArchitectureError(f"{what}: cannot read: {exc.strerror}") from None
    header = read_elf_header(head)
    if header is None:
        raise ArchitectureError(f"{what}: is not an ELF executable (Lambda {arch} needs one)")
    machine = MACHINE_NAME[arch]
    if header.bits != 64:
        raise ArchitectureError(
            f"{what}: is a 32-bit {header.machine_name} ELF file; an {arch} layer needs a "
            f"64-bit {machine} executable"
        )
    if not header.little_endian:
        raise ArchitectureError(
            f"{what}: is a big-endian ELF file; a {arch} layer needs a little-endian "
            f"{machine} executable"
        )
    if header.e_machine != ELF_MACHINE[arch]:
        raise ArchitectureError(
            f"{what}: is {_a(header.machine_name)} binary; {_a(header.machine_name)} binary in "
            f"an {arch} layer would fail with 'exec format error' (need {machine})"
        )
    if header.e_type not in (ET_EXEC, ET_DYN):
        kind = _TYPE_NAMES.get(header.e_type, f"an ELF file of type {header.e_type}")
        raise ArchitectureError(f"{what}: is {kind}, not an executable")
