"""The registry as files: where the lock lives and what it tells a second run, stray
temporary files, and when a rewrite is a no-op. Direct calls, fast enough for every mutant."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from layer_builder.registry import files
from layer_builder.registry.files import clean_stray_temps, lock_path, registry_lock, same_json

# --- the lock ---------------------------------------------------------------------------


def test_the_lock_lives_in_the_users_lock_dir_keyed_by_the_root_s_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    root = tmp_path / "registry"
    key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    assert lock_path(root) == (tmp_path / "run" / "layer-builder" / f"registry-{key}.lock")


def test_one_root_has_one_lock_however_it_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to("real")
    monkeypatch.chdir(tmp_path)
    assert lock_path(Path("real")) == lock_path(tmp_path / "alias") == lock_path(tmp_path / "real")
    assert lock_path(tmp_path / "other") != lock_path(tmp_path / "real")


def fixed_gmtime(seconds: float | None = None) -> time.struct_time:
    return time.struct_time((2026, 11, 23, 19, 0, 0, 0, 327, 0))


def test_the_lock_file_names_its_holder_while_held_and_is_emptied_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/layer-builder", "publish", "--dry-run"])
    monkeypatch.setattr(files.socket, "gethostname", lambda: "ci-7")
    monkeypatch.setattr(files.time, "gmtime", fixed_gmtime)
    root = tmp_path / "registry"
    with registry_lock(root):
        held = lock_path(root).read_text()
    assert held == (
        f"pid {os.getpid()} on ci-7 since 2026-11-23T19:00:00Z: layer-builder publish --dry-run\n"
    )
    assert lock_path(root).read_bytes() == b""


def test_only_the_program_s_own_path_is_shortened_and_the_command_is_cut_at_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["/opt/venv/bin/layer-builder", "publish", "--registry", "/srv/reg/" + "d" * 300]
    monkeypatch.setattr(sys, "argv", args)
    root = tmp_path / "registry"
    with registry_lock(root):
        held = lock_path(root).read_text()
    command = held.split(": ", 1)[1]
    assert command == ("layer-builder publish --registry /srv/reg/" + "d" * 300)[:200] + "\n"


# --- stray temporary files --------------------------------------------------------------


def test_stray_temps_are_removed_and_returned_and_nothing_else_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    stray_file = a / ".2.75.0.json.0123456789ab.tmp"
    stray_file.write_text("{half")
    stray_link = b / ".latest.json.abcdef012345.tmp"
    stray_link.symlink_to("gone.json")  # dangling: removed all the same
    kept = [
        a / ".2.json.0123456789ab.tmp.keep",
        a / "2.75.0.json",
        a / ".0123456789ab.tmp",  # no name before the token
        a / ".x.0123456789AB.tmp",  # not the writer's lower-case hex
    ]
    for path in kept:
        path.write_text("mine")
    stray_dir = b / ".dir.0123456789ab.tmp"  # a directory is never the writer's
    stray_dir.mkdir()

    with caplog.at_level(logging.INFO, logger="layer_builder.registry.files"):
        removed = clean_stray_temps(tmp_path / "missing", a, b)
    assert removed == [stray_file, stray_link]
    assert not os.path.lexists(stray_file) and not os.path.lexists(stray_link)
    assert all(p.read_text() == "mine" for p in kept) and stray_dir.is_dir()
    assert [r.getMessage() for r in caplog.records] == [
        f"removed stray temporary files: {stray_file}, {stray_link}"
    ]


def test_nothing_to_clean_returns_nothing_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "2.75.0.json").write_text("{}")
    with caplog.at_level(logging.DEBUG, logger="layer_builder.registry.files"):
        assert clean_stray_temps(tmp_path, tmp_path / "missing") == []
    assert caplog.records == []


# --- same_json --------------------------------------------------------------------------


def test_same_json_ignores_formatting_and_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"b": [1, 2],\n    "a": "Früh – “ok”"}', encoding="utf-8")
    assert same_json(path, json.dumps({"a": "Früh – “ok”", "b": [1, 2]}, indent=2)) is True


@pytest.mark.parametrize(
    "on_disk",
    [
        '{"a": 2}',  # another value
        '{"a": 1',  # not JSON
        b'{"a": "\xff"}',  # not UTF-8
    ],
)
def test_same_json_is_false_for_other_or_unreadable_content(
    tmp_path: Path, on_disk: str | bytes
) -> None:
    path = tmp_path / "doc.json"
    if isinstance(on_disk, bytes):
        path.write_bytes(on_disk)
    else:
        path.write_text(on_disk)
    assert same_json(path, '{"a": 1}') is False


def test_same_json_is_false_for_text_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"a": 1}')
    assert same_json(path, "{") is False


def test_same_json_is_false_for_a_link_a_directory_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "doc.json").write_text('{"a": 1}')
    (tmp_path / "link.json").symlink_to("doc.json")  # replaced by a file, never written through
    (tmp_path / "dir.json").mkdir()
    results = [same_json(tmp_path / n, '{"a": 1}') for n in ("link.json", "dir.json", "no.json")]
    assert results == [False, False, False]


def test_a_stray_that_cannot_be_removed_is_kept_and_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = tmp_path / ".latest.json.0123456789ab.tmp"
    gone = tmp_path / ".2.json.0123456789ab.tmp"
    for path in (stuck, gone):
        path.write_text("{half")
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == stuck:  # another user's file in a sticky directory, say
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    assert clean_stray_temps(tmp_path) == [gone]
    assert stuck.read_text() == "{half" and not gone.exists()


def test_same_json_reads_utf8_whatever_the_locale_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "doc.json"
    text = json.dumps({"notes": "Früh – “ok”"}, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    real = io.text_encoding

    def cp1252_locale(encoding: str | None, stacklevel: int = 2) -> str:
        # What Python picks for encoding=None on a Windows machine in Western Europe.
        return "cp1252" if encoding is None else real(encoding, stacklevel)

    monkeypatch.setattr(io, "text_encoding", cp1252_locale)
    assert same_json(path, text) is True
