"""inspect_zip() on archives that break every rule at once, a CRC mismatch and a broken local
header: the exact problems reported, messages and markers."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest

from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import write_zip
from layer_builder.errors import ArtifactError
from tests.helpers.zips import Unseekable, zip_by_hand


def _info(name: str, date: tuple[int, int, int, int, int, int], system: int = 3) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=date)
    info.create_system = system
    info.external_attr = 0o100644 << 16
    return info


def test_every_problem_of_a_careless_zip_is_reported(tmp_path: Path) -> None:
    stream = Unseekable()  # unseekable: zipfile writes data descriptors
    with warnings.catch_warnings(), zipfile.ZipFile(stream, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        zf.writestr(_info("python/b.py", (2024, 1, 2, 0, 0, 0)), b"b")
        zf.writestr(_info("python/a.py", (2024, 1, 1, 0, 0, 0), system=0), b"a")
        zf.writestr(_info("python/a.py", (2024, 1, 1, 0, 0, 0)), b"again")
        zf.writestr(_info("python/b.py", (2024, 1, 1, 0, 0, 0)), b"again")
        for unsafe in ("/etc/passwd", "\\windows", "c:/boot.ini", "D:x", "python/../../x"):
            zf.writestr(_info(unsafe, (2024, 1, 1, 0, 0, 0)), b"!")
        zf.comment = b"made by hand"
    path = tmp_path / "careless.zip"
    path.write_bytes(bytes(stream.buffer))
    inspection = inspect_zip(path)
    assert inspection.path == path
    assert inspection.problems() == [
        "members have different timestamps",
        "members are not sorted by name",
        "data descriptors are used",
        "some members were not made on Unix, so modes are not recorded",
        "the archive has a comment",
        "unsafe member names: /etc/passwd, \\windows, c:/boot.ini, D:x, python/../../x",
        "duplicate member names: python/a.py, python/b.py",
    ]
    assert inspection.safe_paths is False and inspection.is_deterministic is False


def test_entries_report_sizes_and_methods(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "python").mkdir(parents=True)
    (tree / "python" / "big.txt").write_bytes(b"abc" * 1000)
    (tree / "python" / "empty").write_bytes(b"")
    result = write_zip(tree, tmp_path / "l.zip")
    inspection = inspect_zip(result.path)
    got = {e.name: (e.size, e.compress_type, e.is_dir) for e in inspection.entries}
    assert got == {
        "python/": (0, zipfile.ZIP_STORED, True),
        "python/big.txt": (3000, zipfile.ZIP_DEFLATED, False),
        "python/empty": (0, zipfile.ZIP_STORED, False),
    }
    with zipfile.ZipFile(result.path) as zf:
        packed = zf.getinfo("python/big.txt").compress_size
    big = next(e for e in inspection.entries if e.name == "python/big.txt")
    assert 0 < big.compressed_size == packed < 3000
    assert (inspection.zip_size, inspection.sha256) == (result.zip_size, result.sha256)
    assert inspection.has_comment is False and inspection.problems() == []


def _stored_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(_info("python/a.py", (1980, 1, 1, 0, 0, 0)), b"a = 1\n")
    return path


def test_a_crc_mismatch_is_refused_unless_crcs_are_skipped(tmp_path: Path) -> None:
    path = _stored_zip(tmp_path / "crc.zip")
    data = bytearray(path.read_bytes())
    at = data.index(b"a = 1\n")
    data[at] = ord("b")  # same size, different bytes: only the CRC can tell
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="CRC mismatch") as exc:
        inspect_zip(path)
    assert str(exc.value) == f"{path}: not a valid zip: python/a.py: CRC mismatch"
    assert inspect_zip(path, check_crc=False).entries[0].name == "python/a.py"


def test_a_broken_local_header_is_refused(tmp_path: Path) -> None:
    path = _stored_zip(tmp_path / "local.zip")
    data = bytearray(path.read_bytes())
    data[0:4] = b"PK\x05\x05"  # the central directory still points here
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="bad local header") as exc:
        inspect_zip(path, check_crc=False)
    assert str(exc.value) == f"{path}: not a valid zip: python/a.py: bad local header"


def test_a_one_byte_local_extra_field_counts(tmp_path: Path) -> None:
    path = zip_by_hand(tmp_path / "x.zip", "python/a.py", b"a\n", local_extra=b"\x00")
    assert inspect_zip(path, check_crc=False).entries[0].has_extra is True


def test_another_flag_bit_is_not_a_data_descriptor(tmp_path: Path) -> None:
    path = zip_by_hand(tmp_path / "x.zip", "python/a.py", b"a\n", flags=0x02)
    entry = inspect_zip(path, check_crc=False).entries[0]
    assert (entry.has_data_descriptor, entry.has_extra) == (False, False)
