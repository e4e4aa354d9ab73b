"""`verify` on layers without a build manifest (the inferred layout), on what a launcher in
/opt/extensions/ may start, and the order of findings by severity: exact texts and outcomes
(mutation testing found these unchecked; see docs/mutation-testing.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from layer_builder.build.verify import VerifyError, verify_zip
from layer_builder.errors import ArtifactError
from tests.helpers.elf_fixtures import make_elf

DIR, FILE, EXE = 0o40755, 0o100644, 0o100755
SHARED = "is a shared library (ET_DYN without a program interpreter or the PIE flag), not an "


def _zip(path: Path, members: dict[str, tuple[int, bytes]]) -> Path:
    """Members in sorted order, every determinism marker right."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, (mode, data) in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _layer(path: Path, **extra: tuple[int, bytes]) -> Path:
    members = {"python/": (DIR, b""), "python/a.py": (FILE, b"a = 1\n")}
    members.update({name.replace("__", "/"): value for name, value in extra.items()})
    return _zip(path, members)


def test_a_directory_is_not_a_layer_zip(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is a directory") as exc:
        verify_zip(tmp_path)
    assert str(exc.value) == f"{tmp_path}: is a directory, not a layer zip"


def test_unsafe_names_are_listed_comma_separated(tmp_path: Path) -> None:
    z = _layer(tmp_path / "l.zip", **{"../up": (FILE, b"x"), "/abs": (FILE, b"y")})
    with pytest.raises(VerifyError, match="unsafe member names") as exc:
        verify_zip(z)
    assert str(exc.value).splitlines()[0] == f"{z}: unsafe member names: ../up, /abs"


def test_a_foreign_library_in_a_two_machine_layer_names_both(tmp_path: Path) -> None:
    z = _layer(
        tmp_path / "l.zip",
        extensions__a=(EXE, make_elf("x86_64")),
        extensions__b=(EXE, make_elf("arm64")),
        lib__x_so=(FILE, make_elf("i386", kind="shared")),
    )
    with pytest.raises(VerifyError, match="is a library built for") as exc:
        verify_zip(z)
    assert str(exc.value) == (
        f"{z}:lib/x_so: is a library built for i386; an x86_64, arm64 layer needs x86_64 or aarch64"
    )


def test_an_executable_library_that_nothing_starts_is_only_a_library(tmp_path: Path) -> None:
    z = _layer(tmp_path / "l.zip", lib__x_so=(EXE, make_elf("x86_64", kind="shared")))
    assert verify_zip(z, arch="x86_64").elf_files == ("lib/x_so",)


def test_findings_keep_their_severity_order(tmp_path: Path) -> None:
    # A library for i386 marked executable (cannot load, listed first by name) and a shared
    # library Lambda would have to start (cannot start): the second is the more serious.
    z = _layer(
        tmp_path / "l.zip",
        a__bad=(EXE, make_elf("i386")),
        extensions__relay=(EXE, make_elf("x86_64", kind="shared")),
        extensions__relay_arm=(EXE, make_elf("arm64")),
    )
    with pytest.raises(VerifyError, match="shared library") as exc:
        verify_zip(z)
    lines = str(exc.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{z}:extensions/relay",
        f"{z}:a/bad",
    ]


def test_elf_files_in_the_sdk_tree_do_not_make_a_layer_universal(tmp_path: Path) -> None:
    z = _layer(
        tmp_path / "l.zip",
        python__bin__tool=(EXE, make_elf("arm64")),
        extensions__relay=(EXE, make_elf("x86_64")),
    )
    report = verify_zip(z)
    assert (report.architectures, report.layout, report.notes) == (
        (),
        None,
        ("no build manifest beside the zip and no --arch: architecture not checked",),
    )


def test_files_below_a_subdirectory_of_extensions_are_not_started(tmp_path: Path) -> None:
    z = _layer(tmp_path / "l.zip", extensions__docs__readme=(FILE, b"read me"))
    assert verify_zip(z, arch="x86_64").layout == "per-arch"


def test_only_scripts_in_extensions_count_as_launchers(tmp_path: Path) -> None:
    z = _layer(
        tmp_path / "l.zip",
        python__run_sh=(FILE, b"#!/bin/sh\nexec /opt/lib/tool\n"),
        lib__tool=(FILE, make_elf("x86_64", kind="shared")),
    )
    assert verify_zip(z, arch="x86_64").elf_files == ("lib/tool",)


def test_the_sdk_root_is_the_first_path_part(tmp_path: Path) -> None:
    z = _zip(tmp_path / "l.zip", {"python/pkg/a.py": (FILE, b"a = 1\n")})
    assert verify_zip(z).family == "python"


def test_an_arch_a_two_machine_layer_does_not_serve(tmp_path: Path) -> None:
    # Reachable from the library only (the CLI's --arch has two choices, both served).
    z = _layer(
        tmp_path / "l.zip",
        extensions__a=(EXE, make_elf("x86_64")),
        extensions__b=(EXE, make_elf("arm64")),
        lib__x_so=(FILE, make_elf("i386", kind="shared")),
    )
    with pytest.raises(VerifyError, match="serves") as exc:
        verify_zip(z, arch="mips")
    assert str(exc.value).splitlines()[0] == f"{z}: serves x86_64, arm64, not mips"
