"""optimize.bundle: each npm package with an exports map bundled on its own (real esbuild from
the pinned lock, real Node on the result).

Package-shaped trees check the rules (entries share one instance of each internal module, in
CommonJS and in ES modules; what cannot move is left as npm installed it); the reference
layer checks what users meet: byte-identical rebuilds, and a handler's own `require`/`import`
of the SDK getting the copy the preload set up, under `-r` and `--import`. The smoke gate on
the built layer (both ways, both architectures) is in tests/test_layer_in_function.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from layer_builder.build import nodebundle
from tests.helpers.builds import BINARIES, NODE_CONFIG, run_as_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("npm") is None or shutil.which("node") is None,
        reason="npm/node not installed",
    ),
]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def node(code: str, cwd: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["node", *flags, "--input-type=module", "-e", code],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


#: A package with two entries per format sharing an internal module that holds state.
SHARED = {
    "package.json": json.dumps(
        {
            "name": "shared",
            "version": "1.0.0",
            "exports": {
                ".": {"import": "./esm/a.js", "require": "./cjs/a.js"},
                "./b": {"import": "./esm/b.js", "require": "./cjs/b.js"},
            },
        }
    ),  # fmt: skip
    "cjs/state.js": "exports.box = { n: 0 };\n",
    "cjs/a.js": "const s = require('./state.js'); exports.bump = () => ++s.box.n;\n",
    "cjs/b.js": "const s = require('./state.js'); exports.read = () => s.box.n;\n",
    "esm/package.json": '{"type": "module"}',
    "esm/state.js": "export const box = { n: 0 };\n",
    "esm/a.js": "import { box } from './state.js'; export const bump = () => ++box.n;\n",
    "esm/b.js": "import { box } from './state.js'; export const read = () => box.n;\n",
}


def test_entries_share_one_instance_of_each_internal_module(tmp_path: Path) -> None:
    write(tmp_path / "nodejs/node_modules/shared", SHARED)
    lines, written = nodebundle.apply(tmp_path)
    assert "bundle: shared: cjs 3 modules in 3 files, esm 3 modules in 3 files" in lines
    pkg = tmp_path / "nodejs/node_modules/shared"
    assert f"{nodebundle.NODE_MODULES}/shared/cjs/_layer_bundle.cjs" in written
    assert "_layer_bundle.cjs" in (pkg / "cjs/a.js").read_text()
    assert "./state.js" not in (pkg / "esm/a.js").read_text()  # merged, not imported
    got = node(
        "import { createRequire } from 'node:module';"
        "const require = createRequire(import.meta.url);"
        "const a = require('shared'), b = require('shared/b');"
        "a.bump(); a.bump();"
        "const ea = await import('shared'), eb = await import('shared/b');"
        "ea.bump();"
        "console.log(JSON.stringify([b.read(), eb.read(), require('shared') === a]));",
        tmp_path / "nodejs",
    )
    # One state per format, as npm's tree has: CommonJS bumped twice, ESM once.
    assert json.loads(got) == [2, 1, True]


def test_what_cannot_move_is_left_as_installed(tmp_path: Path) -> None:
    nm = tmp_path / "nodejs/node_modules"
    write(nm / "beside", {
        "package.json": json.dumps({"name": "beside", "exports": {"require": "./index.js"}}),
        "index.js": "exports.data = require('fs').readFileSync(__dirname + '/data.txt', 'utf8');"
                    "\nexports.x = require('./x.js');\n",
        "x.js": "module.exports = 1;\n",
        "data.txt": "hi",
    })  # fmt: skip
    write(nm / "patterns", {
        "package.json": json.dumps({"name": "patterns", "exports": {"./*": "./lib/*.js"}}),
        "lib/a.js": "module.exports = require('./b.js');\n",
        "lib/b.js": "module.exports = 2;\n",
    })  # fmt: skip
    write(nm / "plain", {"package.json": json.dumps({"name": "plain"}), "index.js": "1;\n"})
    before = {p: p.read_bytes() for p in nm.rglob("*") if p.is_file()}
    lines, written = nodebundle.apply(tmp_path)
    assert written == []
    assert {p: p.read_bytes() for p in nm.rglob("*") if p.is_file()} == before
    text = "\n".join(lines)
    assert "bundle: beside (cjs) left as installed: index.js reads files beside itself" in text
    assert "bundle: patterns left as installed: its exports map has patterns" in text
    assert "plain" not in text.replace("0 of 3 packages", "")


#: A CommonJS-only package ES code imports: Node scans the entry's text for named exports,
#: following its re-exports (here one inside the package, one of another package).
SCANNED = {
    "scanned/package.json": json.dumps({"name": "scanned", "exports": {"default": "./index.js"}}),
    "scanned/index.js": "const one = require('./one.js').one;\n"
    "const d = 'd';\nmodule.exports = { one, default: d, ...require('./more.js') };\n",
    "scanned/one.js": "exports.one = 1;\n",
    "scanned/more.js": "const two = 2;\nmodule.exports = { two, ...require('other') };\n",
    "other/package.json": json.dumps({"name": "other", "main": "index.js"}),
    "other/index.js": "exports.three = 3;\n",
}
IMPORT_SCANNED = (
    "import * as ns from 'scanned'; import d from 'scanned';"
    "console.log(JSON.stringify([Object.keys(ns).sort(), ns.one, ns.two, ns.three, d.default]));"
)


def test_a_commonjs_entry_es_code_imports_keeps_its_named_exports(tmp_path: Path) -> None:
    write(tmp_path / "nodejs/node_modules", SCANNED)
    before = node(IMPORT_SCANNED, tmp_path / "nodejs")
    lines, written = nodebundle.apply(tmp_path)
    assert f"{nodebundle.NODE_MODULES}/scanned/_layer_bundle.cjs" in written, lines
    assert node(IMPORT_SCANNED, tmp_path / "nodejs") == before
    # Both times: its own names, the re-export inside the package and the other package's.
    assert json.loads(before) == [["default", "one", "three", "two"], 1, 2, 3, "d"]


# ----------------------------------------------------------------------------- the layer


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The reference Node layer built twice (other umask, TZ and directory); the first
    extracted."""
    zips = []
    for n, (umask, tz) in enumerate(((0o022, "UTC"), (0o077, "Asia/Kolkata"))):
        work = tmp_path_factory.mktemp(f"node-bundle-{n}")
        proc = run_as_user(
            "build", str(NODE_CONFIG), "--version", "10.75.2", "--arch", "x86_64",
            "--out", "out", "--extension-file", f"x86_64={BINARIES['x86_64']}", "--json",
            cwd=work, umask=umask, tz=tz,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "bundle: @sentry/core: cjs 237 modules" in proc.stderr
        (built,) = json.loads(proc.stdout)["layers"]
        zips.append(work / built["zip"])
    opt = zips[0].parent.parent / "opt"
    with zipfile.ZipFile(zips[0]) as zf:
        zf.extractall(opt)
    return zips[0], zips[1], opt  # type: ignore[return-value]


def test_bundled_layer_rebuilds_byte_identical(layer: tuple[Path, Path, Path]) -> None:
    first, second, _ = layer
    assert first.read_bytes() == second.read_bytes()


#: After the preload, what the user's handler gets from its own require/import of the SDK.
SAME_COPY = """\
import { createRequire } from 'node:module';
const require = createRequire(process.env.LAMBDA_TASK_ROOT + '/index.js');
// import() from -e resolves from the working directory: the task root.
const cjs = process.env.PROBE_CJS === '1';
const load = (id) => (cjs ? require(id) : import(id));
const user = await load('@sentry/aws-serverless');
const core = await load('@sentry/core');
const files = Object.keys(require.cache).filter((f) => f.includes('/@sentry/core/'));
console.log(JSON.stringify({
  client: Boolean(user.getClient()),
  same: user.getClient === core.getClient && user.getClient() === core.getClient(),
  core_cjs_files: files.map((f) => f.slice(f.indexOf('/build/') + 1)).sort(),
}));
"""


@pytest.mark.parametrize("flag,fmt", [("-r", "cjs"), ("--import", "esm")])
def test_the_handlers_own_sdk_is_the_preloaded_copy(
    layer: tuple[Path, Path, Path], tmp_path: Path, flag: str, fmt: str
) -> None:
    _, _, opt = layer
    modules = opt / "nodejs/node_modules"
    task = tmp_path / "task"
    write(task, {"index.js": "exports.handler = async () => 1;\n"})
    # The handler's own imports resolve to the layer, as Lambda's runtime makes them do.
    (task / "node_modules").symlink_to(modules)
    preload = modules / f"@sentry/aws-serverless/build/npm/{fmt}/awslambda-auto.js"
    got = json.loads(node(
        SAME_COPY, task, flag, str(preload),
        env={"NODE_PATH": str(modules), "LAMBDA_TASK_ROOT": str(task), "_HANDLER": "index.handler",
             "SENTRY_DSN": "http://key@127.0.0.1:9/1", "PROBE_CJS": "1" if fmt == "cjs" else ""},
    ))  # fmt: skip
    # The handler's SDK is the preload's: its client, the same @sentry/core module instance.
    assert got["client"] and got["same"], got
    # Under -r the CommonJS @sentry/core is its entry and the bundle, not 237 files; under
    # --import no CommonJS copy of it loads at all.
    expected = ["build/cjs/_layer_bundle.cjs", "build/cjs/index.js"] if fmt == "cjs" else []
    assert got["core_cjs_files"] == expected
