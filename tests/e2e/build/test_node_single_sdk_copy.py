"""The Node layer's handler shim reuses the SDK copy the preload loaded: after `-r` (CommonJS)
the shim no longer loads the ES build a second time; after `--import` it imports as before.

Run with real Node on a small package laid out like the SDK (a CommonJS and an ES build
behind `exports` conditions, each recording that it was loaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from layer_builder.build import nodeshim

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs node")

SHIM_TEXT = """\
import { createRequire } from 'node:module';
import { captureException, flush as flushEvents } from '@sentry/core';
import { VERSION } from '@sentry/core/version';

export const handler = async () => [captureException(), flushEvents(), VERSION];
"""


def package(root: Path) -> Path:
    """nodejs/node_modules with a fake @sentry/core and the shim; returns nodejs/."""
    core = root / "nodejs" / "node_modules" / "@sentry" / "core"
    for flavour, ext, export in (("cjs", "js", "exports.{0} = () => '{1}';"),
                                 ("esm", "mjs", "export const {0} = () => '{1}';")):  # fmt: skip
        (core / flavour).mkdir(parents=True)
        body = [f"(globalThis.copies ??= []).push('{flavour}');"]
        body += [export.format(n, flavour) for n in ("captureException", "flush")]
        (core / flavour / f"index.{ext}").write_text("\n".join(body) + "\n")
        version = export.format("VERSION_", flavour).replace("VERSION_ = () =>", "VERSION =")
        (core / flavour / f"version.{ext}").write_text(version + "\n")
    exports = {
        ".": {"import": "./esm/index.mjs", "require": "./cjs/index.js"},
        "./version": {"import": "./esm/version.mjs", "require": "./cjs/version.js"},
    }
    (core / "package.json").write_text(json.dumps({"name": "@sentry/core", "exports": exports}))
    shim = root / nodeshim.SHIM
    shim.parent.mkdir(parents=True)
    shim.write_text(SHIM_TEXT)
    nodejs = root / "nodejs"
    (nodejs / "preload.cjs").write_text("require('@sentry/core');\n")
    (nodejs / "preload.mjs").write_text("import '@sentry/core';\n")
    (nodejs / "probe.mjs").write_text(
        f"const {{ handler }} = await import('./{Path(nodeshim.SHIM).relative_to('nodejs')}');\n"
        "console.log(JSON.stringify({copies: globalThis.copies, got: await handler()}));\n"
    )
    return nodejs


def run(nodejs: Path, *preload: str) -> dict[str, list[str]]:
    assert NODE is not None
    out = subprocess.run([NODE, *preload, "probe.mjs"], cwd=nodejs, capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_after_require_the_shim_uses_the_commonjs_copy(tmp_path: Path) -> None:
    plain = package(tmp_path / "plain")
    # As npm installs it: the shim loads the ES build beside the preloaded CommonJS one.
    assert run(plain, "-r", "./preload.cjs") == {
        "copies": ["cjs", "esm"],
        "got": ["esm", "esm", "esm"],
    }
    ours = package(tmp_path / "ours")
    line, changed = nodeshim.apply(tmp_path / "ours")
    assert changed and "reuses the preloaded SDK (2 imports of @sentry/* packages)" in line
    assert run(ours, "-r", "./preload.cjs") == {"copies": ["cjs"], "got": ["cjs", "cjs", "cjs"]}


def test_after_import_the_shim_imports_as_before(tmp_path: Path) -> None:
    ours = package(tmp_path / "ours")
    nodeshim.apply(tmp_path / "ours")
    assert run(ours, "--import", "./preload.mjs") == {
        "copies": ["esm"],
        "got": ["esm", "esm", "esm"],
    }
    # Without any preload (the shim used on its own) it still loads, as the ES build.
    assert run(ours) == {"copies": ["esm"], "got": ["esm", "esm", "esm"]}


def test_rewrite_is_idempotent_and_leaves_other_shims_alone(tmp_path: Path) -> None:
    text, count = nodeshim.rewrite(SHIM_TEXT)
    assert count == 2 and "const { captureException, flush: flushEvents } = await" in text
    assert nodeshim.rewrite(text) == (text, 0)
    assert nodeshim.rewrite("import x from 'y';\n") == ("import x from 'y';\n", 0)
    root = tmp_path / "layer"
    package(root)
    nodeshim.apply(root)
    assert nodeshim.apply(root) == (
        "single SDK copy: the handler shim already reuses the preloaded SDK",
        True,
    )
    (root / nodeshim.SHIM).write_text("import x from 'y';\n")
    line, changed = nodeshim.apply(root)
    assert not changed and "has no import of @sentry/* to reuse" in line
    (root / nodeshim.SHIM).unlink()
    line, changed = nodeshim.apply(root)
    assert not changed and "no nodejs/node_modules/@sentry/aws-serverless" in line
