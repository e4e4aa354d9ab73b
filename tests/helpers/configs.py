"""A valid layer config (``VALID``) for the config tests to break one key at a time, and
``write`` to put a variant on disk."""

from __future__ import annotations

import sys
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


MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"


RUNTIME = f"python{MINOR}"


CONFIG = """\
name: "Test"
description: "Test {{ version }}"
license: MIT
canonical: "aws-layer:RUNTIME"
runtime: RUNTIME
compatible_runtimes: [RUNTIMES]
architectures: [x86_64]
sdk:
  package: PACKAGE
registry:
  runtime_dir: RUNTIME
"""


def optimize_config(tmp_path: Path, runtime: str, extra: str = "") -> Path:
    python = runtime == "python"
    text = (
        CONFIG.replace("RUNTIMES", "python3.12" if python else "nodejs22.x")
        .replace("RUNTIME", runtime)
        .replace("PACKAGE", "sentry-sdk" if python else "'@sentry/aws-serverless'")
    )
    path = tmp_path / f"{runtime}.yml"
    path.write_text(text + extra)
    return path
