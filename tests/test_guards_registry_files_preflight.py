"""The registry preflight, run before the first AWS write: what it refuses, with which words,
and what it reads. Direct calls (no CLI, no moto): fast enough for every mutant."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import RegistryError
from layer_builder.registry import files
from layer_builder.registry.files import preflight_release
from tests.helpers.registrations import registration, rt, write


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
