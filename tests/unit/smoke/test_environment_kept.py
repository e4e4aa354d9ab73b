"""What a smoke run binds back into its private mount namespace (`_kept`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from layer_builder.smoke import environment


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the layer as nobody")
def test_a_sys_path_directory_nobody_cannot_enter_does_not_hide_what_is_kept_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = tmp_path / "checkout"  # as `mktemp -d` makes it: mode 0700
    inside = closed / "venv" / "lib"
    inside.mkdir(parents=True)
    closed.chmod(0o700)
    monkeypatch.setattr(sys, "path", [str(closed), str(inside)])
    kept = environment._kept(tmp_path / "work", [])
    assert str(closed) not in kept and str(inside) in kept
    closed.chmod(0o755)  # enterable: it is kept, and covers what is below it
    kept = environment._kept(tmp_path / "work", [])
    assert str(closed) in kept and str(inside) not in kept
