"""Precompiled bytecode for a Python layer: compiled last, per runtime, byte-identical.

Lambda mounts a layer read-only at ``/opt``, so without ``__pycache__`` the interpreter
compiles every module the wrapper and ``sentry_sdk.init()`` import, from source, on every
cold start (about half the layer's cost). The build therefore compiles ``python/`` as its
last step, once per Python version the layer's ``compatible_runtimes`` name, each with that
version's own interpreter (bytecode is version specific: ``__pycache__/x.cpython-312.pyc``).

Choices, and why:

- **Scope ``cold-path`` (default)**: bytecode for every module of four runtimes made the
  reference layer 4.4x the plain zip. Only the modules a cold start compiles get it: found
  per runtime by running that interpreter on the built tree as Lambda runs the layer (the
  wrapper's import with ``init()``, one raising invocation, a flush; isolated, no network),
  plus what the boto3 integration imports once Lambda's boto3 lets it enable. 160 of 245
  modules for sentry-sdk 2.75.0 (zip 5.4 instead of 6.5 MB, the same cold start). ``all``
  compiles everything. Measurements: docs/cold-start.md.

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

import ast
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from layer_builder.errors import ArgumentError, InstallError
from layer_builder.model import BytecodeInfo

log = logging.getLogger(__name__)

#: The invalidation mode of every .pyc the build writes (see the module docstring).
INVALIDATION_MODE = "checked-hash"
#: ``optimize.bytecode``: every module, or only those a cold start compiles (the default).
ALL, COLD_PATH = "all", "cold-path"
SCOPES = (ALL, COLD_PATH)
#: Packages every Lambda Python runtime ships (so their SDK integrations enable there) but the
#: build-time run cannot import: what a cold-path module imports from our tree inside one of
#: these integrations (``sentry_sdk/integrations/boto3/...``) is on the cold path as well.
RUNTIME_PROVIDED = ("boto3", "botocore")
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


# Runs under the target interpreter on the built python/ tree, as Lambda runs the layer:
# imports the wrapper (which calls sentry_sdk.init() with a DSN), then one invocation that
# raises, through a stand-in for awslambdaric's bootstrap that the SDK wraps, then a flush;
# prints the sources under the tree whose code was loaded (a module that failed with
# DidNotEnable was compiled all the same). Nothing leaves the machine: the
# DSN is a loopback address and every connect() is refused. argv: root, handler module.
_COLD_PATH = r"""
import json, os, socket, sys, tempfile
from importlib import machinery
root = os.path.realpath(sys.argv[1])
loaded = set()
_get_code = machinery.SourceFileLoader.get_code
def get_code(self, fullname):
    path = os.path.realpath(self.path)
    if path.startswith(root + os.sep):
        loaded.add(os.path.relpath(path, root).replace(os.sep, "/"))
    return _get_code(self, fullname)
machinery.SourceFileLoader.get_code = get_code
def refuse(self, address):
    raise ConnectionRefusedError(111, "no network while the build finds the cold path")
socket.socket.connect = refuse
task = tempfile.mkdtemp()
with open(os.path.join(task, "cold_path_probe.py"), "w") as f:
    f.write("def handler(event, context):\n    raise RuntimeError('cold path probe')\n")
sys.path[:0] = [root, task]
os.environ.update({
    "SENTRY_INITIAL_HANDLER": "cold_path_probe.handler",
    "SENTRY_DSN": "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1",
    "SENTRY_LAYER_EXTENSION": "false", "LAMBDA_TASK_ROOT": task,
    "AWS_LAMBDA_FUNCTION_NAME": "probe", "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
})
class Context(object):
    function_name = "probe"
    function_version = "$LATEST"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/probe"
    log_stream_name = "probe"
    def get_remaining_time_in_millis(self):
        return 300000
