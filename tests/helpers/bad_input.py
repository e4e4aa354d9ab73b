"""The bad-input tables' harness: ``BadInput`` runs a command that must fail with one
``error:`` line and checks nothing was written (``file_tree`` before and after); ``VALID`` is
a good layer config and ``CRAFT`` a good craft config for the cases to break."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def file_tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (links not followed): mode, size, mtime in ns."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


class BadInput:
    """Runs ``layer-builder ARGV`` from a directory of its own and checks what bad input must
    give: the exit code, stderr exactly one ``error:`` line naming the input, no traceback
    (stdout may hold the progress made before the error), and nothing written or changed
    under the test's temporary directory (which holds the working directory and every
    input)."""

    def __init__(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.tmp = tmp_path
        self.capsys = capsys
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(self.cwd)

    def __call__(self, argv: list[str], *names: str, code: int = 2) -> str:
        from layer_builder.cli import main

        before = file_tree(self.tmp)
        got = main(argv)
        out, err = self.capsys.readouterr()
        lines = err.splitlines()
        assert got == code, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert "Traceback" not in out + err and "error:" not in out, (argv, out)
        for name in names:
            assert name in lines[0], (argv, name, lines[0])
        assert file_tree(self.tmp) == before, f"{argv} wrote or changed files"
        return lines[0]


VALID = """\
name: "SentryPythonServerlessSDK"
description: "Sentry Python SDK {{ version }}"
license: MIT
canonical: "aws-layer:python"
runtime: python
compatible_runtimes: [python3.12]
architectures: [x86_64]
sdk:
  package: sentry-sdk
  version: "{{ version }}"
publish:
  regions: [us-east-1]
  max_workers: 64
  region_timeout: 600
registry:
  runtime_dir: python
"""


CRAFT = """\
minVersion: 2.0.0
targets:
  - name: github
  - name: aws-lambda-layer
    includeNames: /^layer-.*\\.zip$/
    layerName: TestLayer
    compatibleRuntimes:
      - name: python
        versions: [python3.12, python3.13]
    license: MIT
"""
