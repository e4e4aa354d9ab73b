"""The registry as files: the per-root lock, hand-written text, stray temp files, link order."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import RegistryError
from layer_builder.registry import files
from layer_builder.registry.files import (
    clean_stray_temps,
    lock_path,
    preflight_release,
    registry_lock,
    same_json,
)
from layer_builder.registry.layout import STATIC_INDEX_FILE
from tests.helpers.registrations import link_of, registration, rt, write


def test_a_hand_edited_document_is_kept_byte_for_byte_and_non_ascii_stays_literal(
    tmp_path: Path,
) -> None:
    write(tmp_path, registration(regions=[("us-east-1", 3)]))
    doc_path = rt(tmp_path) / "2.75.0.json"
    doc = json.loads(doc_path.read_text())
    doc["notes"] = "Früh veröffentlicht – “ok”"
    hand = json.dumps(doc, indent=4, ensure_ascii=False) + "\n"  # another indent, by hand
    doc_path.write_text(hand, encoding="utf-8")

    result = write(tmp_path, registration(regions=[("us-east-1", 3)]))
    assert doc_path.read_text(encoding="utf-8") == hand  # nothing changed: not rewritten
    assert doc_path not in result.written

    write(tmp_path, registration(regions=[("us-east-1", 3), ("eu-west-1", 5)]))
    text = doc_path.read_text(encoding="utf-8")
    assert "Früh veröffentlicht – “ok”" in text and "\\u" not in text
    assert [r["region"] for r in json.loads(text)["regions"]] == ["eu-west-1", "us-east-1"]


def test_stray_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    write(tmp_path, registration())
    strays = [
        rt(tmp_path) / ".2.75.0.json.0123456789ab.tmp",
        rt(tmp_path) / ".latest.json.abcdef012345.tmp",
    ]
    strays[0].write_text("{half a file")
    strays[1].symlink_to("2.75.0.json")
    keep = rt(tmp_path) / ".hidden-by-the-user"
    keep.write_text("mine")
    write(tmp_path, registration("2.76.0"))
    assert not any(os.path.lexists(p) for p in strays)
    assert keep.read_text() == "mine"


def test_a_second_holder_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "not-created-yet"  # the lock exists before the root does
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with registry_lock(root):
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(30)
        with (
            pytest.raises(RegistryError, match=rf"holds the registry lock \(pid {os.getpid()} "),
            registry_lock(root, wait=0.2),
        ):
            pass
    finally:
        release.set()
        t.join()
    with registry_lock(root, wait=0.2):
        assert lock_path(root).is_file()
    assert not root.exists()


def test_writers_creating_a_fresh_root_at_once_all_land_in_the_index(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    errors: list[BaseException] = []

    def release(runtime: str) -> None:
        try:
            write(root, registration(runtime_dir=runtime, canonical=f"aws-layer:{runtime}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=release, args=(r,)) for r in ("python", "node", "ruby")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    index = json.loads((root / STATIC_INDEX_FILE).read_text())
    assert sorted(index) == ["aws-layer:node", "aws-layer:python", "aws-layer:ruby"]


@pytest.mark.parametrize(
    ("older", "newer", "link_prereleases"),
    [
        ("8.0.0-beta.9", "8.0.0-beta.10", True),
        ("2.0.0rc9", "2.0.0rc10", True),
        ("2.75.0", "2.75.0.post1", False),  # a post-release is a release: it takes the links
    ],
)
def test_links_follow_version_order_not_text(
    tmp_path: Path, older: str, newer: str, link_prereleases: bool
) -> None:
    write(tmp_path, registration(older, link_prereleases=link_prereleases))
    write(tmp_path, registration(newer, link_prereleases=link_prereleases))
    assert link_of(tmp_path, "latest.json") == f"{newer}.json"
    # And the older one, written again later, does not take it back.
    write(tmp_path, registration(older, link_prereleases=link_prereleases))
    assert link_of(tmp_path, "latest.json") == f"{newer}.json"


# ------------------------------------------------------------------------------------------------
# The registry as files: where the lock lives and what it tells a second run, stray
# temporary files, and when a rewrite is a no-op. Direct calls.


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


# ------------------------------------------------------------------------------------------------
# The registry preflight, run before the first AWS write: what it refuses, with which words,
# and what it reads. Direct calls (no CLI, no moto).


def files_under(root: Path) -> list[str]:
    """Every entry under ``root`` (links not followed), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def released(root: Path, *versions: str) -> Path:
    """A registry under ``root`` with these versions recorded; the python runtime dir."""
    for version in versions:
        write(root, registration(version))
    return rt(root)


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.write_text("not a directory")
    with pytest.raises(RegistryError, match=r"registry: the registry root is not a directory$"):
        preflight_release(root, "python", "2.75.0")


def test_a_root_that_is_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.symlink_to(tmp_path / "gone")
    with pytest.raises(RegistryError, match=r"registry: the registry root is not a directory$"):
        preflight_release(root, "python", "2.75.0")


@pytest.mark.parametrize("which", ["aws-lambda-layers", "aws-lambda-layers/python"])
def test_a_registry_directory_that_is_a_file_is_refused_by_name(tmp_path: Path, which: str) -> None:
    (tmp_path / which).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / which).write_text("{}")
    with pytest.raises(RegistryError, match=rf"^{tmp_path / which}: expected a directory$"):
        preflight_release(tmp_path, "python", "2.75.0")


def test_a_root_below_a_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match=rf"^{blocker}: expected a directory$"):
        preflight_release(blocker / "registry", "python", "2.75.0")


def test_a_root_that_does_not_exist_yet_passes_and_nothing_is_created(tmp_path: Path) -> None:
    root = tmp_path / "new" / "registry"
    state = preflight_release(root, "python", "2.75.0")
    assert (state.root, state.version_path) == (
        root,
        root / "aws-lambda-layers" / "python" / "2.75.0.json",
    )
    assert (state.document, state.others, state.unreadable) == (None, {}, [])
    assert files_under(tmp_path) == []  # the probe went into tmp_path and was removed


def test_the_probe_file_is_removed_after_the_check(tmp_path: Path) -> None:
    runtime = released(tmp_path, "2.75.0")
    before = files_under(tmp_path)
    preflight_release(tmp_path, "python", "2.76.0")
    assert files_under(tmp_path) == before
    assert sorted(p.name for p in runtime.iterdir())[0] == "2.75.0.json"


def refuse_creating_in(monkeypatch: pytest.MonkeyPatch, directory: Path) -> list[str]:
    """os.open refuses to create files in ``directory`` (a read-only checkout; the tests run
    as root, where chmod would not do it). Returns the names that were attempted."""
    real_open = os.open
    attempts: list[str] = []

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path).parent == directory and flags & os.O_CREAT:
            attempts.append(Path(path).name)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", fake_open)
    return attempts


def test_an_unwritable_registry_is_refused_before_publishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = released(tmp_path, "2.75.0")
    attempts = refuse_creating_in(monkeypatch, runtime)
    with pytest.raises(RegistryError) as info:
        preflight_release(tmp_path, "python", "2.76.0")
    assert str(info.value) == (
        f"{runtime}: the registry is not writable (Permission denied); fix its permissions "
        "or pass another --registry (nothing was published)"
    )
    assert len(attempts) == 1


def test_the_probe_goes_to_the_deepest_directory_that_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    refuse_creating_in(monkeypatch, root)
    with pytest.raises(RegistryError, match=rf"^{root}: the registry is not writable \("):
        preflight_release(root, "python", "2.75.0")


def test_a_dry_run_does_not_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = released(tmp_path, "2.75.0")
    attempts = refuse_creating_in(monkeypatch, runtime)
    state = preflight_release(tmp_path, "python", "2.76.0", writable=False)
    assert attempts == []
    assert state.version_path == runtime / "2.76.0.json"


