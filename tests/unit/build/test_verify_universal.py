"""`layer-builder verify` on a universal layer whose manifest, binaries or launcher disagree:
every finding word for word. The layer is built through the CLI (pip replaced by a stand-in,
real tiny ELF binaries), then one thing at a time is changed."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from layer_builder.build.verify import VerifyError, neutrality_error, verify_zip
from layer_builder.build.zipper import write_zip
from layer_builder.cli import main
from layer_builder.errors import ArtifactError
from tests.helpers.elf_fixtures import make_elf
from tests.helpers.universal import (
    LAUNCHER,
    edit_manifest,
    rewrite,
    verify_err,
)


def test_the_good_layer_passes(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(universal_layer[0])]) == 0, capsys.readouterr().err


def test_manifest_disagreements_word_for_word(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    good = json.loads(manifest_path.read_text())
    x86, arm = good["extensions"]
    cases = [
        ([x86], "the manifest claims x86_64, arm64 but lists no extension binary for arm64"),
        ([x86, {**arm, "path": "relay/gone"}], "the arm64 extension relay/gone is missing"),
        ([{**x86, "path": "relay/gone"}, arm], "the x86_64 extension relay/gone is missing"),
        ([x86, {**arm, "sha256": "0" * 64}], "relay/relay-aarch64 differs from the arm64 "
         "binary the build manifest records (sha256 000000000000...)"),
    ]  # fmt: skip
    for extensions, finding in cases:
        edit_manifest(manifest_path, extensions=extensions)
        assert verify_err(capsys, str(zip_path)) == [f"error: {zip_path}: {finding}"]
    # A format-1 entry (no path) is left to the ELF checks, and the rest still checked.
    edit_manifest(manifest_path, extensions=[{**x86, "path": ""}, arm])
    assert main(["verify", str(zip_path)]) == 0, capsys.readouterr().err


def test_binaries_and_launcher_disagreements_word_for_word(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    original = (zip_path.read_bytes(), manifest_path.read_text())
    with zipfile.ZipFile(zip_path) as zf:
        launcher, arm = zf.read(LAUNCHER), zf.read("relay/relay-aarch64")
    wrong = make_elf("x86_64", payload=b"q")
    cases = [
        ({"relay/relay-aarch64": (0o100644, arm)},
         ["relay/relay-aarch64 is not executable (it needs mode 0755)"]),
        ({LAUNCHER: (0o100755, launcher.replace(b"/opt/relay/relay-aarch64", b"/opt/x"))},
         [f"{LAUNCHER} never starts /opt/relay/relay-aarch64; the arm64 extension would not "
          "run", f"{LAUNCHER}: execs /opt/x, which is not in the layer"]),
        ({LAUNCHER: (0o100755, launcher.replace(b"uname -m", b"arch"))},
         [f"{LAUNCHER} must be a launcher script that picks the binary by machine (uname -m) "
          "in a universal layer"]),
        ({"relay/relay-aarch64": (0o100755, wrong)},
         ["relay/relay-aarch64: is an x86_64 binary; an x86_64 binary in an arm64 layer would "
          "fail with 'exec format error' (need aarch64)",
          "relay/relay-aarch64 differs from the arm64 binary the build manifest records "
          f"(sha256 {hashlib.sha256(arm).hexdigest()[:12]}...)"]),
    ]  # fmt: skip
    for change, findings in cases:
        rewrite(zip_path, manifest_path, **change)
        got = verify_err(capsys, str(zip_path))
        expected = [
            f"error: {zip_path}:{f}" if f.startswith(("relay/relay-aarch64: ", f"{LAUNCHER}: "))
            else
            f"error: {zip_path}: {f}"
            for f in findings
        ]  # fmt: skip
        assert got == expected
        zip_path.write_bytes(original[0])
        manifest_path.write_text(original[1])


def test_neutrality_error_lists_three_and_counts_the_rest() -> None:
    tail = (
        "; a universal layer serves every architecture from one python/ or nodejs/ tree, so an "
        "SDK with native code needs `layout: per-arch` in the layer config (one layer per "
        "architecture)"
    )
    cases = [
        (["a.so"], "a.so"),
        (["a.so", "b.so", "c.so"], "a.so, b.so, c.so"),
        (["a.so", "b.so", "c.so", "d.so"], "a.so, b.so, c.so and 1 more"),
        (["a.so", "b.so", "c.so", "d.so", "e.so"], "a.so, b.so, c.so and 2 more"),
    ]
    for elves, shown in cases:
        message = str(neutrality_error("l.zip", elves))
        assert message == f"l.zip: holds architecture-specific (ELF) files: {shown}{tail}"


def test_without_a_manifest_the_binaries_tell_the_architectures(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    manifest_path.unlink()
    assert main(["verify", str(zip_path), "--json"]) == 0, capsys.readouterr().err
    (report,) = json.loads(capsys.readouterr().out)["zips"]
    assert (report["layout"], report["architectures"]) == ("universal", ["x86_64", "arm64"])
    with pytest.raises(ArtifactError, match="serves x86_64, arm64, not riscv64") as exc:
        verify_zip(zip_path, arch="riscv64")
    assert str(exc.value).startswith(f"{zip_path}: serves x86_64, arm64, not riscv64")


# ------------------------------------------------------------------------------------------------
# `layer-builder verify`: findings and notes word for word, in their order of severity, and
# the layouts it tells apart without a build manifest. Layers are either built by the real zipper
# from a small tree (tiny real ELF files) or, for the universal ones, through the CLI.


def layer(tmp_path: Path, files: dict[str, tuple[int, bytes]]) -> Path:
    """A layer zip (real zipper: sorted, fixed times, dir entries) of python/ok.py and
    ``files`` (name -> (mode, content)), without a build manifest."""
    tree = tmp_path / "tree"
    for name, (mode, content) in {"python/ok.py": (0o644, b"x = 1\n"), **files}.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
        (tree / name).chmod(mode)
    return write_zip(tree, tmp_path / "layer.zip").path


def problems(z: Path, arch: str | None = None) -> list[str]:
    with pytest.raises(VerifyError, match=str(z)) as exc:
        verify_zip(z, arch=arch)
    return str(exc.value).splitlines()


def test_two_unsafe_member_names_are_listed_on_one_line(tmp_path: Path) -> None:
    z = tmp_path / "layer.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("python/", "python/ok.py", "../a.py", "/b.py"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
            zf.writestr(info, b"" if name.endswith("/") else b"x = 1\n")
    assert problems(z)[0] == f"{z}: unsafe member names: ../a.py, /b.py"


def test_an_executable_shared_library_outside_extensions_loads_and_passes(
    tmp_path: Path,
) -> None:
    # .so files are often 0755; Lambda loads them, it never starts them.
    z = layer(tmp_path, {"lib/libx.so": (0o755, make_elf("x86_64", kind="shared"))})
    assert verify_zip(z, arch="x86_64").elf_files == ("lib/libx.so",)


def test_a_library_a_script_outside_extensions_names_is_not_started(tmp_path: Path) -> None:
    # Only scripts in /opt/extensions/ are launchers; python/run.sh is not run by Lambda.
    z = layer(
        tmp_path,
        {
            "python/run.sh": (0o644, b"#!/bin/sh\nexec /opt/lib/libx.so\n"),
            "lib/libx.so": (0o644, make_elf("x86_64", kind="shared")),
        },
    )
    assert verify_zip(z, arch="x86_64").elf_files == ("lib/libx.so",)


def test_what_lambda_starts_is_reported_before_what_would_fail_to_load(
    tmp_path: Path,
) -> None:
    z = layer(
        tmp_path,
        {
            "a/libarm.so": (0o644, make_elf("arm64", kind="shared")),
            "b/tool": (0o755, make_elf("arm64")),
            "extensions/x": (0o755, make_elf("arm64")),
        },
    )
    wrong = "an arm64 binary in an x86_64 layer would fail with 'exec format error' (need x86_64)"
    assert problems(z, "x86_64") == [
        f"{z}:extensions/x: is an arm64 binary; {wrong}",
        f"{z}:a/libarm.so: is a library built for arm64; an x86_64 layer needs x86_64",
        f"{z}:b/tool: is an arm64 binary; {wrong}",
    ]


def two_machine_layer(tmp_path: Path, **extra: tuple[int, bytes]) -> Path:
    """No manifest: extension binaries for both machines make it a universal layer."""
    return layer(
        tmp_path,
        {
            "extensions/x86": (0o755, make_elf("x86_64")),
            "extensions/arm": (0o755, make_elf("arm64")),
            **extra,
        },
    )


def test_a_library_for_neither_machine_of_a_universal_layer(tmp_path: Path) -> None:
    z = two_machine_layer(tmp_path, **{"lib/libi386.so": (0o644, make_elf("i386"))})
    assert problems(z) == [
        f"{z}:lib/libi386.so: is a library built for i386; an x86_64, arm64 layer needs "
        "x86_64 or aarch64"
    ]


def test_an_arch_a_universal_layer_does_not_serve_comes_first(tmp_path: Path) -> None:
    z = two_machine_layer(tmp_path, **{"extensions/notes.txt": (0o644, b"hello\n")})
    assert problems(z, "riscv64") == [
        f"{z}: extensions/notes.txt is not executable (it needs mode 0755); "
        "Lambda would not start it",
        f"{z}: serves x86_64, arm64, not riscv64",
    ]


def test_a_non_executable_library_does_not_make_the_layer_universal(tmp_path: Path) -> None:
    z = layer(
        tmp_path,
        {
            "extensions/x": (0o755, make_elf("x86_64")),
            "lib/libarm.so": (0o644, make_elf("arm64", kind="shared")),
        },
    )
    report = verify_zip(z)
    assert (report.architectures, report.layout, report.notes) == (
        (),
        None,
        ("no build manifest beside the zip and no --arch: architecture not checked",),
    )


def test_a_data_file_in_a_subdirectory_of_extensions_need_not_be_executable(
    tmp_path: Path,
) -> None:
    z = layer(tmp_path, {"extensions/data/config.txt": (0o644, b"level = info\n")})
    assert verify_zip(z).family == "python"


def test_a_zip_without_directory_entries_still_has_its_sdk_root(tmp_path: Path) -> None:
    z = tmp_path / "layer.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("python/pkg/mod.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = 0o100644 << 16
        zf.writestr(info, b"x = 1\n")
    assert verify_zip(z).family == "python"


def test_a_directory_is_not_a_layer_zip(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is a directory") as exc:
        verify_zip(tmp_path)
    assert str(exc.value) == f"{tmp_path}: is a directory, not a layer zip"


def test_a_missing_launcher_is_reported_with_what_it_would_start(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    with zipfile.ZipFile(zip_path) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist() if i.filename != LAUNCHER]
    with zipfile.ZipFile(zip_path, "w") as out:
        for info, data in members:
            out.writestr(info, data, compress_type=info.compress_type)
    rewrite(zip_path, manifest_path)  # the manifest now records this zip
    assert verify_err(capsys, str(zip_path)) == [
        f"error: {zip_path}: {LAUNCHER} is missing",
        f"error: {zip_path}: {LAUNCHER} never starts /opt/relay/relay-x86_64; the x86_64 "
        "extension would not run",
        f"error: {zip_path}: {LAUNCHER} never starts /opt/relay/relay-aarch64; the arm64 "
        "extension would not run",
        f"error: {zip_path}: {LAUNCHER} must be a launcher script that picks the binary by "
        "machine (uname -m) in a universal layer",
    ]


def test_a_zip_changed_after_its_build_names_both_digests(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    actual = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    edit_manifest(manifest_path, sha256="ab" * 32)
    assert verify_err(capsys, str(zip_path)) == [
        f"error: {zip_path}: sha256 {actual[:12]}... differs from its build manifest "
        "(abababababab...); the zip changed after it was built"
    ]


def test_an_arch_the_manifest_does_not_claim_lists_every_claimed_one(
    universal_layer: tuple[Path, Path],
) -> None:
    zip_path, _ = universal_layer
    with pytest.raises(VerifyError, match="built for") as exc:
        verify_zip(zip_path, arch="riscv64")
    assert str(exc.value) == f"{zip_path}: built for x86_64, arm64, not riscv64"


def test_the_stand_in_extension_is_noted(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    extensions = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(
        manifest_path, extensions=[{**e, "source": "sandbox stand-in"} for e in extensions]
    )
    assert verify_zip(zip_path).notes == (
        "carries the sandbox STAND-IN extension (not Relay): publish refuses it outside --sandbox",
    )


def test_a_manifest_entry_without_architecture_leaves_both_unlisted(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    x86 = json.loads(manifest_path.read_text())["extensions"][0]
    edit_manifest(manifest_path, extensions=[{**x86, "architecture": "", "path": ""}])
    assert verify_err(capsys, str(zip_path)) == [
        f"error: {zip_path}: the manifest claims x86_64, arm64 but lists no extension binary "
        "for x86_64, arm64"
    ]


def test_entries_after_a_format_1_entry_are_still_checked(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    x86, arm = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "path": ""}, {**arm, "sha256": "0" * 64}])
    assert verify_err(capsys, str(zip_path)) == [
        f"error: {zip_path}: relay/relay-aarch64 differs from the arm64 binary the build "
        "manifest records (sha256 000000000000...)"
    ]


def test_entries_after_a_missing_binary_are_still_checked(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    x86, arm = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(
        manifest_path, extensions=[{**x86, "path": "relay/gone"}, {**arm, "sha256": "0" * 64}]
    )
    assert verify_err(capsys, str(zip_path)) == [
        f"error: {zip_path}: the x86_64 extension relay/gone is missing",
        f"error: {zip_path}: relay/relay-aarch64 differs from the arm64 binary the build "
        "manifest records (sha256 000000000000...)",
    ]


def test_a_binary_for_neither_machine_is_reported_once(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    with zipfile.ZipFile(zip_path) as zf:
        x86 = zf.read("relay/relay-x86_64")
    rewrite(zip_path, manifest_path, **{"relay/relay-x86_64": (0o100755, make_elf("i386"))})
    assert verify_err(capsys, str(zip_path)) == [
        f"error: {zip_path}:relay/relay-x86_64: is an i386 binary; an i386 binary in an x86_64 "
        "layer would fail with 'exec format error' (need x86_64)",
        f"error: {zip_path}: relay/relay-x86_64 differs from the x86_64 binary the build "
        f"manifest records (sha256 {hashlib.sha256(x86).hexdigest()[:12]}...)",
    ]


def test_a_one_architecture_universal_layer_may_start_its_binary_directly(
    universal_layer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = universal_layer
    x86 = json.loads(manifest_path.read_text())["extensions"][0]
    direct = b"#!/bin/sh\nexec /opt/relay/relay-x86_64\n"
    rewrite(
        zip_path,
        manifest_path,
        **{LAUNCHER: (0o100755, direct), "relay/relay-aarch64": (0o100644, b"unused\n")},
    )
    edit_manifest(manifest_path, architectures=["x86_64"], extensions=[x86])
    report = verify_zip(zip_path)
    assert (report.layout, report.architectures) == ("universal", ("x86_64",))


# ------------------------------------------------------------------------------------------------
# `verify` of a universal layer whose build manifest and zip disagree, one change at a time:
# every finding word for word, none left out, none said twice.


ARM = "relay/relay-aarch64"
X86 = "relay/relay-x86_64"


def _drop(zip_path: Path, manifest_path: Path, *names: str) -> None:
    """Remove members, then re-record the zip's digest so only the removal is a finding."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist() if i.filename not in names]
    with zipfile.ZipFile(zip_path, "w") as out:
        for info, data in members:
            out.writestr(info, data, compress_type=info.compress_type)
    rewrite(zip_path, manifest_path)


