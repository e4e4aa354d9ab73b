"""What `layer-builder verify --json` reports about a good layer, field by field, and the
findings about layout, archive and extensions/ word for word (mutation testing found these
unpinned; see docs/mutation-testing.md)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import write_zip
from layer_builder.cli import main
from tests.helpers.verify import layer_tree, verify

NO_ARCH_NOTE = "no build manifest beside the zip and no --arch: architecture not checked"


def report(capsys: pytest.CaptureFixture[str], zip_path: Path, *args: str) -> dict[str, Any]:
    code = main(["verify", str(zip_path), "--json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (one,) = json.loads(captured.out)["zips"]
    return one  # type: ignore[no-any-return]


def test_the_report_of_a_good_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    data = z.read_bytes()
    inspection = inspect_zip(z)
    got = report(capsys, z)
    assert got == {
        "architecture": None,
        "architectures": [],
        "code_sha256": inspection.code_sha256,
        "elf_files": ["relay/relay"],
        "family": "python",
        "file_count": 4,
        "layout": None,
        "needs_s3_upload": False,
        "notes": [NO_ARCH_NOTE],
        "ok": True,
        "path": str(z),
        "room_left": 262_144_000 - inspection.unzipped_size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "unzipped_size": inspection.unzipped_size,
        "zip_size": len(data),
    }
    with_arch = report(capsys, z, "--arch", "x86_64")
    assert (with_arch["architecture"], with_arch["notes"]) == ("x86_64", [])


def test_the_direct_upload_note_at_its_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    size = z.stat().st_size
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", size)
    at = report(capsys, z, "--arch", "x86_64")
    assert (at["needs_s3_upload"], at["notes"]) == (False, [])
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", size - 1)
    over = report(capsys, z, "--arch", "x86_64")
    assert over["needs_s3_upload"] is True
    assert over["notes"] == ["over the 50 MB direct-upload limit: publishing goes through S3"]


def test_a_node_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t"
    (tree / "nodejs" / "node_modules" / "x").mkdir(parents=True)
    (tree / "nodejs" / "node_modules" / "x" / "index.js").write_text("module.exports = 1\n")
    z = write_zip(tree, tmp_path / "layer.zip").path
    got = report(capsys, z, "--arch", "arm64")
    assert (got["family"], got["file_count"], got["elf_files"]) == ("node", 1, [])


def _zip(path: Path, members: dict[str, tuple[int, bytes]]) -> Path:
    """Members in the given order, every other determinism marker right."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, (mode, data) in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_extensions_that_are_neither_elf_nor_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for size in (20, 64, 100):
        z = _zip(tmp_path / f"l{size}.zip", {
            "extensions/": (0o40755, b""),
            "extensions/ext": (0o100755, b"x" * size),
            "python/": (0o40755, b""),
            "python/a.py": (0o100644, b"a = 1\n"),
        })  # fmt: skip
        code, out, err = verify(capsys, str(z), "--arch", "x86_64")
        assert (code, out) == (2, "")
        assert err == (
            f"error: {z}: extensions/ext is neither an ELF executable nor a script with a #! line\n"
        )
    small = _zip(tmp_path / "small.zip", {
        "extensions/": (0o40755, b""),
        "extensions/ext": (0o100755, b"x" * 19),  # too short to be either: not looked at
        "python/": (0o40755, b""),
    })  # fmt: skip
    assert verify(capsys, str(small), "--arch", "x86_64")[0] == 0


def test_duplicate_and_unsafe_names_word_for_word(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    path = tmp_path / "dup.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")
        for name in ("python/", "python/a.py", "python/a.py", "python/b.py", "python/b.py"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
            zf.writestr(info, b"")
    code, _, err = verify(capsys, str(path))
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {path}: duplicate member names: python/a.py, python/b.py"
    )


SHARED_LIBRARY = (
    "is a shared library (ET_DYN without a program interpreter or the PIE flag), not an "
    "executable; Lambda (x86_64) cannot start it"
)


@pytest.mark.parametrize(
    ("launcher_size", "refused"),
    [(None, True), (65536, True), (65537, False)],  # launchers over 64 KiB are not read
)
def test_what_a_launcher_starts_must_be_an_executable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], launcher_size: int | None, refused: bool
) -> None:
    from tests.helpers.elf_fixtures import make_elf
    from tests.helpers.verify import LAUNCHER

    tree = layer_tree(tmp_path / "t")
    relay = tree / "relay" / "relay"  # not executable itself, but the launcher execs it
    relay.write_bytes(make_elf("x86_64", kind="shared"))
    relay.chmod(0o644)
    if launcher_size is not None:
        script = tree / "extensions" / "sentry-lambda-extension"
        script.write_bytes(LAUNCHER + b"#" * (launcher_size - len(LAUNCHER)))
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    if refused:
        assert (code, err) == (2, f"error: {z}:relay/relay: {SHARED_LIBRARY}\n")
    else:
        assert code == 0, err


def test_a_library_for_another_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.elf_fixtures import make_elf

    tree = layer_tree(tmp_path / "t")
    (tree / "python" / "_x.so").write_bytes(make_elf("arm64", kind="shared"))
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    assert (code, err) == (
        2,
        f"error: {z}:python/_x.so: is a library built for arm64; an x86_64 layer needs x86_64\n",
    )
