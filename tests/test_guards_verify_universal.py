"""`layer-builder verify` on a universal layer whose manifest, binaries or launcher disagree:
every finding word for word (mutation testing found these checks unpinned; see
docs/mutation-testing.md). The layer is built through the CLI (pip replaced by a stand-in,
real tiny ELF binaries), then one thing at a time is changed."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from layer_builder.build.verify import neutrality_error, verify_zip
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
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(built[0])]) == 0, capsys.readouterr().err


def test_manifest_disagreements_word_for_word(
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = built
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
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = built
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
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path, manifest_path = built
    manifest_path.unlink()
    assert main(["verify", str(zip_path), "--json"]) == 0, capsys.readouterr().err
    (report,) = json.loads(capsys.readouterr().out)["zips"]
    assert (report["layout"], report["architectures"]) == ("universal", ["x86_64", "arm64"])
    with pytest.raises(ArtifactError, match="serves x86_64, arm64, not riscv64") as exc:
        verify_zip(zip_path, arch="riscv64")
    assert str(exc.value).startswith(f"{zip_path}: serves x86_64, arm64, not riscv64")