def _findings(zip_path: Path, **kwargs: str) -> list[str]:
    with pytest.raises(VerifyError, match=str(zip_path)) as exc:
        verify_zip(zip_path, **kwargs)
    return [line.removeprefix(f"{zip_path}") for line in str(exc.value).splitlines()]


def test_a_missing_launcher(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    _drop(zip_path, manifest_path, LAUNCHER)
    assert _findings(zip_path) == [
        f": {LAUNCHER} is missing",
        f": {LAUNCHER} never starts /opt/{X86}; the x86_64 extension would not run",
        f": {LAUNCHER} never starts /opt/{ARM}; the arm64 extension would not run",
        f": {LAUNCHER} must be a launcher script that picks the binary by machine (uname -m) "
        "in a universal layer",
    ]


def test_a_format_1_entry_does_not_stop_the_next_one(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    with zipfile.ZipFile(zip_path) as zf:
        arm = zf.read(ARM)
    rewrite(zip_path, manifest_path, **{ARM: (0o100644, arm)})
    x86, arm_entry = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "path": ""}, arm_entry])
    assert _findings(zip_path) == [f": {ARM} is not executable (it needs mode 0755)"]


def test_a_missing_binary_does_not_stop_the_next_one(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    with zipfile.ZipFile(zip_path) as zf:
        arm = zf.read(ARM)
    rewrite(zip_path, manifest_path, **{ARM: (0o100644, arm)})
    x86, arm_entry = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "path": "relay/gone"}, arm_entry])
    assert _findings(zip_path) == [
        ": the x86_64 extension relay/gone is missing",
        f": {ARM} is not executable (it needs mode 0755)",
    ]


