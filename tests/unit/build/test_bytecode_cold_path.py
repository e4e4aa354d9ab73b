"""``optimize.bytecode: cold-path`` (the default): bytecode only for the modules a cold start
compiles, found at build time by running each runtime's interpreter on the built tree as
Lambda runs the layer (the real wrapper, ``init()``, one raising invocation, a flush), isolated
from the build machine, byte-identical across builds; ``all`` and ``true`` compile everything,
``false`` nothing."""

from __future__ import annotations

import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from layer_builder.build import bytecode
from layer_builder.build.bytecode import Interpreter, compile_tree
from layer_builder.errors import ConfigError, InstallError
from layer_builder.smoke.runtimes import PYTHON_WRAPPER
from tests.helpers.bytecode import compile_and_zip
from tests.helpers.layers import ConfigFactory
from tests.helpers.paths import REPO

MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
RUNTIME = f"python{MINOR}"
TAG = sys.implementation.cache_tag
WRAPPER_SRC = REPO / "layer_src" / "python"
WRAPPER_DEST = "sentry_sdk/integrations/init_serverless_sdk/__init__.py"

# An SDK shaped like sentry-sdk where it matters: init() tries auto-enabling integrations (one
# fails, as DidNotEnable does), one for a package Lambda's runtime ships (boto3) that cannot
# enable at build time, a module only the first invocation's error imports (through the
# bootstrap Lambda's runtime invokes handlers with), one only the flush imports, and modules
# nothing on a cold start imports.
SDK = {
    "sentry_sdk/__init__.py": """\
        import sys
        from sentry_sdk import client

        def init(**options):
            for name in ("failing", "boto3"):
                try:
                    __import__("sentry_sdk.integrations." + name)
                except ImportError:
                    pass
            client.options = options
            # As the Lambda integration does: wrap what Lambda's bootstrap invokes.
            bootstrap = sys.modules.get("bootstrap")
            if bootstrap is not None:
                invoke = bootstrap.handle_event_request

                def wrapped(runtime_client, handler, *args):
                    def sentry_handler(event, context):
                        try:
                            return handler(event, context)
                        except Exception:
                            from sentry_sdk import capture
                            raise

                    return invoke(runtime_client, sentry_handler, *args)

                bootstrap.handle_event_request = wrapped

        def flush(timeout=None):
            from sentry_sdk import transport
            transport.send()
        """,
    "sentry_sdk/client.py": "options = None\n",
    "sentry_sdk/capture.py": "EVENTS = []\n",
    "sentry_sdk/transport.py": "def send():\n    return None\n",
    "sentry_sdk/unused.py": "X = 1\n",
    "sentry_sdk/integrations/__init__.py": "",
    "sentry_sdk/integrations/aws_lambda.py": """\
        class AwsLambdaIntegration:
            def __init__(self, timeout_warning=False):
                self.timeout_warning = timeout_warning
        """,
    "sentry_sdk/integrations/failing.py": "import a_framework_not_in_the_function\n",
    "sentry_sdk/integrations/unused_too.py": "Y = 2\n",
    "sentry_sdk/integrations/boto3/__init__.py": """\
        import botocore
        from sentry_sdk.integrations.boto3 import _patches
        """,
    "sentry_sdk/integrations/boto3/_patches.py": "from . import _services\n",
    "sentry_sdk/integrations/boto3/_services.py": "SERVICES = ()\n",
}
COLD = {
    "sentry_sdk/__init__.py",
    "sentry_sdk/capture.py",
    "sentry_sdk/client.py",
    "sentry_sdk/transport.py",
    "sentry_sdk/integrations/__init__.py",
    "sentry_sdk/integrations/aws_lambda.py",
    "sentry_sdk/integrations/failing.py",
    "sentry_sdk/integrations/boto3/__init__.py",
    "sentry_sdk/integrations/boto3/_patches.py",
    "sentry_sdk/integrations/boto3/_services.py",
    "sentry_sdk/integrations/init_serverless_sdk/__init__.py",
}


def make_layer(root: Path, wrapper: bool = True) -> Path:
    for rel, text in SDK.items():
        path = root / "python" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    if wrapper:
        dest = root / "python" / WRAPPER_DEST
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((WRAPPER_SRC / "init_serverless_sdk.py").read_bytes())
    return root


def here_only(minor: str) -> Interpreter | None:
    version = ".".join(map(str, sys.version_info[:3]))
    return Interpreter(Path(sys.executable), version, TAG) if minor == MINOR else None


def compiled(root: Path) -> set[str]:
    """The sources under python/ that have bytecode of this interpreter."""
    out = set()
    for pyc in (root / "python").rglob(f"*.{TAG}.pyc"):
        source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
        out.add(source.relative_to(root / "python").as_posix())
    return out


