"""What a layer adds to a Lambda cold start, against the bare function and against the same SDK
laid out as upstream's build scripts lay it out, interleaved in one run.

    python bench/smoke_bench.py [--layer python|node ...] [--rounds 10] [--json]
    python bench/smoke_bench.py --layer python --bytecode all   # and the other bytecode scope
        [--node-enable require|import]   # Node: measure the -r (default) or the --import run
    python bench/smoke_bench.py --zip OURS.zip --zip UPSTREAM.zip ...   # zips built elsewhere

For each reference layer (``configs/sentry-python.yml`` 2.75.0, ``configs/sentry-node.yml``
10.75.2, the sandbox stand-in as each architecture's extension) it builds two zips from the
same config and SDK version: **ours** (the config as it is: bytecode of the cold path for every
runtime with an interpreter here, ...) and **upstream-style** (every optimisation of the config
turned off: the plain pip tree without bytecode, the npm tree as is); ``--bytecode all`` adds
the Python layer with that ``optimize.bytecode`` (labelled ``bytecode=all``). Then,
``--rounds`` times, each zip gets ``layer-builder smoke``'s pair of fresh emulated environments
(the bare function alone, then the function with the layer), in alternating order (ABBA) so
drift of a shared machine hits both alike. Per layout it prints the median and the spread
(25th-75th percentile) of: the cold start and what the layer adds to it (against the bare
function of the same pair), the warm invocation and what the layer adds, the init split
(extensions registered, runtime init, first invocation), the peak RSS of the runtime (with the
layer and bare) and of the extensions, the unzipped size and the file count; and the ratio of
ours to upstream-style for the added cold start, the warm invocation and the size (and, in
``ratio_to_upstream``, of every layout to upstream-style).

Peak RSS is each process's ``VmHWM`` (kernel-kept peak) read from ``/proc`` every 20 ms
while it runs, so it is exact unless a process grows in its last 20 ms. The stand-in
extension registers and waits for events as Relay does but starts no proxy: its figures are
a floor for Relay's, not Relay's. Only the host's architecture runs (qemu would measure the
emulator).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from layer_builder.build.assemble import build_release, plan_extension  # noqa: E402
from layer_builder.config import LayerConfig, load_config  # noqa: E402
from layer_builder.model import ReleaseVersion  # noqa: E402
from layer_builder.smoke.runner import SmokeOptions, host_architecture, smoke_zip  # noqa: E402
from layer_builder.smoke.runtimes import NODE_ENABLE  # noqa: E402

STANDIN = ROOT / "extensions" / "standin"
EXTENSIONS = {
    "x86_64": STANDIN / "sentry-standin-x86_64",
    "arm64": STANDIN / "sentry-standin-aarch64",
}
LAYERS = {
    "python": (ROOT / "configs" / "sentry-python.yml", "2.75.0"),
    "node": (ROOT / "configs" / "sentry-node.yml", "10.75.2"),
}
OURS, UPSTREAM = "ours", "upstream-style"
#: Per-round figures, in milliseconds or MB; "added" ones are against the bare function.
TIMES = (
    "cold_start_ms",
    "added_cold_start_ms",
    "warm_invoke_ms",
    "added_warm_invoke_ms",
    "extensions_init_ms",
    "runtime_init_ms",
    "cold_invoke_ms",
    "bare_cold_start_ms",
)
MEMORY = ("runtime_rss_mb", "bare_runtime_rss_mb", "extensions_rss_mb")


# ----------------------------------------------------------------------------- layouts


def upstream_style(cfg: LayerConfig) -> LayerConfig:
    """The same config with every cold-start optimisation off: the layout upstream's build
    scripts produce (pip's tree without bytecode; npm's tree as is)."""
    return dataclasses.replace(cfg, bytecode="", single_sdk_copy=False, bundle=False)


def build_pair(
    cfg: LayerConfig, version: str, out: Path, bytecode: tuple[str, ...] = ()
) -> dict[str, Path]:
    """Ours and the upstream-style zip of one config and version, from the same inputs (the
    same config, SDK version, extension binaries and SOURCE_DATE_EPOCH); and for each scope
    in ``bytecode`` (a Python layer's other ``optimize.bytecode`` variants) ours with it,
    labelled ``bytecode=<scope>``."""
    release = ReleaseVersion.parse(version)
    archs = cfg.select_architectures(None)
    overrides = {a: EXTENSIONS[a] for a in archs} if cfg.extension is not None else {}
    plan = plan_extension(cfg, archs, overrides=overrides)
    zips = {}
    variants = [(OURS, cfg), (UPSTREAM, upstream_style(cfg))]
    variants += [(f"bytecode={b}", dataclasses.replace(cfg, bytecode=b)) for b in bytecode]
    for label, variant in variants:
        (layer,) = build_release(variant, release, plan, out / label, epoch=315532800)
        zips[label] = layer.zip_path
    return zips


def static_figures(zip_path: Path) -> dict[str, float]:
    with zipfile.ZipFile(zip_path) as zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
    return {
        "zip_mb": zip_path.stat().st_size / 1e6,
        "unzipped_mb": sum(i.file_size for i in files) / 1e6,
        "files": len(files),
    }


# ----------------------------------------------------------------------------- memory


def _children() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return out


def _kind(pid: int) -> str | None:
    """``runtime`` / ``bare_runtime`` / ``extension`` for a smoke process, None otherwise."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    text = b" ".join(argv)
    if b"/relay/" in text or b"/extensions/" in text:
        return "extension"
    is_runtime = b"awslambdaric" in text or Path(argv[0].decode(errors="replace")).name == "node"
    if not is_runtime:
        return None
    # The layer's runtime has the wrapper handler (Python) or the SDK's preload (Node); the
    # bare one may have NODE_OPTIONS of its own (the smoke's ESM resolution helper).
    with_layer = (
        b"SENTRY_INITIAL_HANDLER=" in environ or b"@sentry/aws-serverless/awslambda-auto" in environ
    )
    return "runtime" if with_layer else "bare_runtime"


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def peak_rss(interval: float = 0.02) -> Iterator[dict[str, float]]:
    """Peak RSS (MB) of the runtime with the layer, the bare runtime and the extensions
    (summed per tick: they run side by side) among this process's descendants."""
    peaks: dict[str, float] = {"runtime_rss_mb": 0.0, "bare_runtime_rss_mb": 0.0,
                               "extensions_rss_mb": 0.0}  # fmt: skip
    stop = threading.Event()
    me = os.getpid()
    kinds: dict[int, str | None] = {}

    def tick() -> None:
        parents = _children()
        mine, frontier = set(), [me]
        while frontier:
            p = frontier.pop()
            for child, parent in parents.items():
                if parent == p and child not in mine:
                    mine.add(child)
                    frontier.append(child)
        ext = 0
        for pid in mine:
            if pid not in kinds or kinds[pid] is None:
                kinds[pid] = _kind(pid)
            kind = kinds[pid]
            if kind is None:
                continue
            mb = _hwm_kb(pid) / 1024
            if kind == "extension":
                ext += mb
            else:
                peaks[f"{kind}_rss_mb"] = max(peaks[f"{kind}_rss_mb"], mb)
        peaks["extensions_rss_mb"] = max(peaks["extensions_rss_mb"], ext)

    def loop() -> None:
        while not stop.wait(interval):
            tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


# ----------------------------------------------------------------------------- rounds


def one_round(zip_path: Path, node_enable: str = "require") -> dict[str, float]:
    """One smoke pair (bare function, then with the layer) on the host's architecture."""
    # A Node layer runs only the way --node-enable names (-r or --import), so its timings and
    # peak RSS are that run's alone; a Python layer has one way ("wrapper").
    options = SmokeOptions(architectures=(host_architecture(),), enable_modes=(node_enable,))
    with peak_rss() as rss:
        (report,) = smoke_zip(zip_path, options)
    if report.status != "passed" or report.timings is None or report.baseline is None:
        raise SystemExit(f"{zip_path}: smoke did not pass: {report.phase}: {report.cause}")
    t, b = report.timings, report.baseline
    figures = {
        "cold_start_ms": t.cold_start_ms,
        "added_cold_start_ms": report.added_cold_ms,
        "warm_invoke_ms": t.warm_invoke_ms,
        "added_warm_invoke_ms": report.added_warm_ms,
        "extensions_init_ms": t.extensions_init_ms,
        "runtime_init_ms": t.runtime_init_ms,
        "cold_invoke_ms": t.cold_invoke_ms,
        "bare_cold_start_ms": b.cold_start_ms,
        **rss,
    }
    return {k: float(v) for k, v in figures.items() if v is not None}


def spread(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": statistics.median(values), "p25": q[0], "p75": q[2],
            "min": min(values), "max": max(values)}  # fmt: skip


def bench_layer(zips: dict[str, Path], rounds: int, node_enable: str = "require") -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in zips}
    labels = list(zips)
    for n in range(rounds):
        order = labels if n % 2 == 0 else labels[::-1]  # ABBA: drift hits both alike
        for label in order:
            samples[label].append(one_round(zips[label], node_enable))
        last = {lb: samples[lb][-1]["added_cold_start_ms"] for lb in labels}
        shown = ", ".join(f"{lb} {ms:.0f} ms" for lb, ms in last.items())
        print(f"  round {n + 1}/{rounds}: added cold start {shown}", file=sys.stderr)
    out: dict[str, Any] = {"rounds": rounds, "node_enable": node_enable, "layouts": {}}
    for label in labels:
        keys = [k for k in (*TIMES, *MEMORY) if all(k in s for s in samples[label])]
        out["layouts"][label] = {
            "zip": zips[label].name,
            **static_figures(zips[label]),
            **{k: spread([s[k] for s in samples[label]]) for k in keys},
        }
    if OURS in zips and UPSTREAM in zips:
        ours, up = out["layouts"][OURS], out["layouts"][UPSTREAM]
        out["same_zip"] = zips[OURS].read_bytes() == zips[UPSTREAM].read_bytes()
        out["ratio_ours_to_upstream"] = {
            k: ours[k]["median"] / up[k]["median"]
            for k in ("added_cold_start_ms", "warm_invoke_ms", "cold_start_ms")
            if up[k]["median"] > 0
        } | {
            "zip_mb": ours["zip_mb"] / up["zip_mb"],
            "unzipped_mb": ours["unzipped_mb"] / up["unzipped_mb"],
        }
        # Paired: each round's ours / upstream-style, which ran back to back under the same
        # load; its median and quartiles show what the machine's noise does to one ratio.
        pairs = list(zip(samples[OURS], samples[UPSTREAM], strict=True))
        out["paired_ratio"] = {
            k: spread([a[k] / b[k] for a, b in pairs])
            for k in ("added_cold_start_ms", "warm_invoke_ms")
        }
        out["rounds_ours_faster"] = sum(
            a["added_cold_start_ms"] < b["added_cold_start_ms"] for a, b in pairs
        )
    if UPSTREAM in zips:
        # Every layout against upstream-style, ours and any other variant alike.
        up = out["layouts"][UPSTREAM]
        out["ratio_to_upstream"] = {
            label: _ratios(d, up) for label, d in out["layouts"].items() if label != UPSTREAM
        }
    return out


