"""Release guards of the zip writer and the read-back checker, at their edges.

Each test here was written against a mutant that the older tests let through (see
docs/mutation-testing.md): the exec bit taken from the owner bit only, an extra field that
only the local header carries, a data descriptor.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import write_zip
from tests.helpers.zips import _Unseekable, _zip_by_hand


def test_any_exec_bit_makes_a_file_executable(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "python").mkdir(parents=True)
    # Modes whose only exec bit is the owner's, the group's or the others'.
    modes = {"owner": 0o744, "group": 0o610, "other": 0o601, "none": 0o644, "setuid": 0o4700}
    for name, mode in modes.items():
        path = tree / "python" / name
        path.write_bytes(name.encode())
        os.chmod(path, mode)
    with zipfile.ZipFile(write_zip(tree, tmp_path / "l.zip").path) as zf:
        got = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert got == {
        "python/": 0o40755,
        "python/group": 0o100755,
        "python/none": 0o100644,
        "python/other": 0o100755,
        "python/owner": 0o100755,
        "python/setuid": 0o100755,  # set-id bits never reach a layer
    }


def test_hand_made_zip_without_extras_is_clean(tmp_path: Path) -> None:
    # The control for the two tests below: the hand-made zip itself passes.
    inspection = inspect_zip(_zip_by_hand(tmp_path / "ok.zip", "python/a.py", b"x = 1\n"))
    assert inspection.problems() == []


def test_an_extra_field_only_in_the_local_header_is_found(tmp_path: Path) -> None:
    # Info-ZIP's "UT" extended timestamp: 5 bytes of data after a 4-byte field header.
    ut = struct.pack("<HHBI", 0x5455, 5, 1, 1_700_000_000)
    zip_path = _zip_by_hand(tmp_path / "ut.zip", "python/a.py", b"x = 1\n", local_extra=ut)
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.getinfo("python/a.py").extra == b""  # invisible to zipfile
    inspection = inspect_zip(zip_path)
    assert inspection.entries[0].has_extra is True
    assert inspection.problems() == [
        "extra fields (timestamps, uid/gid) on 1 members, e.g. python/a.py"
    ]


def test_an_extra_field_in_the_central_directory_is_found(tmp_path: Path) -> None:
    ux = struct.pack("<HHBBIBI", 0x7875, 11, 1, 4, 1000, 4, 1000)  # Info-ZIP uid/gid
    zip_path = _zip_by_hand(tmp_path / "ux.zip", "python/a.py", b"x = 1\n", central_extra=ux)
    assert inspect_zip(zip_path).problems() == [
        "extra fields (timestamps, uid/gid) on 1 members, e.g. python/a.py"
    ]


def test_data_descriptors_are_found(tmp_path: Path) -> None:
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ("python/a.py", "python/b.py"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            zf.writestr(info, b"y = 2\n" * 10)
    zip_path = tmp_path / "dd.zip"
    zip_path.write_bytes(bytes(stream.buffer))
    inspection = inspect_zip(zip_path)
    assert [e.has_data_descriptor for e in inspection.entries] == [True, True]
    assert inspection.problems() == ["data descriptors are used"]
    assert inspection.is_deterministic is False
