"""End to end: real pip/npm installs into real layers, built through the CLI.

These need PyPI / the npm registry (reachable in CI). They check what a release engineer
relies on: byte-identical rebuilds whatever the machine's umask, TZ or build directory, and
a layer whose SDK and wrapper actually import and run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.builds import BINARIES, NODE_CONFIG, STANDIN, run_as_user
from tests.helpers.paths import REPO as ROOT

PY_CONFIG = ROOT / "configs" / "sentry-python.yml"
PY_VERSION = "2.75.0"

pytestmark = pytest.mark.slow


def build_python(
    workdir: Path,
    *,
    umask: int,
    tz: str,
    archs: tuple[str, ...] = ("x86_64", "arm64"),
    seed: str = "0",
) -> Path:
    """The universal Python layer serving ``archs`` (the stand-in as each one's extension)."""
    workdir.mkdir(parents=True)
    arch_args = [a for arch in archs for a in ("--arch", arch)] if len(archs) < 2 else []
    ext_args = [a for arch in archs for a in ("--extension-file", f"{arch}={BINARIES[arch]}")]
    proc = run_as_user(
        "build",
        str(PY_CONFIG),
        "--version",
        PY_VERSION,
        *arch_args,
        "--out",
        "out",
        *ext_args,
        "--json",
        cwd=workdir,
        umask=umask,
        tz=tz,
        extra_env={"PYTHONHASHSEED": seed},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (layer,) = data["layers"]
    return (
        Path(workdir / layer["zip"]) if not Path(layer["zip"]).is_absolute() else Path(layer["zip"])
    )


@pytest.fixture(scope="module")
def python_zips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("pybuild")
    first = build_python(base / "a", umask=0o022, tz="UTC", seed="1")
    second = build_python(
        base / "deep" / "other-dir", umask=0o077, tz="Pacific/Chatham", seed="random"
    )
    return first, second


def test_python_layer_rebuild_is_byte_identical(python_zips: tuple[Path, Path]) -> None:
    first, second = python_zips
    assert first.read_bytes() == second.read_bytes()
    m1 = json.loads(first.with_name(first.name + ".json").read_text())
    m2 = json.loads(second.with_name(second.name + ".json").read_text())
    assert m1 == m2
    assert m1["sdk_version"] == PY_VERSION and m1["architectures"] == ["x86_64", "arm64"]
    assert m1["layout"] == "universal" and first.name == f"sentry-python-{PY_VERSION}.zip"
    assert {"name": "sentry-sdk", "version": PY_VERSION} in m1["packages"]
    assert [e["architecture"] for e in m1["extensions"]] == ["x86_64", "arm64"]
    assert all(e["sha256"] for e in m1["extensions"]) and m1["source_date_epoch"] == 315532800


def test_python_layer_layout_and_modes(python_zips: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(python_zips[0]) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    ext = infos["extensions/sentry-lambda-extension"]
    assert ext.external_attr >> 16 == 0o100755
    wrapper = infos["python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"]
    assert wrapper.external_attr >> 16 == 0o100644
    # Bytecode only in __pycache__, for the runtimes the manifest says were compiled.
    manifest = json.loads(python_zips[0].with_name(python_zips[0].name + ".json").read_text())
    tags = {b["cache_tag"] for b in manifest["bytecode"] if b["compiled"]}
    assert tags, "no runtime of the layer got bytecode on this machine"
    pycs = [n for n in infos if n.endswith(".pyc")]
    assert {n.rsplit(".", 2)[1] for n in pycs} == tags
    assert all("/__pycache__/" in n for n in pycs)
    # The default scope: the modules a cold start compiles, as many as the manifest says.
    per_tag = {b["cache_tag"]: b["files"] for b in manifest["bytecode"] if b["compiled"]}
    assert all(b["scope"] == "cold-path" for b in manifest["bytecode"] if b["compiled"])
    for tag, files in per_tag.items():
        assert sum(n.endswith(f".{tag}.pyc") for n in pycs) == files
        assert files < sum(n.endswith(".py") for n in infos)
        assert f"python/sentry_sdk/__pycache__/client.{tag}.pyc" in infos
    assert not any(n.endswith("direct_url.json") for n in infos)
    assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    # The wrapper is ours, not the SDK's own module.
    with zipfile.ZipFile(python_zips[0]) as zf:
        assert b"SENTRY_INITIAL_HANDLER" in zf.read(wrapper.filename)


def test_verify_accepts_the_built_layer(python_zips: tuple[Path, Path], tmp_path: Path) -> None:
    proc = run_as_user("verify", str(python_zips[0]), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (report,) = json.loads(proc.stdout)["zips"]
    assert report["family"] == "python" and report["architectures"] == ["x86_64", "arm64"]
    assert report["layout"] == "universal"
    # The extension is a launcher script; each binary it may exec is checked as ELF for its
    # own architecture.
    assert report["elf_files"] == ["relay/relay-aarch64", "relay/relay-x86_64"]


def test_sdk_and_wrapper_import_and_run_from_the_layer(
    python_zips: tuple[Path, Path], tmp_path: Path
) -> None:
    opt = tmp_path / "opt"
    with zipfile.ZipFile(python_zips[0]) as zf:
        zf.extractall(opt)
    task = tmp_path / "task" / "handlers"
    task.mkdir(parents=True)
    (task / "app.py").write_text("def handle(event, context):\n    return {'echo': event['x']}\n")
    script = (
        "import sentry_sdk\n"
        "from sentry_sdk.integrations.init_serverless_sdk import sentry_lambda_handler\n"
        "print(sentry_sdk.VERSION)\n"
        "print(sentry_lambda_handler({'x': 41}, None))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(opt / "python"),
        "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(tmp_path / "task"),
        "SENTRY_INITIAL_HANDLER": "handlers/app.handle",
        "SENTRY_DSN": "",
        "SENTRY_TRACES_SAMPLE_RATE": "0.5",
    }

    def python(code: str) -> subprocess.CompletedProcess[str]:
        # -S: no site-packages, so sentry_sdk can only come from the layer's python/ directory.
        return subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True,
                              text=True, check=False, cwd=tmp_path)  # fmt: skip

    proc = python(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [PY_VERSION, "{'echo': 41}"]
    sdk_file = python("import sentry_sdk; print(sentry_sdk.__file__)").stdout
    assert sdk_file.startswith(str(opt / "python"))

    # A missing SENTRY_INITIAL_HANDLER is a clear error, not an AttributeError deep inside.
    env.pop("SENTRY_INITIAL_HANDLER")
    proc = python(script)
    assert proc.returncode != 0
    assert "HandlerConfigError: SENTRY_INITIAL_HANDLER is not set" in proc.stderr


def test_arm64_only_layer_says_it_serves_arm64_only(tmp_path: Path) -> None:
    zip_path = build_python(tmp_path / "arm", umask=0o022, tz="UTC", archs=("arm64",))
    manifest = json.loads(zip_path.with_name(zip_path.name + ".json").read_text())
    # --arch arm64 limits the universal layer: same name, but it serves (and says) arm64 only.
    assert manifest["layer_name"] == "SentryPythonServerlessSDK"
    assert manifest["architectures"] == ["arm64"]
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        head = zf.read("relay/relay-aarch64")[:20]
        assert zf.read("extensions/sentry-lambda-extension").startswith(b"#!/bin/sh")
    assert "relay/relay-x86_64" not in names
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64


def test_wrong_architecture_extension_is_refused(tmp_path: Path) -> None:
    proc = run_as_user(
        "build",
        str(PY_CONFIG),
        "--version",
        PY_VERSION,
        "--arch",
        "arm64",
        "--out",
        "out",
        "--extension-file",
        f"arm64={STANDIN / 'sentry-standin-x86_64'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "x86_64" in proc.stderr and "arm64" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.zip"))


@pytest.mark.skipif(
    shutil.which("npm") is None or shutil.which("node") is None, reason="npm/node not installed"
)
def test_node_layer_builds_and_the_sdk_loads(tmp_path: Path) -> None:
    version = "10.75.2"
    proc = run_as_user(
        "build",
        str(NODE_CONFIG),
        "--version",
        version,
        "--arch",
        "x86_64",
        "--out",
        "out",
        "--extension-file",
        f"x86_64={STANDIN / 'sentry-standin-x86_64'}",
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (layer,) = json.loads(proc.stdout)["layers"]
    assert layer["layer_name"] == "SentryNodeServerlessSDKv10"
    assert layer["architectures"] == ["x86_64"] and layer["layout"] == "universal"
    assert {"name": "@sentry/aws-serverless", "version": version} in layer["packages"]
    zip_path = Path(layer["zip"]) if Path(layer["zip"]).is_absolute() else tmp_path / layer["zip"]
    opt = tmp_path / "opt"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        zf.extractall(opt)
    assert "nodejs/node_modules/@sentry/aws-serverless/package.json" in names
    assert all(n.startswith(("nodejs/", "extensions/", "relay/")) for n in names)
    # The auto-init module reads what Lambda sets: the task root and the handler name.
    task = tmp_path / "task"
    task.mkdir()
    (task / "index.js").write_text("exports.handler = async () => 'ok';\n")
    node = subprocess.run(
        [
            "node",
            "-e",
            "const s = require('@sentry/aws-serverless'); "
            "require('@sentry/aws-serverless/awslambda-auto'); "
            "console.log(typeof s.wrapHandler)",
        ],
        env={
            **os.environ,
            "NODE_PATH": str(opt / "nodejs" / "node_modules"),
            "LAMBDA_TASK_ROOT": str(task),
            "_HANDLER": "index.handler",
            "SENTRY_DSN": "",
        },
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert node.returncode == 0, node.stderr
    assert node.stdout.strip() == "function"

    # With `-r` (CommonJS preload), the handler shim the preload redirects _HANDLER to reuses
    # that copy of the SDK: no ES module of @sentry/core loads (npm's tree loads 235 more).
    (tmp_path / "count-esm.mjs").write_text(COUNT_ESM)
    (tmp_path / "probe.mjs").write_text(PROBE_SHIM)
    preload = opt / "nodejs/node_modules/@sentry/aws-serverless/build/npm/cjs/awslambda-auto.js"
    node = subprocess.run(
        ["node", "--import", "./count-esm.mjs", "-r", str(preload), "probe.mjs"],
        env={**os.environ, "LAMBDA_TASK_ROOT": str(task), "_HANDLER": "index.handler",
             "SENTRY_DSN": "http://key@127.0.0.1:9/1"},
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert node.returncode == 0, node.stderr
    got = json.loads(node.stdout.strip().splitlines()[-1])
    assert got == {"redirected": True, "esm_core_modules": 0, "handler": "function"}


#: Counts the ES modules Node loads (a loader hook reporting each URL back to the main thread).
COUNT_ESM = """\
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
globalThis.esmLoaded = [];
port1.on('message', (url) => globalThis.esmLoaded.push(url));
port1.unref();
register('data:text/javascript,' + encodeURIComponent(
  'let port; export function initialize(d) { port = d.port; } ' +
  'export async function load(url, context, next) { ' +
  'port.postMessage(url); return next(url, context); }'),
  { data: { port: port2 }, transferList: [port2] });
"""
#: Loads the handler the way Lambda does after the preload (from _HANDLER, the shim).
PROBE_SHIM = """\
const shim = process.env._HANDLER.replace(/\\.handler$/, '.mjs');
const { handler } = await import(shim);
await new Promise((resolve) => setTimeout(resolve, 50));
const core = globalThis.esmLoaded.filter((u) => u.includes('/@sentry/core/build/esm/')).length;
console.log(JSON.stringify({ redirected: shim.endsWith('/run-lambda-handler.mjs'),
                             esm_core_modules: core, handler: typeof handler }));
"""


def test_a_failed_build_overwrites_nothing(tmp_path: Path) -> None:
    # A good earlier build sits in the output directory...
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / f"sentry-python-{PY_VERSION}.zip"
    earlier.write_bytes(b"an earlier, good zip")
    # ...and a build whose arm64 extension is wrong fails before writing anything.
    proc = run_as_user("build", str(PY_CONFIG), "--version", PY_VERSION, "--out", "out",
                   "--extension-file", f"x86_64={STANDIN / 'sentry-standin-x86_64'}",
                   "--extension-file", f"arm64={STANDIN / 'sentry-standin-x86_64'}",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "arm64" in proc.stderr.splitlines()[-1]
    assert "installing" not in proc.stderr  # refused before any pip install
    assert earlier.read_bytes() == b"an earlier, good zip"
    assert sorted(p.name for p in out.iterdir()) == [earlier.name]
