"""ELF header checks: the right architecture passes, everything Lambda cannot exec is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_builder.elf import check_elf, detect_arch, elf_machine, read_elf_header
from layer_builder.errors import ArchitectureError, UserError
from tests.helpers.elf_fixtures import NOT_ELF, make_elf, write_elf

STANDIN = Path(__file__).resolve().parent.parent / "extensions" / "standin"


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
