"""Precompiled bytecode for a Python layer: compiled last, per runtime, byte-identical.

Lambda mounts a layer read-only at ``/opt``, so without ``__pycache__`` the interpreter
compiles every module the wrapper and ``sentry_sdk.init()`` import, from source, on every
cold start (about half the layer's cost). The build therefore compiles ``python/`` as its
last step, once per Python version the layer's ``compatible_runtimes`` name, each with that
version's own interpreter (bytecode is version specific: ``__pycache__/x.cpython-312.pyc``).

Choices, and why:

- **Invalidation mode ``checked-hash``**: the ``.pyc`` records the SipHash of its source and
  the importer checks it. Timestamp-based files would depend on the mtimes Lambda gives the
  extracted files (invalid bytecode is recompiled on every cold start, silently). An
  ``unchecked-hash`` file is never checked, so a source edited after the build (a patched
  zip) would silently run the old code; measured on 2.75.0 under Python 3.12, checking costs
  about 4 ms of a cold start (import 123.0 vs 123.5 ms, ``init()`` 26.8 vs 22.5 ms, medians
  of 12), within the noise. ``verify`` checks every recorded hash either way.
- **Determinism**: ``PYTHONHASHSEED=0`` (before 3.11, marshal writes set constants in hash
  order: two compiles of sentry-sdk 2.75.0 by 3.10 with other seeds differ), files compiled
  one by one in sorted order in one process, ``co_filename`` set to the path Lambda sees
  (``/opt/python/...``) rather than the build directory, no site-packages of the build
  machine (``-S -s``). The zipper gives every entry the same mtime. The bytes depend on
  the interpreter's exact version (3.12.1 and 3.12.8 may differ), which the manifest records.
- **Sources stay**: several runtimes can only share one tree through ``__pycache__``, which
  the importer reads only beside a ``.py``; and tracebacks and Sentry's context lines read
  the source. Dropping them would save ~0.6 MB of zip for one runtime only.

Interpreters: ``LAYER_BUILDER_PYTHON3_12=/path/to/python`` (an explicit choice; an error if
it is not a CPython 3.12), else ``python3.12`` on ``PATH``, else pyenv's
``$PYENV_ROOT/versions/3.12.*`` (newest first). A runtime with no interpreter is built
without bytecode and said so in the build output and the manifest, with the fix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from layer_builder.errors import ArgumentError, InstallError
from layer_builder.model import BytecodeInfo

log = logging.getLogger(__name__)

#: The invalidation mode of every .pyc the build writes (see the module docstring).
INVALIDATION_MODE = "checked-hash"
#: Where Lambda mounts the layer's python/ directory: what tracebacks show.
OPT_PYTHON = "/opt/python"
ENV_PREFIX = "LAYER_BUILDER_PYTHON"

_PROBE = (
    "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.implementation.name, "
    "sys.implementation.cache_tag)"
)

# Runs under the target interpreter (3.7 and newer: no f-strings with '=', no walrus).
# Reads {"root", "files", "prefix", "mode"} on stdin, prints one JSON line.
_COMPILE = r"""
import json, os, py_compile, sys
args = json.loads(sys.stdin.read())
mode = py_compile.PycInvalidationMode[args["mode"]]
failed = []
for rel in args["files"]:
    try:
        py_compile.compile(os.path.join(args["root"], rel), dfile=args["prefix"] + "/" + rel,
                           doraise=True, invalidation_mode=mode, optimize=0)
    except py_compile.PyCompileError as exc:
        failed.append([rel, str(exc.msg).strip().splitlines()[-1]])
print(json.dumps({"tag": sys.implementation.cache_tag, "failed": failed}))
"""


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: str  # X.Y.Z
    cache_tag: str  # cpython-312


def env_var(minor: str) -> str:
    """The variable naming the interpreter for ``3.12``: ``LAYER_BUILDER_PYTHON3_12``."""
    return ENV_PREFIX + minor.replace(".", "_")


def runtime_minor(runtime: str) -> str:
    """``python3.12`` -> ``3.12``."""
    return runtime.removeprefix("python")


def how_to_provide(minor: str) -> str:
    return (
        f"install Python {minor} (e.g. `pyenv install {minor}` or actions/setup-python) so "
        f"that python{minor} is on PATH, or set {env_var(minor)}=/path/to/python{minor}"
    )


Probe = Callable[[Path], "tuple[str, str, str] | None"]


def probe(path: Path) -> tuple[str, str, str] | None:
    """(version, implementation, cache tag) of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(path), "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (parts[0], parts[1], parts[2]) if out.returncode == 0 and len(parts) == 3 else None


def _pyenv_candidates(minor: str, env: Mapping[str, str]) -> list[Path]:
    root = Path(env.get("PYENV_ROOT") or Path(env.get("HOME", "~")).expanduser() / ".pyenv")
    versions = root / "versions"
    if not versions.is_dir():
        return []
    found = []
    pattern = re.compile(rf"^{re.escape(minor)}\.(\d+)$")  # releases only, no 3.12-dev
    for d in versions.iterdir():
        m = pattern.match(d.name)
        if m:
            found.append((int(m.group(1)), d / "bin" / f"python{minor}"))
    return [p for _patch, p in sorted(found, reverse=True)]


