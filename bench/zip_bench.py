"""Benchmark: layer_builder's deterministic zip writer against Info-ZIP on real layer trees.

    python bench/zip_bench.py [--case python|node ...] [--tree DIR] [--runs N] [--threads T]
                              [--levels L ...]

Two standard cases, each built once and cached under the temp directory:

* ``python``: ``pip install --no-compile --target`` of sentry-sdk, boto3, botocore, requests
  and pydantic (2,663 files, mostly large; at least 30 MiB);
* ``node``: ``npm install --omit=dev @sentry/aws-serverless@10.75.2`` (7,013 files, mostly
  small), when ``npm`` is on PATH.

``--tree DIR`` zips DIR instead. Each run times Info-ZIP ``zip -X -r -q`` (run inside the
tree) and ``write_zip`` over the same tree, alternating, and reports medians of wall time
and of CPU time (user + system, all threads): on a machine shared with other jobs the wall
times swing, the CPU times much less. It exits 1 if any two of our builds of a tree
(across runs and thread counts) differ by a single byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import deflate

from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import COMPRESSION_LEVEL, write_zip

PYTHON_PACKAGES = ("sentry-sdk", "boto3", "botocore", "requests", "pydantic")
NODE_PACKAGE = "@sentry/aws-serverless@10.75.2"
MIN_TREE_BYTES = 30 * 1024 * 1024
CASES = ("python", "node")


@dataclass
class Series:
    """Timings and outputs of one tool over all runs."""

    label: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def tree_stats(root: Path) -> tuple[int, int]:
    """Return (bytes, files) of the regular files under ``root``."""
    total = files = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file():
                total += path.stat().st_size
                files += 1
    return total, files


def _cached(cache: Path, name: str, install: Callable[[Path], None]) -> Path:
    """Build a tree once into ``cache/name`` (atomically), then reuse it."""
    tree = cache / name
    if tree.is_dir():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache))
    try:
        install(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(staging, tree)  # only a complete install ever appears under the cache key
    return tree


def cached_python_tree(packages: Sequence[str], cache: Path) -> Path:
    """pip-install ``packages`` into a cached directory (built once, then reused)."""
    key = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:12]

    def install(dest: Path) -> None:
        print(f"installing {' '.join(packages)} with pip ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"]
        cmd += ["--no-warn-conflicts", "--disable-pip-version-check", "--target", str(dest)]
        subprocess.run([*cmd, *packages], check=True)

    return _cached(cache, f"tree-{key}", install)


def cached_node_tree(npm: str, package: str, cache: Path) -> Path:
    """npm-install ``package`` (production dependencies) into a cached directory."""
    key = hashlib.sha256(package.encode()).hexdigest()[:12]

    def install(dest: Path) -> None:
        print(f"installing {package} with npm ...", file=sys.stderr)
        # npm writes package.json and package-lock.json beside node_modules/: they are part
        # of the tree (7,013 files in all), as in the measurement.
        cmd = [npm, "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"]
        subprocess.run([*cmd, "--loglevel=error", package], cwd=dest, check=True)

    return _cached(cache, f"node-{key}", install)


def warm_page_cache(root: Path) -> None:
    """Read every file once so neither tool pays for cold reads in its first run."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file():
                path.read_bytes()


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def time_run(series: Series, out: Path, run: Callable[[Path], None], who: int) -> None:
    """Time ``run``; ``who`` says whose CPU time counts (ours, or the child process's)."""
    out.unlink(missing_ok=True)  # Info-ZIP would update an existing archive
    cpu = _cpu(who)
    start = time.perf_counter()
    run(out)
    series.seconds.append(time.perf_counter() - start)
    series.cpu.append(_cpu(who) - cpu)
    data = out.read_bytes()
    series.sizes.append(len(data))
    series.digests.append(hashlib.sha256(data).hexdigest())


def run_infozip(zip_tool: str, tree: Path, out: Path) -> None:
    """Info-ZIP with -X (no uid/gid or extended timestamps), run inside the tree."""
    subprocess.run([zip_tool, "-X", "-r", "-q", str(out), "."], cwd=tree, check=True)


def run_ours(tree: Path, out: Path, *, threads: int | None, level: int = COMPRESSION_LEVEL) -> None:
    """layer_builder's writer (default: its default level)."""
    write_zip(tree, out, threads=threads, level=level)