def test_only_what_a_cold_start_compiles_gets_bytecode(tmp_path: Path) -> None:
    root = make_layer(tmp_path)
    said: list[str] = []
    (info,) = compile_tree(
        root, (RUNTIME,), say=said.append, find=here_only, scope="cold-path", handler=PYTHON_WRAPPER
    )
    assert compiled(root) == COLD
    assert (info.scope, info.files, info.reason) == ("cold-path", len(COLD), "")
    assert said == [
        f"{RUNTIME}: bytecode for {len(COLD)} of {len(SDK) + 1} modules (the cold path, "
        f"Python {info.python}, checked-hash)"
    ]
    # Running the layer wrote nothing of its own into the tree: no probe handler, no bytecode
    # of the import itself (only the compile step's files).
    files = [p.relative_to(root / "python").as_posix() for p in root.rglob("*") if p.is_file()]
    assert {f for f in files if not f.endswith(".pyc")} == set(SDK) | {WRAPPER_DEST}
    assert sum(f.endswith(".pyc") for f in files) == len(COLD)


def test_all_compiles_every_module(tmp_path: Path) -> None:
    root = make_layer(tmp_path)
    (info,) = compile_tree(root, (RUNTIME,), find=here_only, scope="all", handler=PYTHON_WRAPPER)
    assert compiled(root) == set(SDK) | {WRAPPER_DEST}
    assert (info.scope, info.files) == ("all", len(SDK) + 1)


def test_the_build_machines_packages_and_settings_do_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A botocore on the build machine's PYTHONPATH would let the boto3 integration import
    # differently, and a module there could import more of the SDK.
    site = tmp_path / "site"
    (site / "botocore").mkdir(parents=True)
    (site / "botocore" / "__init__.py").write_text("")
    (site / "a_framework_not_in_the_function.py").write_text("import sentry_sdk.unused\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    root = make_layer(tmp_path / "layer")
    compile_tree(root, (RUNTIME,), find=here_only, scope="cold-path", handler=PYTHON_WRAPPER)
    assert compiled(root) == COLD


def test_a_tree_the_wrapper_cannot_run_in_gets_bytecode_for_everything(tmp_path: Path) -> None:
    root = make_layer(tmp_path, wrapper=False)
    said: list[str] = []
    (info,) = compile_tree(
        root, (RUNTIME,), say=said.append, find=here_only, scope="cold-path", handler=PYTHON_WRAPPER
    )
    assert compiled(root) == set(SDK)
    assert (
        info.scope == "all"
        and "No module named 'sentry_sdk.integrations.init_serverless_sdk'" in (info.reason)
    )
    assert said[0].startswith(f"{RUNTIME}: cold path not found (importing {PYTHON_WRAPPER} failed")


def test_an_interpreter_that_cannot_run_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    root = make_layer(tmp_path)
    gone = tmp_path / "python3-removed-after-the-check"

    def vanished(minor: str) -> Interpreter | None:
        return Interpreter(gone, "3.0.0", TAG) if minor == MINOR else None

    with pytest.raises(InstallError, match=f"compiling python/ with {gone} .*: No such file"):
        compile_tree(root, (RUNTIME,), find=vanished, scope="cold-path", handler=PYTHON_WRAPPER)


def _build(workdir: Path, umask: int, seed: str) -> bytes:
    """Compile (cold path) and zip the layer in ``workdir`` from a process with that umask,
    hash seed and time zone."""
    make_layer(workdir)
    env = {"PYTHONHASHSEED": seed, "TZ": "Asia/Kolkata" if seed == "1" else "UTC"}
    env[bytecode.env_var(MINOR)] = sys.executable
    call = f"compile_tree(root, ({RUNTIME!r},), scope='cold-path', handler={PYTHON_WRAPPER!r})"
    return compile_and_zip(workdir, call, umask, env)


def test_two_cold_path_builds_are_identical(tmp_path: Path) -> None:
    first = _build(tmp_path / "a", 0o022, "1")
    second = _build(tmp_path / "deeper" / "b-other", 0o077, "31337")
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        pycs = {n for n in zf.namelist() if n.endswith(".pyc")}
    assert f"python/sentry_sdk/integrations/boto3/__pycache__/_services.{TAG}.pyc" in pycs
    assert f"python/sentry_sdk/__pycache__/unused.{TAG}.pyc" not in pycs
    assert len(pycs) == len(COLD)


# ------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("optimize", "scope"),
    [
        ("", "cold-path"),
        ("optimize:\n  bytecode: cold-path\n", "cold-path"),
        ("optimize:\n  bytecode: all\n", "all"),
        ("optimize:\n  bytecode: true\n", "all"),  # as before scopes: every module
        ("optimize:\n  bytecode: false\n", ""),
    ],
)
def test_bytecode_scope_in_the_config(
    make_config: ConfigFactory, optimize: str, scope: str
) -> None:
    assert make_config(extra=optimize).bytecode == scope


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hot-path", "optimize.bytecode: 'hot-path' is not one of all, cold-path"),
        ("3", "optimize.bytecode: expected true or false, all or cold-path, got a number"),
    ],
)
def test_a_bad_bytecode_scope_names_the_key(
    make_config: ConfigFactory, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(extra=f"optimize:\n  bytecode: {value}\n")