def _ratios(d: dict[str, Any], up: dict[str, Any]) -> dict[str, float]:
    """A layout's medians and sizes over upstream-style's."""
    keys = ("added_cold_start_ms", "runtime_init_ms", "warm_invoke_ms")
    both = [k for k in keys if k in d and k in up and up[k]["median"] > 0]
    out = {k: d[k]["median"] / up[k]["median"] for k in both}
    return out | {k: d[k] / up[k] for k in ("zip_mb", "unzipped_mb")}


def _row(label: str, d: dict[str, Any]) -> str:
    def f(key: str, digits: int = 0) -> str:
        if key not in d:
            return "-"
        s = d[key]
        return f"{s['median']:.{digits}f} ({s['p25']:.{digits}f}-{s['p75']:.{digits}f})"

    return (
        f"| {label} | {f('added_cold_start_ms')} | {f('cold_start_ms')} "
        f"| {f('bare_cold_start_ms')} | {f('extensions_init_ms')} | {f('runtime_init_ms')} "
        f"| {f('cold_invoke_ms')} "
        f"| {f('warm_invoke_ms', 1)} | {f('added_warm_invoke_ms', 1)} | {f('runtime_rss_mb')} "
        f"| {f('bare_runtime_rss_mb')} | {f('extensions_rss_mb', 1)} "
        f"| {d['zip_mb']:.1f} / {d['unzipped_mb']:.1f} | {d['files']:,} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", action="append", choices=sorted(LAYERS))
    parser.add_argument(
        "--zip",
        action="append",
        type=Path,
        default=[],
        help="measure these zips instead of building (the first is 'ours')",
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--bytecode",
        action="append",
        choices=("all", "cold-path"),
        default=[],
        help="also measure the Python layer with this optimize.bytecode (interleaved)",
    )
    parser.add_argument(
        "--node-enable",
        choices=sorted(NODE_ENABLE),
        default="require",
        help="which way Sentry enables a Node layer to measure: -r (require) or --import",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="smoke-bench-") as tmp:
        if args.zip:
            pairs = {"zips": {(OURS if i == 0 else UPSTREAM if i == 1 else z.stem): z
                              for i, z in enumerate(args.zip)}}  # fmt: skip
        else:
            pairs = {}
            for name in args.layer or sorted(LAYERS, reverse=True):
                config, version = LAYERS[name]
                print(f"{name}: building ours and upstream-style {version}", file=sys.stderr)
                extra = tuple(args.bytecode) if name == "python" else ()
                pairs[name] = build_pair(load_config(config), version, Path(tmp) / name, extra)
        for name, zips in pairs.items():
            print(f"{name}: {args.rounds} rounds", file=sys.stderr)
            results[name] = bench_layer(zips, args.rounds, args.node_enable)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| layer | added cold start | cold start | bare cold start | ext. registered "
          "| runtime init | first invocation | warm | added warm | runtime RSS MB "
          "| bare RSS MB | ext. RSS MB | MB zip / unzipped | files |")  # fmt: skip
    print("|" + " --- |" * 14)
    for name, r in results.items():
        for label, d in r["layouts"].items():
            print(_row(f"{name} {label}", d))
    print(f"(ms unless said; median (25th-75th percentile) of {args.rounds} rounds)")
    for name, r in results.items():
        for label, ratio in r.get("ratio_to_upstream", {}).items():
            if label != OURS:
                medians = ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
                print(f"{name}: {label} / upstream-style, ratio of medians: {medians}")
        ratio = r.get("ratio_ours_to_upstream")
        if not ratio:
            continue
        medians = ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
        print(f"{name}: ours / upstream-style, ratio of medians: {medians}")
        paired = ", ".join(
            f"{k} {v['median']:.2f}x ({v['p25']:.2f}-{v['p75']:.2f})"
            for k, v in r["paired_ratio"].items()
        )
        faster = f"ours faster in {r['rounds_ours_faster']} of {r['rounds']} rounds"
        print(f"{name}: paired per round: {paired}; {faster}")
        if r["same_zip"]:
            print(f"{name}: both layouts are the same zip (no optimisation applies): "
                  "their difference is this machine's noise")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