def test_a_wrong_binary_is_reported_once(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    rewrite(zip_path, manifest_path, **{ARM: (0o100755, make_elf("arm64", kind="shared"))})
    found = _findings(zip_path)
    assert found[0] == (
        f":{ARM}: is a shared library (ET_DYN without a program interpreter or the PIE flag), "
        "not an executable; Lambda (arm64) cannot start it"
    )
    assert len(found) == 2 and found[1].startswith(f": {ARM} differs from the arm64 binary")


def test_one_binary_needs_no_picking_launcher(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    rewrite(
        zip_path, manifest_path, **{LAUNCHER: (0o100755, f"#!/bin/sh\nexec /opt/{X86}\n".encode())}
    )
    _drop(zip_path, manifest_path, ARM)
    x86, _ = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[x86], architectures=["x86_64"])
    assert verify_zip(zip_path).layout == "universal"


def test_a_changed_zip_names_both_digests(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    actual = json.loads(manifest_path.read_text())["sha256"]
    edit_manifest(manifest_path, sha256="ab" * 32)
    assert _findings(zip_path) == [
        f": sha256 {actual[:12]}... differs from its build manifest (abababababab...); "
        "the zip changed after it was built"
    ]


def test_an_arch_the_manifest_does_not_list(universal_layer: tuple[Path, Path]) -> None:
    # Reachable from the library only (the CLI's --arch has two choices, both served here).
    zip_path, _ = universal_layer
    assert _findings(zip_path, arch="mips") == [": built for x86_64, arm64, not mips"]


def test_the_stand_in_note(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    x86, arm = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "source": "the stand-in"}, arm])
    assert verify_zip(zip_path).notes == (
        "carries the sandbox STAND-IN extension (not Relay): publish refuses it outside --sandbox",
    )


def test_binaries_listed_for_no_claimed_architecture(universal_layer: tuple[Path, Path]) -> None:
    zip_path, manifest_path = universal_layer
    x86, _ = json.loads(manifest_path.read_text())["extensions"]
    edit_manifest(manifest_path, extensions=[{**x86, "architecture": "i386", "path": ""}])
    assert _findings(zip_path)[0] == (
        ": the manifest claims x86_64, arm64 but lists no extension binary for x86_64, arm64"
    )
