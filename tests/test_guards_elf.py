"""detect_arch() accepts only what Lambda can execute: 64-bit little-endian ET_EXEC/ET_DYN for
x86_64 or aarch64 (a big-endian binary was accepted by a mutant the older tests let through)."""

from __future__ import annotations

import pytest
from elf_fixtures import make_elf

from layer_builder.elf import detect_arch, read_elf_header


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
