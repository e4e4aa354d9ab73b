"""The registry as files: the per-root lock, hand-written text, stray temp files, link order."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from test_registry import link_of, registration, rt, write

from layer_builder.errors import RegistryError
from layer_builder.registry.files import lock_path, registry_lock
from layer_builder.registry.layout import STATIC_INDEX_FILE


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