def test_a_writable_registry_is_probed_once_in_the_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = released(tmp_path, "2.75.0")
    real_open = os.open
    created: list[tuple[Path, int, tuple[Any, ...]]] = []

    def spy(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT:
            created.append((Path(path).parent, flags, args))
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", spy)
    preflight_release(tmp_path, "python", "2.76.0")
    # Exclusive create: an existing file of that name is never opened, let alone truncated.
    assert created == [(runtime, os.O_WRONLY | os.O_CREAT | os.O_EXCL, (0o600,))]


def test_the_release_s_own_document_is_read_and_returned(tmp_path: Path) -> None:
    runtime = released(tmp_path, "2.75.0")
    state = preflight_release(tmp_path, "python", "2.75.0")
    assert state.document == json.loads((runtime / "2.75.0.json").read_text())


def test_the_release_s_own_broken_document_is_reported_before_anything_else(
    tmp_path: Path,
) -> None:
    runtime = released(tmp_path, "2.75.0")
    (runtime / "base.json").write_text("{")  # also broken, but read after
    (runtime / "2.75.0.json").write_text("[]")
    with pytest.raises(
        RegistryError, match=rf"^{runtime / '2.75.0.json'}: expected a JSON object, found list$"
    ):
        preflight_release(tmp_path, "python", "2.75.0")


def test_a_broken_base_json_is_refused(tmp_path: Path) -> None:
    runtime = released(tmp_path, "2.75.0")
    (runtime / "base.json").write_text("{")
    with pytest.raises(RegistryError, match=rf"^{runtime / 'base.json'}: not valid JSON \("):
        preflight_release(tmp_path, "python", "2.76.0")


@pytest.mark.parametrize("link", ["latest.json", "2.75.json"])
def test_a_dangling_link_is_refused_naming_its_target(tmp_path: Path, link: str) -> None:
    runtime = released(tmp_path, "2.75.0")
    (runtime / link).unlink()
    (runtime / link).symlink_to("2.74.9.json")
    with pytest.raises(
        RegistryError, match=rf"^{runtime / link}: links to 2.74.9.json, which is missing$"
    ):
        preflight_release(tmp_path, "python", "2.76.0")


def test_another_runtime_s_broken_latest_json_is_refused(tmp_path: Path) -> None:
    released(tmp_path, "2.75.0")
    other = tmp_path / "aws-lambda-layers" / "node"
    other.mkdir()
    (other / "latest.json").write_text("{")
    with pytest.raises(RegistryError, match=rf"^{other / 'latest.json'}: not valid JSON \("):
        preflight_release(tmp_path, "python", "2.76.0")


def test_the_runtime_s_version_documents_are_read_and_broken_ones_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = released(tmp_path, "2.74.0", "2.75.0")
    docs = {
        name: json.loads((runtime / name).read_text()) for name in ("2.74.0.json", "2.75.0.json")
    }
    (runtime / "2.73.0.json").write_text("{")
    # Skipped: files whose name starts with a dot (sorted first, so a skip that stopped the
    # scan would lose every document), base.json, and the links.
    (runtime / ".copy.json").write_text((runtime / "2.74.0.json").read_text())
    (runtime / "0.json").symlink_to("2.74.0.json")
    with caplog.at_level(logging.WARNING, logger="layer_builder.registry.files"):
        state = preflight_release(tmp_path, "python", "2.76.0")
    assert {p.name: d for p, d in state.others.items()} == docs
    assert all(p.parent == runtime for p in state.others)
    assert state.unreadable == [runtime / "2.73.0.json"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{runtime / '2.73.0.json'}: not valid JSON (Expecting property name enclosed in "
        "double quotes, line 1)"
    ]


def test_a_probe_that_cannot_be_removed_does_not_fail_the_preflight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An append-only directory (chattr +a) lets a file be created but not removed: it is
    # writable, which is all the preflight asks.
    runtime = released(tmp_path, "2.75.0")
    real_unlink = os.unlink
    refused: list[str] = []

    def append_only(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).parent == runtime:
            refused.append(Path(path).name)
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", append_only)
    state = preflight_release(tmp_path, "python", "2.76.0")
    assert state.version_path == runtime / "2.76.0.json"
    assert len(refused) == 1
