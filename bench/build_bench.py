"""Benchmark: a whole `layer-builder build` of each reference layer, phase by phase.

    python bench/build_bench.py [--layer python|node ...] [--runs N] [--keep-going]

For each reference layer (``configs/sentry-python.yml`` at 2.75.0, ``configs/sentry-node.yml``
at 10.75.2; both universal: one zip serving x86_64 and arm64) it runs the CLI exactly as a
release engineer would, ``layer-builder build CONFIG --version V --out DIR --json`` with the
sandbox stand-in as each architecture's extension (``--extension-file``; the real Relay is
not pinned here), once to warm pip's and npm's caches and the page cache, then ``--runs``
times. It reports the median wall time of the whole command (interpreter start included)
and of each phase the build reports in ``--json`` (install, assemble, zip, verify); "other"
is the rest (start-up, config, extension checks, moving the zips into place). It exits 1
if two runs of a layer gave different zips.

Needs PyPI and the npm registry (or warm caches), and ``npm`` for the Node layer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STANDIN = REPO / "extensions" / "standin"
EXTENSIONS = {"x86_64": "sentry-standin-x86_64", "arm64": "sentry-standin-aarch64"}
LAYERS = {
    "python": (REPO / "configs" / "sentry-python.yml", "2.75.0"),
    "node": (REPO / "configs" / "sentry-node.yml", "10.75.2"),
}
PHASES = ("install", "assemble", "zip", "verify")


@dataclass
class Runs:
    """Every timed build of one layer."""

    layer: str
    wall: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)
    sha256: set[str] = field(default_factory=set)
    zip_size: int = 0
    files: int = 0


def build_once(config: Path, version: str, out: Path) -> tuple[float, dict[str, object]]:
    """Run one build through the CLI; return its wall time and its (only) layer's JSON."""
    ext: list[str] = []
    for arch, name in EXTENSIONS.items():
        ext += ["--extension-file", f"{arch}={STANDIN / name}"]
    cmd = [sys.executable, "-m", "layer_builder", "build", str(config), "--version", version]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SOURCE_DATE_EPOCH", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--out", str(out), "--json", *ext],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: build of {config.name} failed:\n{proc.stderr.strip()}")
    (layer,) = json.loads(proc.stdout)["layers"]
    return wall, layer


def bench_layer(name: str, runs: int) -> Runs:
    config, version = LAYERS[name]
    result = Runs(name)
    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        print(f"{name}: warming caches with one build ...", file=sys.stderr, flush=True)
        build_once(config, version, Path(tmp) / "warm")
        for i in range(runs):
            wall, layer = build_once(config, version, Path(tmp) / f"run-{i}")
            result.wall.append(wall)
            phases = layer.get("phases")
            if not isinstance(phases, dict):
                raise SystemExit("error: this build reports no phases in --json")
            for phase, seconds in phases.items():
                result.phases.setdefault(phase, []).append(float(seconds))
            result.sha256.add(str(layer["sha256"]))
            result.zip_size = int(str(layer["zip_size"]))
            result.files = int(str(layer["file_count"]))
            print(f"{name}: run {i + 1}: {wall:.2f} s", file=sys.stderr, flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", choices=sorted(LAYERS), action="append")
    parser.add_argument("--runs", type=int, default=3, help="timed builds per layer (default 3)")
    args = parser.parse_args(argv)
    layers = args.layer or list(LAYERS)
    if "node" in layers and shutil.which("npm") is None:
        print("(npm is not installed: no node layer)", file=sys.stderr)
        layers.remove("node")

    results = [bench_layer(name, args.runs) for name in layers]
    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} CPUs, 1-minute load average {load:.1f}, median of {args.runs}\n")
    head = " | ".join(f"{p} s" for p in PHASES)
    print(f"| layer | files | zip bytes | build s | {head} | other s |")
    print(f"| --- | --- | --- | --- |{' --- |' * len(PHASES)} --- |")
    ok = True
    for r in results:
        medians = {p: statistics.median(r.phases.get(p, [0.0])) for p in PHASES}
        wall = statistics.median(r.wall)
        cells = " | ".join(f"{medians[p]:.2f}" for p in PHASES)
        other = wall - sum(medians.values())
        print(f"| {r.layer} | {r.files:,} | {r.zip_size:,} | {wall:.2f} | {cells} | {other:.2f} |")
        if len(r.sha256) != 1:
            print(f"FAIL: {r.layer}: runs gave different zips: {sorted(r.sha256)}", file=sys.stderr)
            ok = False
    for r in results:
        print(f"\n{r.layer}: build wall times {', '.join(f'{w:.2f}' for w in r.wall)}; "
              f"sha256 {', '.join(sorted(r.sha256))}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