def compare_levels(tree: Path, levels: Sequence[int], runs: int, infozip_size: int | None) -> None:
    """The size/time trade-off behind COMPRESSION_LEVEL: one thread, median CPU per level."""
    print("\n| libdeflate level | CPU s, 1 thread | zip bytes | size vs Info-ZIP |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="zip-levels-") as tmp:
        for level in levels:
            s = Series(f"level {level}")
            for _ in range(runs):
                run = partial(run_ours, tree, threads=1, level=level)
                time_run(s, Path(tmp) / "l.zip", run, resource.RUSAGE_SELF)
            ratio = f"{s.sizes[0] / infozip_size:.4f}" if infozip_size else "-"
            mark = " (default)" if level == COMPRESSION_LEVEL else ""
            print(f"| {level}{mark} | {s.median_cpu:.3f} | {s.sizes[0]:,} | {ratio} |")


def bench_tree(
    name: str, tree: Path, runs: int, threads: int | None, levels: Sequence[int] = ()
) -> bool:
    """Benchmark one tree, print its table; False if our builds were not all identical."""
    total, files = tree_stats(tree)
    print(f"\n## {name}: {tree}\n\n{total:,} bytes in {files:,} files")
    if total < MIN_TREE_BYTES:
        print(f"warning: {total / 2**20:.1f} MiB, less than the 30 MiB this benchmark wants")
    warm_page_cache(tree)
    zip_tool = shutil.which("zip")
    infozip = Series("Info-ZIP `zip -X -r -q`")
    ours = Series(f"`write_zip`, {threads or 'default'} threads")
    ours_1 = Series("`write_zip`, 1 thread")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="zip-bench-") as tmp:
        out_dir = Path(tmp)
        for i in range(runs):
            # Alternating the tools spreads any drift (thermal, other load) over all of them.
            if zip_tool:
                run = partial(run_infozip, zip_tool, tree)
                time_run(infozip, out_dir / "infozip.zip", run, resource.RUSAGE_CHILDREN)
            run = partial(run_ours, tree, threads=threads)
            time_run(ours, out_dir / f"ours-{i}.zip", run, resource.RUSAGE_SELF)
            run = partial(run_ours, tree, threads=1)
            time_run(ours_1, out_dir / f"ours-1-{i}.zip", run, resource.RUSAGE_SELF)
        problems = inspect_zip(out_dir / "ours-0.zip").problems()
    load_after = os.getloadavg()[0]

    print(
        f"\n| tool | median s | min s | CPU s | zip bytes | time vs Info-ZIP "
        f"| CPU vs Info-ZIP | size vs Info-ZIP |\n| --- |{' --- |' * 7}"
    )
    for s in (x for x in (infozip, ours, ours_1) if x.seconds):
        ratios = ["-", "-", "-"]
        if infozip.seconds:
            ratios = [
                f"{s.median / infozip.median:.2f}",
                f"{s.median_cpu / infozip.median_cpu:.2f}",
                f"{s.sizes[0] / infozip.sizes[0]:.3f}",
            ]
        print(
            f"| {s.label} | {s.median:.3f} | {min(s.seconds):.3f} | {s.median_cpu:.3f} "
            f"| {s.sizes[0]:,} | {' | '.join(ratios)} |"
        )
    if not zip_tool:
        print("(Info-ZIP `zip` is not installed: no comparison)")
    spread = ", ".join(f"{t:.2f}" for t in ours.seconds)
    print(f"\nour wall times ({ours.label}): {spread}")
    if infozip.seconds:
        print(f"Info-ZIP wall times: {', '.join(f'{t:.2f}' for t in infozip.seconds)}")
    print(f"1-minute load average: {load_before:.1f} before, {load_after:.1f} after")

    distinct = set(ours.digests) | set(ours_1.digests)
    print(
        f"our sha256 over {len(ours.digests) + len(ours_1.digests)} builds: "
        f"{', '.join(sorted(distinct))}"
    )
    if problems:
        print(f"inspect_zip problems: {problems}")
    if levels:
        compare_levels(tree, levels, runs, infozip.sizes[0] if infozip.sizes else None)
    return len(distinct) == 1 and not problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", choices=CASES, action="append", help="a standard tree (default: both)"
    )
    parser.add_argument("--tree", type=Path, help="zip this directory instead")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="write_zip threads")
    parser.add_argument(
        "--levels", type=int, nargs="+", default=[], help="also compare these levels (1 thread)"
    )
    parser.add_argument(
        "--packages",
        nargs="+",
        default=list(PYTHON_PACKAGES),
        help="what to pip install for the python tree",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "layer-builder-zip-bench"
    )
    args = parser.parse_args(argv)

    trees: list[tuple[str, Path]] = []
    if args.tree:
        trees.append(("tree", args.tree.resolve()))
    for case in args.case or ([] if args.tree else list(CASES)):
        if case == "python":
            trees.append(("python", cached_python_tree(args.packages, args.cache)))
            continue
        npm = shutil.which("npm")
        if npm is None:
            print("(npm is not installed: no node case)", file=sys.stderr)
            continue
        trees.append(("node", cached_node_tree(npm, NODE_PACKAGE, args.cache)))

    print(
        f"python {platform.python_version()}, deflate {deflate.__version__} "
        f"(libdeflate level {COMPRESSION_LEVEL}), {os.cpu_count()} CPUs, "
        f"threads={args.threads or 'default'}, runs={args.runs}"
    )
    ok = [bench_tree(name, tree, args.runs, args.threads, args.levels) for name, tree in trees]
    if not all(ok):
        print("FAIL: our outputs differ between runs or are not deterministic", file=sys.stderr)
        return 1
    print("\nOK: every build of ours is byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
