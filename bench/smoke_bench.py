"""What a layer adds to a Lambda cold start: best of several smoke runs, against the bare function.

    python bench/smoke_bench.py ZIP... [--runs 5]

Each run is ``layer-builder smoke``'s pair of fresh emulated environments: the sample
function alone (empty ``/opt``, handler called directly), then with the layer (extensions
from ``/opt/extensions``, the SDK enabled as users enable it, a fake Sentry). For each phase
the best (lowest) figure over the runs is kept, since on a shared machine noise only ever
adds time. Printed per zip: init (extension registration, runtime init, total), the cold
(first) and warm (fastest later, returning) invocation, the cold start (init + cold
invocation), and the layer's cost: milliseconds added and the ratio to the bare function.

To measure the reference layers, build them first with the stand-in extension, e.g.:

    layer-builder build configs/sentry-python.yml --version 2.75.0 --out /tmp/b \\
        --extension-file x86_64=extensions/standin/sentry-standin-x86_64 \\
        --extension-file arm64=extensions/standin/sentry-standin-aarch64

The stand-in registers and waits for events as Relay does, but does not start a proxy, so
the extension figures are a floor for Relay's, not Relay's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from layer_builder.smoke.report import Timings  # noqa: E402
from layer_builder.smoke.runner import SmokeOptions, host_architecture, smoke_zip  # noqa: E402

FIELDS = ("extensions_init_ms", "runtime_init_ms", "init_ms", "cold_invoke_ms", "warm_invoke_ms")


def best(samples: list[Timings]) -> dict[str, float]:
    out = {f: min(getattr(t, f) for t in samples if getattr(t, f) is not None) for f in FIELDS}
    out["cold_start_ms"] = min(t.cold_start_ms for t in samples if t.cold_start_ms is not None)
    return out


def bench(zip_path: Path, runs: int) -> dict[str, Any]:
    host = host_architecture()
    layer: list[Timings] = []
    bare: list[Timings] = []
    for n in range(runs):
        # The host's architecture only: figures through qemu-user measure the emulator.
        # A Node layer gives one report per way of enabling it (-r, --import): the first.
        report = smoke_zip(zip_path, SmokeOptions(architectures=(host,)))[0]
        if report.status != "passed" or report.timings is None or report.baseline is None:
            raise SystemExit(
                f"{zip_path}: run {n + 1} did not pass: {report.phase}: {report.cause}"
            )
        layer.append(report.timings)
        bare.append(report.baseline)
        print(f"  run {n + 1}/{runs}: {report.summary()}", file=sys.stderr)
    with_layer, without = best(layer), best(bare)
    return {
        "zip": zip_path.name,
        "runtime": report.runtime,
        "runs": runs,
        "with_layer": with_layer,
        "bare": without,
        "added_cold_start_ms": with_layer["cold_start_ms"] - without["cold_start_ms"],
        "added_warm_invoke_ms": with_layer["warm_invoke_ms"] - without["warm_invoke_ms"],
        "cold_start_ratio": with_layer["cold_start_ms"] / without["cold_start_ms"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zips", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for z in args.zips:
        print(f"{z.name}: {args.runs} runs", file=sys.stderr)
        results.append(bench(z, args.runs))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        "| layer | ext. registered | runtime init | init | cold invoke | warm invoke "
        "| cold start | bare cold start | added cold | ratio | added warm |"
    )
    print("|" + " --- |" * 11)
    for r in results:
        w, b = r["with_layer"], r["bare"]
        print(
            f"| {r['zip']} | {w['extensions_init_ms']:.0f} | {w['runtime_init_ms']:.0f} "
            f"| {w['init_ms']:.0f} | {w['cold_invoke_ms']:.0f} | {w['warm_invoke_ms']:.1f} "
            f"| {w['cold_start_ms']:.0f} | {b['cold_start_ms']:.0f} "
            f"| {r['added_cold_start_ms']:.0f} | {r['cold_start_ratio']:.1f}x "
            f"| {r['added_warm_invoke_ms']:.1f} |"
        )
    print("(milliseconds, best of each phase over the runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