def find_interpreter(
    minor: str, *, env: Mapping[str, str] | None = None, run_probe: Probe = probe
) -> Interpreter | None:
    """The CPython ``minor`` (``3.12``) interpreter to compile with, or None if there is none.

    Raises ArgumentError when the explicit ``LAYER_BUILDER_PYTHON3_12`` does not name one:
    a setting that is wrong must not fall back silently to another interpreter.
    """
    env = os.environ if env is None else env
    explicit = env.get(env_var(minor))
    if explicit:
        got = run_probe(Path(explicit))
        if got is None or got[1] != "cpython" or not got[0].startswith(minor + "."):
            what = "does not run" if got is None else f"is {got[1]} {got[0]}"
            raise ArgumentError(f"{env_var(minor)}={explicit}: {what}, not CPython {minor}")
        return Interpreter(Path(explicit), got[0], got[2])
    candidates: list[Path] = []
    on_path = shutil.which(f"python{minor}", path=env.get("PATH", ""))
    if on_path:
        candidates.append(Path(on_path))
    candidates += _pyenv_candidates(minor, env)
    for path in candidates:
        # A pyenv shim on PATH exists but fails for a version that is not selected: probe.
        got = run_probe(path)
        if got is not None and got[1] == "cpython" and got[0].startswith(minor + "."):
            return Interpreter(path, got[0], got[2])
    return None


def python_sources(python_dir: Path) -> list[str]:
    """Every ``.py`` under ``python_dir``, POSIX paths relative to it, in byte order."""
    out = []
    for dirpath, dirs, files in os.walk(python_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                out.append((Path(dirpath) / name).relative_to(python_dir).as_posix())
    return sorted(out, key=lambda s: s.encode())


def _compile_with(interp: Interpreter, python_dir: Path, files: list[str]) -> list[list[str]]:
    request = {
        "root": str(python_dir),
        "files": files,
        "prefix": OPT_PYTHON,
        "mode": INVALIDATION_MODE.upper().replace("-", "_"),
    }
    # A clean environment: fixed hash seed, no PYTHONPATH/PYTHONSTARTUP of the build machine.
    env = {"PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1", "PATH": os.environ.get("PATH", "")}
    with_stdin = subprocess.run(
        [str(interp.path), "-S", "-s", "-c", _COMPILE],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if with_stdin.returncode != 0:
        lines = (with_stdin.stderr or with_stdin.stdout).strip().splitlines()
        raise InstallError(
            f"compiling python/ with {interp.path} (Python {interp.version}) failed: "
            f"{lines[-1] if lines else 'exit ' + str(with_stdin.returncode)}"
        )
    result = json.loads(with_stdin.stdout.strip().splitlines()[-1])
    if result["tag"] != interp.cache_tag:
        raise InstallError(f"{interp.path} wrote {result['tag']} bytecode, not {interp.cache_tag}")
    failed: list[list[str]] = result["failed"]
    return failed


def compile_tree(
    root: Path,
    runtimes: tuple[str, ...],
    *,
    say: Callable[[str], None] = lambda _m: None,
    find: Callable[[str], Interpreter | None] = find_interpreter,
) -> tuple[BytecodeInfo, ...]:
    """Compile ``root/python`` for each runtime; one :class:`BytecodeInfo` per runtime.

    Runtimes without an interpreter on this machine get ``compiled=False`` and the reason
    with its fix; the others are compiled in parallel (one process per version, files in a
    fixed order within each).
    """
    python_dir = root / "python"
    files = python_sources(python_dir)
    found = {rt: find(runtime_minor(rt)) for rt in runtimes}
    todo = [(rt, interp) for rt, interp in found.items() if interp is not None]
    with ThreadPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
        outcomes = pool.map(lambda t: _compile_with(t[1], python_dir, files), todo)
        results = dict(zip([rt for rt, _ in todo], outcomes, strict=True))
    infos = []
    for rt in runtimes:
        interp = found[rt]
        minor = runtime_minor(rt)
        if interp is None:
            reason = f"no Python {minor} interpreter on the build machine; {how_to_provide(minor)}"
            say(f"{rt}: no bytecode: {reason}")
            infos.append(BytecodeInfo(runtime=rt, compiled=False, reason=reason))
            continue
        failed = results[rt]
        for rel, why in failed:
            # The file cannot be compiled by this version: it would fail the same way when
            # imported there (e.g. syntax of a newer Python); Lambda compiles nothing of it.
            log.info("python/%s: not compiled for %s: %s", rel, rt, why)
        compiled = len(files) - len(failed)
        say(
            f"{rt}: bytecode for {compiled} of {len(files)} modules "
            f"(Python {interp.version}, {INVALIDATION_MODE})"
            + (
                f"; {len(failed)} do not compile for {rt}, e.g. python/{failed[0][0]}"
                if failed
                else ""
            )
        )
        infos.append(
            BytecodeInfo(
                runtime=rt,
                compiled=True,
                cache_tag=interp.cache_tag,
                python=interp.version,
                invalidation_mode=INVALIDATION_MODE,
                files=compiled,
                not_compiled=tuple(rel for rel, _ in failed),
            )
        )
    return tuple(infos)