# Lambda's runtime (awslambdaric) has imported its bootstrap module before the handler, and
# the SDK's Lambda integration wraps the invocations it runs: the parts of it it uses.
import types
bootstrap = types.ModuleType("bootstrap")
class LambdaRuntimeClient(object):
    def post_init_error(self, *args, **kwargs):
        pass
    def post_invocation_result(self, *args, **kwargs):
        pass
    def post_invocation_error(self, *args, **kwargs):
        pass
def handle_event_request(lambda_runtime_client, request_handler, invoke_id, event_body,
                         content_type, client_context_json, cognito_identity_json,
                         invoked_function_arn, epoch_deadline_time_in_ms, log_sink=None):
    try:
        result = request_handler(event_body, Context())
    except Exception as exc:
        lambda_runtime_client.post_invocation_error(invoke_id, repr(exc))
    else:
        lambda_runtime_client.post_invocation_result(invoke_id, result)
bootstrap.LambdaRuntimeClient = LambdaRuntimeClient
bootstrap.handle_event_request = handle_event_request
sys.modules["bootstrap"] = bootstrap
module, _, func = sys.argv[2].rpartition(".")
import importlib
handler = getattr(importlib.import_module(module), func)
bootstrap.handle_event_request(LambdaRuntimeClient(), handler, "probe", {"cold_path_probe": 1},
                               "application/json", None, None, Context.invoked_function_arn, 0)
sentry_sdk = sys.modules.get("sentry_sdk")
if sentry_sdk is not None:
    sentry_sdk.flush(timeout=60)  # returns once the queue is empty (sends are refused)
sys.stdout.write(json.dumps(sorted(loaded)) + "\n")
sys.stdout.flush()
os._exit(0)  # the SDK's threads (timeout warning, transport) need not finish
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
    env = _clean_env()
    what = f"compiling python/ with {interp.path} (Python {interp.version})"
    try:
        with_stdin = subprocess.run(
            [str(interp.path), "-S", "-s", "-c", _COMPILE],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what} failed: {_why(exc)}") from None
    if with_stdin.returncode != 0:
        raise InstallError(f"{what} failed: {_last_line(with_stdin)}")
    result = json.loads(with_stdin.stdout.strip().splitlines()[-1])
    if result["tag"] != interp.cache_tag:
        raise InstallError(f"{interp.path} wrote {result['tag']} bytecode, not {interp.cache_tag}")
    failed: list[list[str]] = result["failed"]
    return failed


