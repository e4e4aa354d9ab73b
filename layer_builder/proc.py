"""The one place that runs subprocesses (pip, npm, python -m build).

Commands are argument lists, never shell strings. A failure becomes an InstallError whose
message carries the command and the last lines of its output, which is what a release
engineer needs to see in a CI log.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from layer_builder.errors import InstallError

log = logging.getLogger(__name__)

_TAIL_LINES = 15


def run(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str,
    timeout: float = 1800,
) -> str:
    """Run ``cmd``; return its combined output; raise InstallError naming ``what`` on failure."""
    log.debug("running %s", shlex.join(cmd))
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise InstallError(f"{what}: {cmd[0]!r} is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise InstallError(
            f"{what}: `{shlex.join(cmd)}` took longer than {timeout:.0f} s"
        ) from None
    if proc.returncode != 0:
        lines = proc.stdout.strip().splitlines()
        log.debug("`%s` failed; its last lines:\n  %s", shlex.join(cmd),
                  "\n  ".join(lines[-_TAIL_LINES:]))  # fmt: skip
        # One line for the user: the tool's own error lines (pip "ERROR:", npm "npm error"),
        # else its last line; the full output is logged above (and with -v).
        errors = [
            ln.strip()
            for ln in lines
            if ln.lstrip().startswith(("ERROR:", "npm error", "npm ERR!"))
        ]
        # The last error line is the conclusion (pip: "No matching distribution found for X").
        reason = errors[-1] if errors else (lines[-1].strip() if lines else "no output")
        raise InstallError(f"{what} failed: {reason[:300]} (details with -v)")
    return proc.stdout
