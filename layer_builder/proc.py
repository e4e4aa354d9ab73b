"""The one place that runs subprocesses (pip, npm, python -m build).

Commands are argument lists, never shell strings. A failure becomes an InstallError whose
message carries the command and the last lines of its output, which is what a release
engineer needs to see in a CI log.
"""

from __future__ import annotations

import logging
import os
import re
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
        raise InstallError(f"{what} failed: {first_error_line(lines)} (details with -v)")
    return proc.stdout


#: How pip ("ERROR: "), python -m build ("ERROR "), npm ("npm error", "npm ERR!") and
#: setuptools/pip subprocesses ("error: ") mark their error lines.
_ERROR_PREFIXES = ("ERROR:", "ERROR ", "npm error", "npm ERR!", "error:")
#: Error lines that are bookkeeping, not the cause: npm's code/errno lines, its log path and
#: advice, pip's hint to read the output above.
_NOISE = re.compile(
    r"^(npm (error|ERR!)\s+(code|errno|syscall|path|A complete log|Log files|"
    r"\S+ In most cases|\S+ a package version that doesn't exist)|"
    r"npm (error|ERR!)\s*$|error: subprocess-exited-with-error|"
    r"ERROR Backend subprocess exited)"
)
_VERSIONS_LIST = re.compile(r"\(from versions: ([^)]*)\)")


def first_error_line(lines: list[str]) -> str:
    """The tool's own first error line that names a cause, one line of at most 300 chars.

    npm ends with ``npm error A complete log of this run can be found in ...``: a log path
    is never the reason, so the cause (``No matching version found for ...``) is picked.
    Without any marked error line, the last line of output.
    """
    marked = [ln.strip() for ln in lines if ln.lstrip().startswith(_ERROR_PREFIXES)]
    causes = [ln for ln in marked if not _NOISE.match(ln)]
    reason = (causes or marked or [ln.strip() for ln in lines if ln.strip()] or ["no output"])[0]
    if not causes and marked and _NOISE.match(reason):
        # Only bookkeeping lines: the last plain line of output is the better guess.
        plain = [ln.strip() for ln in lines if ln.strip() and not _NOISE.match(ln.strip())]
        reason = plain[-1] if plain else reason
    # pip lists every version it knows; the first and last say enough.
    reason = _VERSIONS_LIST.sub(lambda m: f"(from versions: {_ends(m.group(1))})", reason)
    return reason[:300]


def _ends(versions: str) -> str:
    items = [v.strip() for v in versions.split(",") if v.strip()]
    return ", ".join(items) if len(items) <= 4 else f"{items[0]}, ..., {items[-2]}, {items[-1]}"
