"""Just enough of ELF to tell whether a binary can run on a Lambda architecture.

Lambda runs 64-bit little-endian Linux executables, x86_64 or aarch64. A binary for the
other architecture is not caught by anything else before the function starts and fails with
``exec format error``, so the builder and ``verify`` check the header of every extension
binary. A shared library has the same header type (ET_DYN) as a position-independent
executable; they differ in the program headers (an interpreter) or the dynamic section (the
PIE flag), which are read too. The parse uses :mod:`struct` only; no ELF library is needed.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from layer_builder.aws.facts import ELF_MACHINE, MACHINE_NAME
from layer_builder.errors import ArchitectureError

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
#: e_ident (16 bytes) + e_type (2) + e_machine (2): what the machine check needs.
_HEADER_BYTES = 20
#: The whole 64-bit file header, which locates the program headers.
_FULL_HEADER_BYTES = 64
PT_DYNAMIC, PT_INTERP = 2, 3
DT_NULL, DT_FLAGS_1 = 0, 0x6FFFFFFB
DF_1_PIE = 0x08000000
#: Bounds on what a hostile or corrupt file can make us read.
_MAX_PHNUM = 4096
_MAX_DYNAMIC_BYTES = 1 << 20

_TYPE_NAMES = {
    ET_REL: "a relocatable object file (ET_REL)",
    ET_CORE: "a core dump (ET_CORE)",
    ET_DYN: "a shared library (ET_DYN without a program interpreter or the PIE flag)",
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


def _read_at(f: IO[bytes], offset: int, size: int) -> bytes:
    # Zip members are seekable but slow to seek backwards, so callers read in file order.
    try:
        f.seek(offset)
    except (OverflowError, ValueError):  # a corrupt header's offset no file can have
        return b""
    return f.read(size)


def is_pie(f: IO[bytes], header: ElfHeader) -> bool:
    """Whether an ET_DYN file is a position-independent executable rather than a library.

    A dynamically linked PIE has a program interpreter (PT_INTERP); a static PIE has none but
    carries DF_1_PIE in DT_FLAGS_1 of its dynamic section. ``f`` is positioned anywhere.
    """
    order = "<" if header.little_endian else ">"
    raw = _read_at(f, 0, _FULL_HEADER_BYTES)
    if header.bits == 64:
        if len(raw) < 64:
            return False
        (phoff,) = struct.unpack_from(order + "Q", raw, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", raw, 54)
        ph_fmt, word = order + "IIQQQQ", order + "qQ"  # type, flags, offset, vaddr, paddr, filesz
    else:
        if len(raw) < 52:
            return False
        (phoff,) = struct.unpack_from(order + "I", raw, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", raw, 42)
        ph_fmt, word = order + "IIIIII", order + "iI"  # type, offset, vaddr, paddr, filesz, memsz
    if phnum == 0 or phnum > _MAX_PHNUM or phentsize < struct.calcsize(ph_fmt):
        return False
    table = _read_at(f, phoff, phentsize * phnum)
    dynamic: tuple[int, int] | None = None
    for i in range(min(phnum, len(table) // phentsize)):
        fields = struct.unpack_from(ph_fmt, table, i * phentsize)
        p_type = fields[0]
        offset, filesz = (fields[2], fields[5]) if header.bits == 64 else (fields[1], fields[4])
        if p_type == PT_INTERP:
            return True
        if p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return False
    data = _read_at(f, dynamic[0], min(dynamic[1], _MAX_DYNAMIC_BYTES))
    step = struct.calcsize(word)
    for i in range(len(data) // step):
        tag, value = struct.unpack_from(word, data, i * step)
        if tag == DT_NULL:
            break
        if tag == DT_FLAGS_1 and value & DF_1_PIE:
            return True
    return False


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


def check_elf(
    source: Path | bytes | IO[bytes], arch: str, *, what: str, executable: bool = True
) -> None:
    """Raise :class:`ArchitectureError` unless ``arch`` can run the file (or load it).

    ``source`` is a path, the whole file's bytes, or a readable seekable file (a zip member).
    ``what`` names the file in the message (a path, a URL, or ``layer.zip:extensions/x``).
    With ``executable`` (what Lambda starts: extensions and what their launchers exec) the
    file must be ET_EXEC, or ET_DYN that is a position-independent executable; a shared
    library, a relocatable object or a core dump is refused, its type named. Without it,
    shared libraries pass too. 32-bit and big-endian files are always refused.
    """
    if arch not in ELF_MACHINE:
        raise ValueError(f"unknown architecture {arch!r}")
    try:
        if isinstance(source, bytes):
            _check_open(io.BytesIO(source), arch, what, executable)
        elif isinstance(source, Path):
            with source.open("rb") as f:
                _check_open(f, arch, what, executable)
        else:
            _check_open(source, arch, what, executable)
    except OSError as exc:
        raise ArchitectureError(f"{what}: cannot read: {exc.strerror or exc}") from None


def _check_open(f: IO[bytes], arch: str, what: str, executable: bool) -> None:
    header = read_elf_header(f.read(_HEADER_BYTES))
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
    if header.e_type == ET_EXEC:
        return
    if header.e_type == ET_DYN and (not executable or is_pie(f, header)):
        return
    kind = _TYPE_NAMES.get(header.e_type, f"an ELF file of type {header.e_type}")
    raise ArchitectureError(
        f"{what}: is {kind}, not an executable; Lambda ({arch}) cannot start it"
    )
