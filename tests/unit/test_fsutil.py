"""Whole-file writes replace the old file in one rename, or leave it as it was; the probe
finds out writability by creating a file, and leaves nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from layer_builder import fsutil


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    target.write_text("old")
    fsutil.write_replacing(target, "nëw", sync_file=True, sync_dir=True)
    assert target.read_bytes() == "nëw".encode()
    assert _names(tmp_path) == ["doc.json"]


def test_a_failing_block_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "layer.zip"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"), fsutil.replacing(target) as fh:
        fh.write(b"half a zi")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["layer.zip"]


def test_the_temporary_sits_beside_the_target_under_a_dot_name(tmp_path: Path) -> None:
    target = tmp_path / "latest.json"
    with fsutil.replacing(target) as fh:
        fh.write(b"{}")
        (temporary,) = (p for p in tmp_path.iterdir() if p.name != "latest.json")
        assert temporary.name.startswith(".latest.json.") and temporary.name.endswith(".tmp")
        assert len(temporary.name) == len(".latest.json.") + 12 + len(".tmp")
    assert not temporary.exists()


def test_mode_is_set_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with fsutil.replacing(tmp_path / "a.zip", mode=0o644) as fh:
            fh.write(b"z")
        fsutil.write_replacing(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.zip").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600


def test_a_symlink_is_replaced_and_keeps_its_relative_target(tmp_path: Path) -> None:
    link = tmp_path / "latest.json"
    link.symlink_to("1.0.0.json")
    fsutil.replace_symlink(link, "2.0.0.json", sync_dir=True)
    assert os.readlink(link) == "2.0.0.json"
    assert _names(tmp_path) == ["latest.json"]


def test_the_probe_says_yes_for_a_writable_directory_and_leaves_nothing(tmp_path: Path) -> None:
    assert fsutil.probe_writable(tmp_path) is None
    assert _names(tmp_path) == []


def test_the_probe_returns_the_error_that_refused_it(tmp_path: Path) -> None:
    refused = fsutil.probe_writable(tmp_path / "missing")
    assert isinstance(refused, FileNotFoundError)
