"""Lambda's ES module resolution, as `smoke` emulates it for Node layers.

Lambda's Node.js runtimes (18 and later) search the NODE_PATH folders for an ES module's
bare specifier when the usual node_modules lookup from the importer finds nothing; that is
how `NODE_OPTIONS=--import @sentry/aws-serverless/awslambda-auto` (resolved from /var/task)
finds the layer's /opt/nodejs/node_modules. Plain Node does not; smoke's resolve hook adds it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from layer_builder.smoke.runtimes import NODE_ESM_NODE_PATH

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="no node")


def package(root: Path, name: str) -> None:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(
        json.dumps({"name": name, "type": "module", "exports": "./index.js"})
    )
    (pkg / "index.js").write_text(f"console.log('loaded {name}');\n")


def run_node(cwd: Path, node_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", *options, "-e", "0"],
        cwd=cwd,
        env={"NODE_PATH": str(node_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_import_preload_from_node_path_as_lambda_resolves_it(tmp_path: Path) -> None:
    layer = tmp_path / "opt" / "nodejs" / "node_modules"
    package(layer, "from-layer")
    task = tmp_path / "task"
    task.mkdir()

    plain = run_node(task, layer, "--import", "from-layer")
    assert plain.returncode != 0 and "ERR_MODULE_NOT_FOUND" in plain.stderr

    hook = f"--import={NODE_ESM_NODE_PATH.as_uri()}"
    lambda_like = run_node(task, layer, hook, "--import", "from-layer")
    assert lambda_like.returncode == 0, lambda_like.stderr
    assert lambda_like.stdout == "loaded from-layer\n"

    # The function's own node_modules comes first, as in Lambda; unknown names still fail.
    package(task / "node_modules", "from-layer")
    (task / "node_modules" / "from-layer" / "index.js").write_text("console.log('own');\n")
    assert run_node(task, layer, hook, "--import", "from-layer").stdout == "own\n"
    missing = run_node(task, layer, hook, "--import", "nowhere")
    assert missing.returncode != 0 and "Cannot find package 'nowhere'" in missing.stderr
