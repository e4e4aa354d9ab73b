"""Small layer trees zipped by the real zipper, and ``verify`` run on them through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_builder.cli import main
from tests.helpers.elf_fixtures import make_elf

WRAPPER = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"


LAUNCHER = b"#!/bin/sh\nexec /opt/relay/relay run --mode=proxy\n"


def layer_tree(root: Path, *, arch: str = "x86_64", wrapper: bool = True) -> Path:
    (root / "python/sentry_sdk/integrations/init_serverless_sdk").mkdir(parents=True)
    (root / "python/sentry_sdk/__init__.py").write_text("VERSION = '1'\n")
    if wrapper:
        (root / WRAPPER).write_text("def sentry_lambda_handler(e, c): pass\n")
    (root / "extensions").mkdir()
    launcher = root / "extensions/sentry-lambda-extension"
    launcher.write_bytes(LAUNCHER)
    launcher.chmod(0o755)
    (root / "relay").mkdir()
    relay = root / "relay/relay"
    relay.write_bytes(make_elf(arch, payload=b"relay" * 10))
    relay.chmod(0o755)
    return root


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err
