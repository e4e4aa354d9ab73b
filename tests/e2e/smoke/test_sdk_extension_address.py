"""Where the layer's SDK set-up sends: the extension's local address or the DSN itself.

The Python wrapper (``layer_src/python/init_serverless_sdk.py``) and the Node preloads'
helper (``layer_src/node/sentry-layer-dsn.js``) read the launcher's first line
(``# sentry-layer-extension: machines=... proxy=host:port``). Each runs here in a layer tree
of its own, the Python one against a recording stand-in for ``sentry_sdk`` (the real SDK is
exercised by the slow end-to-end tests), so every branch is seen quickly.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import REPO as ROOT

DSN = "https://public:secret@o1.ingest.example.io/42"
MACHINE = os.uname().machine

FAKE_SDK = {
    "sentry_sdk/__init__.py": (
        "import json, os\ndef init(**kw):\n    print(json.dumps({'dsn': kw.get('dsn')}))\n"
    ),
    "sentry_sdk/integrations/__init__.py": "",
    "sentry_sdk/integrations/aws_lambda.py": (
        "class AwsLambdaIntegration:\n    def __init__(self, **kw):\n        pass\n"
    ),
}


def launcher_line(machines: str, port: int) -> str:
    return f"#!/bin/sh\n# sentry-layer-extension: machines={machines} proxy=127.0.0.1:{port}\n"


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on, as the extension does once it started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_import(
    tmp_path: Path, launcher: str | None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Import the wrapper as the runtime does, in a layer tree of its own."""
    opt = tmp_path / f"opt-{uuid.uuid4().hex}"  # a layer of its own per call
    for name, text in FAKE_SDK.items():
        (opt / "python" / name).parent.mkdir(parents=True, exist_ok=True)
        (opt / "python" / name).write_text(text)
    wrapper = opt / "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "layer_src/python/init_serverless_sdk.py", wrapper)
    if launcher is not None:
        (opt / "extensions").mkdir(exist_ok=True)
        (opt / "extensions/sentry-lambda-extension").write_text(launcher)
    task = tmp_path / "task"
    task.mkdir(exist_ok=True)
    (task / "app.py").write_text("def handler(event, context):\n    return 1\n")
    return subprocess.run(
        [sys.executable, "-S", "-c", "import sentry_sdk.integrations.init_serverless_sdk"],
        env={
            "PYTHONPATH": f"{task}:{opt / 'python'}",
            "SENTRY_DSN": DSN,
            "SENTRY_INITIAL_HANDLER": "app.handler",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def python_dsn(tmp_path: Path, launcher: str | None, **env: str) -> str | None:
    """The DSN the wrapper gave ``sentry_sdk.init``."""
    proc = python_import(tmp_path, launcher, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["dsn"]  # type: ignore[no-any-return]


def test_python_sends_to_the_extension_where_it_listens(tmp_path: Path, listening: int) -> None:
    got = python_dsn(tmp_path, launcher_line(f"riscv64,{MACHINE}", listening))
    assert got == f"http://public:secret@127.0.0.1:{listening}/42"


def test_python_sends_directly_elsewhere(tmp_path: Path, listening: int) -> None:
    assert python_dsn(tmp_path, launcher_line("riscv64", listening)) == DSN  # no binary here
    assert python_dsn(tmp_path, launcher_line(MACHINE, closed_port())) == DSN  # not started
    assert python_dsn(tmp_path, None) == DSN  # no extension in the layer
    assert python_dsn(tmp_path, "#!/bin/sh\nexec /opt/x\n") == DSN  # not our launcher
    line = launcher_line(MACHINE, listening)
    assert python_dsn(tmp_path, line, SENTRY_LAYER_EXTENSION="false") == DSN
    assert python_dsn(tmp_path, line, http_proxy="http://proxy:3128") == DSN
    exempt = python_dsn(tmp_path, line, http_proxy="http://proxy:3128", no_proxy="localhost")
    assert exempt == f"http://public:secret@127.0.0.1:{listening}/42"


def test_python_port_override(tmp_path: Path, listening: int) -> None:
    got = python_dsn(
        tmp_path, launcher_line(MACHINE, 3000), SENTRY_LAYER_EXTENSION_PORT=str(listening)
    )
    assert got == f"http://public:secret@127.0.0.1:{listening}/42"


def test_python_handler_problems_fail_the_import_naming_the_variable(tmp_path: Path) -> None:
    proc = python_import(tmp_path, None, SENTRY_INITIAL_HANDLER="app.nope")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].endswith(
        "HandlerConfigError: SENTRY_INITIAL_HANDLER='app.nope': 'app' has no function 'nope'"
    )
    proc = python_import(tmp_path, None, SENTRY_TRACES_SAMPLE_RATE="2")
    assert proc.stderr.splitlines()[-1].endswith(
        "HandlerConfigError: SENTRY_TRACES_SAMPLE_RATE='2' is not between 0 and 1"
    )


def node_dsn(tmp_path: Path, launcher: str | None, machine: str, **env: str) -> str:
    opt = tmp_path / f"opt-{uuid.uuid4().hex}"  # a layer of its own per call
    helper = opt / "nodejs/node_modules/@sentry/aws-serverless/build/npm/cjs/sentry-layer-dsn.js"
    helper.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "layer_src/node/sentry-layer-dsn.js", helper)
    if launcher is not None:
        (opt / "extensions").mkdir(exist_ok=True)
        (opt / "extensions/sentry-lambda-extension").write_text(launcher)
    # os.machine() answers ``machine`` through smoke's hook, as in an emulated run.
    hook = ROOT / "layer_builder/smoke/node_esm_node_path.js"
    proc = subprocess.run(
        ["node", "-r", str(hook), "-e", f"console.log(require({str(helper)!r}).sdkDsn({DSN!r}))"],
        env={"PATH": "/usr/bin:/bin", "LAYER_BUILDER_SMOKE_MACHINE": machine, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(shutil.which("node") is None, reason="no node")
def test_node_follows_the_machine_the_launcher_sees(tmp_path: Path) -> None:
    line = launcher_line("x86_64", 3000)
    assert node_dsn(tmp_path, line, "x86_64") == "http://public:secret@127.0.0.1:3000/42"
    assert node_dsn(tmp_path, line, "aarch64") == DSN  # the launcher stands aside there
    assert node_dsn(tmp_path, None, "x86_64") == DSN
    assert node_dsn(tmp_path, line, "x86_64", SENTRY_LAYER_EXTENSION="0") == DSN
    assert node_dsn(tmp_path, line, "x86_64", http_proxy="http://p:1") == DSN
    moved = node_dsn(tmp_path, line, "x86_64", SENTRY_LAYER_EXTENSION_PORT="4100")
    assert moved == "http://public:secret@127.0.0.1:4100/42"
