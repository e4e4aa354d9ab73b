"""The reference builds through the CLI as a user runs them (``run_as_user``: a subprocess
with its own umask and TZ), the reference Node config and the stand-in extension binaries."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers.cli import run_subprocess
from tests.helpers.paths import REPO as ROOT

NODE_CONFIG = ROOT / "configs" / "sentry-node.yml"


STANDIN = ROOT / "extensions" / "standin"


def run_as_user(
    *args: str,
    cwd: Path,
    umask: int = 0o022,
    tz: str = "UTC",
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": tz}
    env.pop("SOURCE_DATE_EPOCH", None)
    env.update(extra_env or {})
    return run_subprocess(*args, cwd=cwd, env=env, umask=umask)


BINARIES = {
    "x86_64": STANDIN / "sentry-standin-x86_64",
    "arm64": STANDIN / "sentry-standin-aarch64",
}
