"""The registry lock is taken once per release and handed on, never taken twice.

A second take in the same process waits for the first like another run's would and gives up
with the holder's name: it can neither deadlock nor silently pass. Code that writes under a
lock its caller took is handed the held lock, and refuses a lock that is not (or no longer)
the one of the root it writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layer_builder.errors import RegistryError
from layer_builder.registry.files import registry_lock
from tests.helpers.registrations import registration, rt, write


def test_a_second_take_in_the_same_thread_gives_up_naming_this_process(tmp_path: Path) -> None:
    with (
        registry_lock(tmp_path, wait=0.2),
        pytest.raises(RegistryError, match=rf"holds the registry lock \(pid {os.getpid()} "),
        registry_lock(tmp_path, wait=0.2),
    ):
        pass  # pragma: no cover - the second take must not succeed


def test_a_write_handed_the_held_lock_writes_without_taking_it_again(tmp_path: Path) -> None:
    with registry_lock(tmp_path, wait=0) as lock:
        result = write(tmp_path, registration("2.75.0"), lock=lock)
        assert result.version_file == rt(tmp_path) / "2.75.0.json"
        assert result.version_file.is_file()


@pytest.mark.parametrize("which", ["another root's lock", "a lock already released"])
def test_a_write_refuses_a_lock_that_does_not_hold_its_root(tmp_path: Path, which: str) -> None:
    root = tmp_path / "registry"
    if which == "another root's lock":
        with (
            registry_lock(tmp_path / "other") as lock,
            pytest.raises(RuntimeError, match="without holding its registry lock"),
        ):
            write(root, registration("2.75.0"), lock=lock)
    else:
        with registry_lock(root) as lock:
            pass
        with pytest.raises(RuntimeError, match="without holding its registry lock"):
            write(root, registration("2.75.0"), lock=lock)
    assert not rt(root).exists()