def _last_line(run: subprocess.CompletedProcess[str]) -> str:
    """What a failed interpreter run said last, or its exit status."""
    lines = (run.stderr or run.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {run.returncode}"


def _why(exc: OSError | subprocess.TimeoutExpired) -> str:
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"no answer in {exc.timeout:.0f} s"
    return exc.strerror or str(exc)


def _clean_env(**extra: str) -> dict[str, str]:
    """A fixed hash seed and nothing of the build machine's PYTHONPATH, user site, etc."""
    return {"PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1", "PATH": os.environ.get("PATH", ""),
            **extra}  # fmt: skip


def cold_path(interp: Interpreter, python_dir: Path, handler: str) -> tuple[list[str], str]:
    """The sources under ``python_dir`` a cold start of this runtime compiles, in byte order,
    or ``([], why)`` when the run fails (that runtime then gets bytecode for everything).

    Found by running ``interp`` on the tree as Lambda runs the layer (see ``_COLD_PATH``),
    without the build machine's site-packages and writing no bytecode; plus what the SDK's
    integrations for :data:`RUNTIME_PROVIDED` packages import, which enable on Lambda only.
    """
    with tempfile.TemporaryDirectory() as home:
        try:
            run = subprocess.run(
                [str(interp.path), "-S", "-s", "-B", "-c", _COLD_PATH, str(python_dir), handler],
                capture_output=True,
                text=True,
                env=_clean_env(PYTHONDONTWRITEBYTECODE="1", HOME=home, TMPDIR=home),
                cwd=home,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], f"importing {handler} failed: {_why(exc)}"
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines or not lines[-1].startswith("["):
        return [], f"importing {handler} failed: {_last_line(run)}"
    loaded = set(json.loads(lines[-1]))
    provided = [rel for rel in loaded if set(rel[:-3].split("/")) & set(RUNTIME_PROVIDED)]
    loaded |= _static_closure(python_dir, provided, loaded)
    return sorted(loaded, key=lambda s: s.encode()), ""


def _module_file(python_dir: Path, dotted: str) -> str | None:
    base = dotted.replace(".", "/")
    for rel in (base + ".py", base + "/__init__.py"):
        if (python_dir / rel).is_file():
            return rel
    return None


def _static_imports(python_dir: Path, rel: str) -> set[str]:
    """The modules of the tree that ``rel`` names in an import statement, anywhere in it."""
    try:
        tree = ast.parse((python_dir / rel).read_bytes())
    except (SyntaxError, ValueError):
        return set()
    parts = rel[:-3].split("/")
    package = parts[:-1]  # the package ``rel`` is in (``__init__``: itself)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    found = set()
    for name in names:
        bits = name.split(".")
        for i in range(1, len(bits) + 1):  # importing a.b.c imports a and a.b as well
            hit = _module_file(python_dir, ".".join(bits[:i]))
            if hit:
                found.add(hit)
    return found


def _static_closure(python_dir: Path, start: list[str], loaded: set[str]) -> set[str]:
    """``start`` and what it imports, transitively, except through modules that the run
    ``loaded`` (their imports ran, or did not run on a cold start)."""
    seen, todo = set(start), list(start)
    while todo:
        for rel in _static_imports(python_dir, todo.pop()):
            if rel not in seen:
                seen.add(rel)
                if rel not in loaded:
                    todo.append(rel)
    return seen


def compile_tree(
    root: Path,
    runtimes: tuple[str, ...],
    *,
    say: Callable[[str], None] = lambda _m: None,
    find: Callable[[str], Interpreter | None] = find_interpreter,
    scope: str = ALL,
    handler: str = "",
) -> tuple[BytecodeInfo, ...]:
    """Compile ``root/python`` for each runtime; one :class:`BytecodeInfo` per runtime.

    ``scope`` ``all`` compiles every module; ``cold-path`` only those a cold start of that
    runtime compiles, found by running ``handler`` (the wrapper's ``module.function``) with
    it (see :func:`cold_path`). Runtimes without an interpreter on this machine get
    ``compiled=False`` and the reason with its fix; the others are handled in parallel (one
    process per version, files in a fixed order within each).
    """
    python_dir = root / "python"
    files = python_sources(python_dir)
    found = {rt: find(runtime_minor(rt)) for rt in runtimes}
    todo = [(rt, interp) for rt, interp in found.items() if interp is not None]

    def one(interp: Interpreter) -> tuple[list[str], str, list[list[str]]]:
        chosen, why = files, ""
        if scope == COLD_PATH:
            cold, why = cold_path(interp, python_dir, handler)
            wanted = set(cold)
            chosen = files if why else [f for f in files if f in wanted]
        return chosen, why, _compile_with(interp, python_dir, chosen)

    with ThreadPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
        outcomes = pool.map(lambda t: one(t[1]), todo)
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
        chosen, why, failed = results[rt]
        for rel, err in failed:
            # The file cannot be compiled by this version: it would fail the same way when
            # imported there (e.g. syntax of a newer Python); Lambda compiles nothing of it.
            log.info("python/%s: not compiled for %s: %s", rel, rt, err)
        got = COLD_PATH if scope == COLD_PATH and not why else ALL
        if why:
            say(f"{rt}: cold path not found ({why}); bytecode for every module")
        compiled = len(chosen) - len(failed)
        say(
            f"{rt}: bytecode for {compiled} of {len(files)} modules "
            f"({'the cold path, ' if got == COLD_PATH else ''}"
            f"Python {interp.version}, {INVALIDATION_MODE})"
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
                scope=got,
                reason=why,
            )
        )
    return tuple(infos)
