"""A valid layer config (``VALID``) for the config tests to break one key at a time, and
``write`` to put a variant on disk."""

from __future__ import annotations

from pathlib import Path

VALID = """\
name: "TestLayer{{ arch_suffix }}"
description: "Test SDK {{ version }} ({{ arch }})"
license: MIT
canonical: "aws-layer:python"
runtime: python
compatible_runtimes: [python3.12, python3.13]
architectures: [x86_64, arm64]
sdk:
  package: sentry-sdk
files:
  - from: wrapper.py
    to: python/wrapper.py
publish:
  regions: all
  permission:
    principal: "*"
registry:
  runtime_dir: python
layout: per-arch
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "wrapper.py").write_text("# wrapper\n")
    path = tmp_path / "layer.yml"
    path.write_text(text)
    return path
