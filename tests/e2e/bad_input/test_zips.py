"""Bad layer zips through ``verify`` and ``smoke``: exit 2, one ``error:`` line naming the zip and
the cause, nothing unpacked or written. (The hostile ones that try to escape the unpack
directory are in ``tests/e2e/smoke/test_hostile_zip.py``.)"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.aws.facts import MAX_UNZIPPED_BYTES
from tests.helpers.bad_input import BadInput
from tests.helpers.smoke_layers import make_layer


def _text(path: Path) -> Path:
    path.write_text("not a zip\n")
    return path


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _empty_zip(path: Path) -> Path:
    zipfile.ZipFile(path, "w").close()
    return path


def _readme_only(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README.md", "hello\n")
    return path


def _truncated(path: Path) -> Path:
    make_layer(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _encrypted(path: Path) -> Path:
    make_layer(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        first = zf.infolist()[0]
    data[first.header_offset + 6] |= 1  # the local header's encryption bit
    data[data.index(b"PK\x01\x02") + 8] |= 1  # and the central directory's
    path.write_bytes(bytes(data))
    return path


def _crc(path: Path) -> Path:
    make_layer(path, files={"python/data.txt": "A" * 100})
    data = path.read_bytes()
    i = data.index(b"A" * 100)
    path.write_bytes(data[:i] + b"B" + data[i + 1 :])
    return path


def _declared_bomb(path: Path) -> Path:
    # One member that claims more than Lambda allows, though its bytes are few: the size in
    # both headers is rewritten, so nothing may decompress it to find out.
    make_layer(path, files={"python/big.bin": "x" * 10})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("python/big.bin")
    big = (MAX_UNZIPPED_BYTES + 1).to_bytes(4, "little")
    data[info.header_offset + 22 : info.header_offset + 26] = big
    central = data.index(b"PK\x01\x02")
    while True:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == b"python/big.bin":
            data[central + 24 : central + 28] = big
            break
        extra = int.from_bytes(data[central + 30 : central + 32], "little")
        comment = int.from_bytes(data[central + 32 : central + 34], "little")
        central += 46 + name_len + extra + comment
    path.write_bytes(bytes(data))
    return path


def _members(*entries: tuple[str, int]) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        with zipfile.ZipFile(path, "w") as zf:
            for name, mode in entries:
                info = zipfile.ZipInfo(name)
                info.external_attr = mode << 16
                zf.writestr(info, "x")
        return path

    return make


def _link(name: str, target: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("python/ok.py", "")
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        return path

    return make


FILE = stat.S_IFREG | 0o644

#: case -> (zip maker, what the error line must say beside the zip's path)
CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a text file": (_text, "not a valid zip"),
    "an empty file": (_empty_file, "not a valid zip"),
    "half a zip": (_truncated, "not a valid zip"),
    "an encrypted member": (_encrypted, "encrypted member(s)"),
    "a CRC mismatch": (_crc, "CRC"),
    "a member claiming 250 MB": (_declared_bomb, "262,144,000"),
}

SMOKE_ONLY: dict[str, tuple[Callable[[Path], Path], str]] = {
    "an empty zip": (_empty_zip, "is empty at its root"),
    "no python/ or nodejs/": (_readme_only, "has neither python/ nor nodejs/"),
    "a symlink out": (_link("python/x", "/etc/passwd"), "symlinks leaving the layer"),
    "an unsafe name": (_members(("python/../../x.py", FILE)), "unsafe member names"),
    "an absolute name": (_members(("/etc/cron.d/x", FILE)), "unsafe member names"),
    "a device": (_members(("python/tty", stat.S_IFCHR | 0o666)), "devices"),
    "2,000 directories deep": (
        _members(("python/" + "d/" * 2000 + "x.py", FILE)),
        "nested deeper than 100 directories",
    ),
    "a file, then a member under it": (
        _members(("python/a", FILE), ("python/a/b.py", FILE)),
        "python/a/: cannot unpack (Not a directory)",
    ),
}


def test_a_build_manifest_nested_100000_deep(tmp_path: Path, bad_input: BadInput) -> None:
    z = make_layer(tmp_path / "layer.zip")
    manifest = tmp_path / "layer.zip.json"
    manifest.write_text("[" * 100_000 + "]" * 100_000)
    bad_input(["verify", str(z)], str(manifest), "nested too deeply")


@pytest.mark.parametrize("command", ["verify", "smoke"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_zip_is_one_line_naming_it(
    case: str, command: str, tmp_path: Path, bad_input: BadInput
) -> None:
    make, says = CASES[case]
    z = make(tmp_path / "layer.zip")
    bad_input([command, str(z)], str(z), says)


@pytest.mark.parametrize("case", sorted(SMOKE_ONLY))
def test_smoke_names_the_zip_and_the_cause(case: str, tmp_path: Path, bad_input: BadInput) -> None:
    make, says = SMOKE_ONLY[case]
    z = make(tmp_path / "layer.zip")
    bad_input(["smoke", str(z), "--no-baseline"], str(z), says)


@pytest.mark.parametrize("command", ["verify", "smoke"])
def test_a_missing_zip_or_a_directory(command: str, tmp_path: Path, bad_input: BadInput) -> None:
    missing = tmp_path / "missing.zip"
    bad_input([command, str(missing)], str(missing))
    bad_input([command, str(tmp_path)], str(tmp_path))
