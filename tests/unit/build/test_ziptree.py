"""The layer-tree walk's refusals, word for word: missing or non-directory roots, unlistable
directories, names that are not UTF-8, stat failures and every kind of bad symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layer_builder.build.ziptree import collect_tree
from layer_builder.errors import ArtifactError


def refusal(root: Path) -> str:
    with pytest.raises(ArtifactError, match=".") as exc:
        collect_tree(root)
    return str(exc.value)


def test_root_missing_or_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert refusal(missing) == (
        f"{missing}: cannot read the layer tree: [Errno 2] No such file or directory: '{missing}'"
    )
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert refusal(afile) == f"{afile}: the layer tree is not a directory"


def test_an_unlistable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    (root / "python" / "locked").mkdir(parents=True)
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert refusal(root) == f"{root}/python/locked: cannot list directory: Permission denied"


def test_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    fd = os.open(os.fsencode(root) + b"/caf\xe9", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    assert refusal(root) == f"{root}/caf\udce9: file name is not valid UTF-8"


def test_a_symlink_target_that_cannot_be_stat_ed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "target").write_text("x")
    (root / "link").symlink_to("target")
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(root / "target") and not args and not kwargs:
            raise PermissionError(13, "Permission denied")
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    assert refusal(root) == f"{root}/link: cannot stat: Permission denied"


def test_bad_symlinks_word_for_word(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "gone").symlink_to("missing-target")
    assert refusal(root) == f"{root}/gone: dangling symlink (-> missing-target)"
    (root / "gone").unlink()

    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    (root / "out").symlink_to(outside)
    assert refusal(root) == (
        f"{root}/out: symlink points outside the layer tree (-> {outside}); "
        "copy the file into the tree instead"
    )
    (root / "out").unlink()

    (root / "a").symlink_to("a")  # a loop: its wording is Python's own, so only the start
    assert refusal(root).startswith(f"{root}/a: cannot resolve symlink (-> a): ")


def test_entries_name_mode_and_size(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "python" / "pkg").mkdir(parents=True)
    (root / "python" / "pkg" / "mod.py").write_bytes(b"x = 1\n")
    (root / "python" / "run").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "python" / "run", 0o700)
    got = [(e.name, e.mode, e.size) for e in collect_tree(root)]
    assert got == [
        ("python/", 0o40755, 0),
        ("python/pkg/", 0o40755, 0),
        ("python/pkg/mod.py", 0o100644, 6),
        ("python/run", 0o100755, 10),
    ]


def test_a_fifo_is_refused_word_for_word(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    os.mkfifo(root / "pipe")
    assert refusal(root) == (
        f"{root}/pipe: unsupported file type (fifo); a layer may hold only regular files, "
        "directories and symlinks to them"
    )
