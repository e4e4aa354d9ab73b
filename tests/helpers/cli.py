"""Running layer-builder the two ways the tests need: in this process, or as a user does.

``run_cli`` calls ``cli.main`` and reads what it printed from pytest's ``capsys``; fast, and
mutation testing sees the mutated code. ``run_subprocess`` starts ``python -m
layer_builder`` as a user's shell would (its own environment, working directory, umask),
for what only a real process shows: exit on a signal, locale, umask, two runs at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from layer_builder.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``layer-builder ARGV`` in this process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(
    *args: str, cwd: Path, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``layer-builder ARGS`` in a subprocess (``env`` None: this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "layer_builder", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )
