"""Benchmark: layer_builder's deterministic zip writer against Info-ZIP on a real layer tree.

    python bench/zip_bench.py [--tree DIR] [--runs N] [--threads T]

Without ``--tree`` it builds a Python layer tree once with ``pip install --target`` (from
PyPI; cached under the temp directory and reused by later runs) and checks it holds at
least 30 MiB. Each run times Info-ZIP ``zip -X -r -q`` (run inside the tree) and
``write_zip`` over the same tree, alternating, and reports medians. It exits 1 if any two
of our runs produced different bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
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

DEFAULT_PACKAGES = ("sentry-sdk", "boto3", "botocore", "requests", "pydantic")
MIN_TREE_BYTES = 30 * 1024 * 1024


@dataclass
class Series:
    """Timings and outputs of one tool over all runs."""

    label: str
    seconds: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


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


def cached_tree(packages: Sequence[str], cache: Path) -> Path:
    """pip-install ``packages`` into a cached directory (built once, then reused)."""
    key = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:12]
    tree = cache / f"tree-{key}"
    if tree.is_dir():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache))
    print(f"installing {' '.join(packages)} into {tree} ...", file=sys.stderr)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--no-warn-conflicts",
        "--disable-pip-version-check",
        "--target",
        str(staging),
        *packages,
    ]
    try:
        subprocess.run(cmd, check=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(staging, tree)  # only a complete install ever appears under the cache key
    return tree


def warm_page_cache(root: Path) -> None:
    """Read every file once so neither tool pays for cold reads in its first run."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file():
                path.read_bytes()


def time_run(series: Series, out: Path, run: Callable[[Path], None]) -> None:
    out.unlink(missing_ok=True)  # Info-ZIP would update an existing archive
    start = time.perf_counter()
    run(out)
    series.seconds.append(time.perf_counter() - start)
    data = out.read_bytes()
    series.sizes.append(len(data))
    series.digests.append(hashlib.sha256(data).hexdigest())


def run_infozip(zip_tool: str, tree: Path, out: Path) -> None:
    """Info-ZIP with -X (no uid/gid or extended timestamps), run inside the tree."""
    subprocess.run([zip_tool, "-X", "-r", "-q", str(out), "."], cwd=tree, check=True)


def run_ours(tree: Path, out: Path, *, threads: int | None) -> None:
    """layer_builder's writer with its default level."""
    write_zip(tree, out, threads=threads)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="zip this directory instead of a pip install")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="write_zip threads")
    parser.add_argument(
        "--packages",
        nargs="+",
        default=list(DEFAULT_PACKAGES),
        help="what to pip install for the default tree",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "layer-builder-zip-bench"
    )
    args = parser.parse_args(argv)

    tree = args.tree.resolve() if args.tree else cached_tree(args.packages, args.cache)
    total, files = tree_stats(tree)
    if total < MIN_TREE_BYTES:
        msg = f"{tree}: {total / 2**20:.1f} MiB, less than the 30 MiB this benchmark wants"
        if not args.tree:
            print(f"error: {msg}; add packages with --packages", file=sys.stderr)
            return 2
        print(f"warning: {msg}", file=sys.stderr)
    zip_tool = shutil.which("zip")
    print(f"tree: {tree}\n  {total:,} bytes in {files:,} files")
    print(
        f"python {platform.python_version()}, deflate {deflate.__version__} "
        f"(libdeflate level {COMPRESSION_LEVEL}), {os.cpu_count()} CPUs, "
        f"threads={args.threads or 'default'}, runs={args.runs}"
    )
    warm_page_cache(tree)

    infozip = Series("Info-ZIP zip -X -r -q")
    ours = Series(f"write_zip (threads={args.threads or 'default'})")
    ours_1 = Series("write_zip (threads=1)")
    with tempfile.TemporaryDirectory(prefix="zip-bench-") as tmp:
        out_dir = Path(tmp)
        for i in range(args.runs):
            # Alternating the tools spreads any drift (thermal, other load) over all of them.
            if zip_tool:
                iz = out_dir / "infozip.zip"
                time_run(infozip, iz, partial(run_infozip, zip_tool, tree))
            out = out_dir / f"ours-{i}.zip"
            time_run(ours, out, partial(run_ours, tree, threads=args.threads))
            one = out_dir / f"ours-1-{i}.zip"
            time_run(ours_1, one, partial(run_ours, tree, threads=1))
        problems = inspect_zip(out_dir / "ours-0.zip").problems()

    rows = [s for s in (infozip, ours, ours_1) if s.seconds]
    print(
        f"\n{'tool':<30} {'median s':>9} {'min s':>7} {'zip bytes':>12} "
        f"{'time/IZ':>8} {'size/IZ':>8}"
    )
    for s in rows:
        t_ratio = f"{s.median / infozip.median:.2f}" if infozip.seconds else "-"
        s_ratio = f"{s.sizes[0] / infozip.sizes[0]:.3f}" if infozip.sizes else "-"
        print(
            f"{s.label:<30} {s.median:>9.3f} {min(s.seconds):>7.3f} {s.sizes[0]:>12,} "
            f"{t_ratio:>8} {s_ratio:>8}"
        )
    if not zip_tool:
        print("(Info-ZIP `zip` is not installed: no comparison)")

    distinct = set(ours.digests) | set(ours_1.digests)
    print(
        f"\nour sha256 over {len(ours.digests) + len(ours_1.digests)} builds: "
        f"{', '.join(sorted(distinct))}"
    )
    if problems:
        print(f"inspect_zip problems: {problems}")
    if len(distinct) != 1 or problems:
        print("FAIL: our outputs differ between runs or are not deterministic", file=sys.stderr)
        return 1
    print("OK: every build of ours is byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
