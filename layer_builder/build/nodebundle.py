"""Node layer: bundle each npm package on its own, so the cold path reads a few dozen files.

The preload of ``@sentry/aws-serverless`` loads about 770 CommonJS modules (``-r``) or as many
ES modules (``--import``), one file each; Node's loader (resolve, read, compile each) is most
of its time. ``nodebundle.mjs`` (run here with esbuild from a pinned, integrity-checked npm
install, a build-time tool: nothing of it goes into the layer) replaces, in each package of
``nodejs/node_modules`` whose ``package.json`` has an ``exports`` map, the files that map names
with bundles of the package's own modules; every other package stays external. So the package
graph is what npm installed (one copy per package and format, the one a user's own
``require``/``import`` gets), with the internal files merged: see docs/cold-start.md.
``optimize: {bundle: false}`` keeps the npm tree as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from layer_builder import proc
from layer_builder.download import default_cache_dir

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "nodebundle.mjs"
TOOL = HERE / "esbuild"
NODE_MODULES = "nodejs/node_modules"
#: Files layer-builder puts in the SDK package that read beside themselves but are right from
#: anywhere inside it (the preload set-up walks up to the layer's extensions/ directory).
MOVABLE = ("@sentry/aws-serverless/build/npm/cjs/sentry-layer-dsn.js",)


def esbuild_dir(cache: Path | None = None) -> Path:
    """esbuild installed by ``npm ci`` from the pinned lock (each tarball checked against its
    integrity), once per lock, in layer-builder's cache."""
    lock = (TOOL / "package-lock.json").read_bytes()
    target = (cache or default_cache_dir()) / f"esbuild-{hashlib.sha256(lock).hexdigest()[:16]}"
    if (target / "node_modules" / "esbuild" / "package.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".esbuild-") as tmp:
        work = Path(tmp) / "tool"
        work.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(TOOL / name, work / name)
        proc.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            what="npm ci of the build's esbuild",
            env={"npm_config_update_notifier": "false"},
        )
        try:
            os.replace(work, target)
        except OSError:
            if not (target / "node_modules" / "esbuild").is_dir():  # not a concurrent build's
                raise
    return target


def packages(root: Path) -> list[str]:
    """The top-level packages of the layer's node_modules, in byte order of their names."""
    base = root / NODE_MODULES
    names = []
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if entry.name.startswith("@") and entry.is_dir():
            names += [f"{entry.name}/{p.name}" for p in sorted(entry.iterdir()) if p.is_dir()]
        elif not entry.name.startswith(".") and (entry / "package.json").is_file():
            names.append(entry.name)
    return [n for n in names if (base / n / "package.json").is_file()]


def apply(root: Path, *, cache: Path | None = None) -> tuple[list[str], list[str]]:
    """Bundle the layer's packages in place; return the lines the build prints and the files
    written (relative to ``root``; the SBOM lists them as files layer-builder wrote)."""
    base = root / NODE_MODULES
    names = packages(root)
    if not names:
        return ["bundle: no packages in nodejs/node_modules"], []
    tool = esbuild_dir(cache)
    movable = os.pathsep.join(str(base / m) for m in MOVABLE)
    out = proc.run(
        ["node", str(SCRIPT), str(tool), str(base), *names],
        what="bundling the layer's npm packages",
        env={"LAYER_BUNDLE_MOVABLE": movable, "NODE_OPTIONS": ""},
    )
    lines, written, bundled, files = [], [], 0, 0
    for raw in out.splitlines():
        if not raw.startswith("{"):
            continue
        r = json.loads(raw)
        done = [f"{fmt} {r[fmt]['modules']} modules in {r[fmt]['files']} files"
                for fmt in ("cjs", "esm") if "files" in r.get(fmt, {})]  # fmt: skip
        if done:
            bundled += 1
            files += sum(r[fmt]["modules"] for fmt in ("cjs", "esm") if "files" in r.get(fmt, {}))
            lines.append(f"bundle: {r['package']}: " + ", ".join(done))
        if r.get("skipped", "no exports map") != "no exports map":
            lines.append(f"bundle: {r['package']} left as installed: {r['skipped']}")
        for fmt in ("cjs", "esm"):
            if r.get(fmt, {}).get("skipped", "nothing to merge") != "nothing to merge":
                lines.append(
                    f"bundle: {r['package']} ({fmt}) left as installed: {r[fmt]['skipped']}"
                )
        written += [f"{NODE_MODULES}/{f}" for f in r.get("written", [])]
    lines.append(f"bundle: {bundled} of {len(names)} packages bundled per package "
                 f"({files} modules); the others left as npm installed them")  # fmt: skip
    return lines, sorted(written)
