"""How long publishing takes: one region vs all regions vs the shell-script baseline.

    python bench/publish_bench.py [--latency 0.15] [--workers N]

Runs moto's server on loopback behind tests/helpers/faultproxy.py in latency mode - every call
waits ``--latency`` seconds, as a call to a distant region would, and nothing fails - in a
child process (so the emulator does not compete for this process's GIL), points boto3 and
the AWS CLI at it with fake credentials, then times, in one run:

  (a) publish_all to one region;
  (b) publish_all to every enabled region of the partition (ratio b/a);
  (c) the shell-script way: a sequential loop of ``aws lambda publish-layer-version`` and
      ``aws lambda add-layer-version-permission`` per region with the AWS CLI, through the
      same proxy (ratio b/c);
  (d) a no-op re-release of (b): calls per region and wall time;
  (e) AWS calls per region for: a first release; a no-op re-run with the registry the
      first run wrote (aim: at most 2 per region, all reads); and finishing an older
      release after a newer one (the older one had missed one region).

Every scenario uses its own layer name, so none reuses another's versions. The layer is a
small real zip (one architecture, x86_64), the same bytes for every scenario.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import io
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fault proxy lives with the tests' helpers

from layer_builder.aws.clients import Aws  # noqa: E402
from layer_builder.config import LayerConfig, load_config  # noqa: E402
from layer_builder.model import BuildManifest, PublishResult, ReleaseVersion  # noqa: E402
from layer_builder.publish import Seams, plan_publish, publish_all, resolve_regions  # noqa: E402
from layer_builder.publish.target import PublishOptions, PublishTarget  # noqa: E402
from layer_builder.sandbox.emulator import patched_env  # noqa: E402
from tests.helpers.faultproxy import FaultProxy, Faults  # noqa: E402

VERSION = ReleaseVersion.parse("1.0.0")
RUNTIMES = ("python3.12", "python3.13")


def make_zip(path: Path) -> bytes:
    """A small but real Python layer: a package with a few modules, fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(20):
            info = zipfile.ZipInfo(f"python/benchpkg/mod{i:02d}.py", (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, f'"""Module {i}."""\n\nVALUE = {i}\n' * 50)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


Manifests = list[tuple[Path, BuildManifest]]


def layer(
    tmp: Path, data: bytes, name: str, version: ReleaseVersion = VERSION
) -> tuple[LayerConfig, Manifests]:
    """A config whose layer is called ``name``, and the manifest for the zip beside it."""
    cfg_path = tmp / f"{name}.yml"
    cfg_path.write_text(
        f'name: "{name}"\ndescription: "bench {{{{ version }}}}"\nlicense: MIT\n'
        'canonical: "aws-layer:python"\nruntime: python\n'
        f"compatible_runtimes: [{', '.join(RUNTIMES)}]\narchitectures: [x86_64]\n"
        "sdk: {package: sentry-sdk}\nregistry: {runtime_dir: python}\n",
        encoding="utf-8",
    )
    cfg = load_config(cfg_path)
    zip_name = f"{name}-{version.text}.zip"
    (tmp / zip_name).write_bytes(data)
    digest = hashlib.sha256(data)
    m = BuildManifest(
        layer_name=name, canonical=cfg.canonical, version=version.text, architectures=("x86_64",),
        layout=cfg.layout,
        compatible_runtimes=RUNTIMES, description=cfg.description.render(version, "x86_64"),
        license="MIT", zip_file=zip_name, sha256=digest.hexdigest(),
        code_sha256=base64.b64encode(digest.digest()).decode(), zip_size=len(data),
        unzipped_size=0, file_count=20, sdk_name="benchpkg", sdk_version=version.text,
        extensions=(), source_date_epoch=315532800,
    )  # fmt: skip
    manifest_path = tmp / f"{zip_name}.json"
    manifest_path.write_text(m.to_json(), encoding="utf-8")
    return cfg, [(manifest_path, m)]


def timed_publish(tmp: Path, data: bytes, regions: list[str], account: str, partition: str,
                  workers: int | None, name: str | None = None,
                  aws: Aws | None = None) -> tuple[float, PublishResult, str]:  # fmt: skip
    """publish_all's wall time, from a fresh boto3 session as a new CLI process would."""
    name = name or f"Bench{uuid.uuid4().hex[:8]}"
    cfg, manifests = layer(tmp, data, name)
    # A new CLI process starts with no garbage. Earlier runs leave theirs (each run's
    # session and clients form reference cycles: ~45,000 objects for 20 regions), and the
    # collector would otherwise stop this run for 0.1-0.35 s to reclaim them.
    gc.collect()
    start = time.perf_counter()
    target = PublishTarget(account, partition, tuple(regions))
    options = PublishOptions.resolve(cfg, workers=workers)
    result = publish_all(plan_publish(cfg, VERSION, manifests, target), target, options,
                         Seams(aws=aws or Aws()))  # fmt: skip
    elapsed = time.perf_counter() - start
    if not result.complete:
        raise SystemExit(f"publish failed: {result.failed}")
    return elapsed, result, name


def cli_loop(zip_path: Path, regions: list[str]) -> float:
    """The shell-script baseline: two AWS CLI calls per region, one region after another."""
    aws = shutil.which("aws")
    if aws is None:
        raise SystemExit("the AWS CLI (`aws`) is not on PATH")
    name = f"BenchCli{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    for region in regions:
        out = subprocess.run(
            [aws, "lambda", "publish-layer-version", "--region", region, "--layer-name", name,
             "--zip-file", f"fileb://{zip_path}", "--compatible-runtimes", *RUNTIMES,
             "--compatible-architectures", "x86_64", "--license-info", "MIT",
             "--description", "bench", "--query", "Version", "--output", "text"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        subprocess.run(
            [aws, "lambda", "add-layer-version-permission", "--region", region,
             "--layer-name", name, "--version-number", out.stdout.strip(),
             "--statement-id", "public", "--action", "lambda:GetLayerVersion",
             "--principal", "*", "--output", "text"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    return time.perf_counter() - start


def serve(latency: float) -> int:
    """Child process: moto + the latency proxy, kept out of the measured process's GIL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with FaultProxy(f"http://{host}:{port}", Faults(latency=latency)) as proxy:
        print(proxy.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    server.stop()
    return 0


class CallCounter:
    """Counts the API calls our boto3 clients make, by operation (a botocore event hook)."""

    def __init__(self, aws: Aws) -> None:
        self.calls: list[str] = []
        aws.session.events.register("before-call", self._seen)

    def _seen(self, model: Any, **kwargs: Any) -> None:
        self.calls.append(str(model.name))  # list.append is atomic: no lock needed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.15, help="seconds added per call")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="publish.max_workers for (b) and (d) (default: the config's publish.max_workers, 64)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--skip-cli", action="store_true", help="skip the AWS CLI baseline (c)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    if args.serve:
        return serve(args.latency)

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(args.latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        url = child.stdout.readline().strip()
        fake = {
            "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp_dir, patched_env(fake, ("AWS_PROFILE",)):
            report(args, Path(tmp_dir))
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    return 0


def report(args: argparse.Namespace, tmp: Path) -> None:
    data = make_zip(tmp / "layer.zip")
    # Warm moto's EC2 and per-region Lambda backends: their first use costs ~1 s in moto.
    account, partition, regions = resolve_regions(Aws(), None, ())
    timed_publish(tmp, data, regions, account, partition, len(regions))
    start = time.perf_counter()
    resolve_regions(Aws(), None, ())
    resolve = time.perf_counter() - start
    w, n = args.workers, len(regions)

    # Medians over --repeat runs, each with a fresh layer name (nothing to reuse).
    ones = [timed_publish(tmp, data, [regions[0]], account, partition, w)[0]
            for _ in range(args.repeat)]  # fmt: skip
    one = statistics.median(ones)
    runs = [timed_publish(tmp, data, regions, account, partition, w) for _ in range(args.repeat)]
    every = statistics.median(t for t, _, _ in runs)
    alls = [t for t, _, _ in runs]
    name = runs[0][2]
    cli = None if args.skip_cli else cli_loop(tmp / "layer.zip", regions)
    noops: list[float] = []
    calls, published, ops = 0, 0, [""]
    for _ in range(args.repeat):
        aws = Aws()
        counter = CallCounter(aws)
        noop, again, _ = timed_publish(tmp, data, regions, account, partition, w, name, aws)
        assert {r.status for r in again.results} == {"reused"}
        noops.append(noop)
        calls = len(counter.calls)
        published = counter.calls.count("PublishLayerVersion")
        ops = sorted(set(counter.calls))

    workers = w or "config default (64)"
    print(f"layer zip {len(data)} bytes, 1 architecture; latency {args.latency * 1000:.0f} ms "
          f"per call; {n} regions ({partition}); max_workers {workers}; "
          f"median of {args.repeat} runs")  # fmt: skip
    print(f"    resolve_regions (STS + EC2)  {resolve:7.2f} s")
    print(f"(a) publish, 1 region          {one:7.2f} s   (runs {_spread(ones)})")
    print(f"(b) publish, all {n:2d} regions    {every:7.2f} s   (runs {_spread(alls)})"
          f"   b/a = {every / one:.2f}x")  # fmt: skip
    if cli is not None:
        print(f"(c) AWS CLI loop, all regions  {cli:7.2f} s   b/c = {every / cli:.3f}"
              f"   (the loop is {cli / every:.0f}x slower)")  # fmt: skip
    noop = statistics.median(noops)
    print(f"(d) no-op re-release           {noop:7.2f} s   {calls / n:.1f} calls per region "
          f"({', '.join(ops)}), {published} published")  # fmt: skip
    calls_per_region(tmp, data, regions, account, partition, w)


def _spread(times: list[float]) -> str:
    return f"{min(times):.2f}-{max(times):.2f} s"


def _counted(
    tmp: Path, data: bytes, name: str, version: ReleaseVersion, regions: list[str],
    account: str, partition: str, workers: int | None, registry: Path | None = None,
) -> tuple[PublishResult, list[str], Manifests]:  # fmt: skip
    """publish_all as the CLI runs it (with the registry's records when given), counted."""
    from layer_builder.publish.records import registry_records
    from layer_builder.registry.files import preflight_release

    cfg, manifests = layer(tmp, data, name, version)
    records = None
    if registry is not None:
        state = preflight_release(registry, cfg.registry.runtime_dir, version.text)
        records = registry_records(state, manifests, account)
    aws = Aws()
    counter = CallCounter(aws)
    target = PublishTarget(account, partition, tuple(regions))
    options = PublishOptions.resolve(cfg, workers=workers)
    result = publish_all(plan_publish(cfg, version, manifests, target), target, options,
                         Seams(aws=aws), records=records)  # fmt: skip
    if not result.complete:
        raise SystemExit(f"publish failed: {result.failed}")
    return result, counter.calls, manifests


def _record(registry: Path, result: PublishResult, manifests: Manifests,
            version: ReleaseVersion, account: str) -> None:  # fmt: skip
    from layer_builder.model import Registration
    from layer_builder.registry.writer import write_release

    reg = Registration(
        runtime_dir="python", canonical="aws-layer:python", version=version,
        sdk_version=version.text, account_number=account, compatible_runtimes=RUNTIMES,
        layers=tuple(result.layers([m for _, m in manifests])),
    )  # fmt: skip
    write_release(registry, reg)


def _line(label: str, calls: list[str], n: int) -> str:
    writes = [c for c in calls if not c.startswith(("List", "Get"))]
    ops = ", ".join(f"{op} {calls.count(op)}" for op in sorted(set(calls)))
    return (f"    {label:<34} {len(calls) / n:4.1f} calls per region, "
            f"{len(writes) / n:.1f} writes ({ops})")  # fmt: skip


def calls_per_region(tmp: Path, data: bytes, regions: list[str], account: str, partition: str,
                     workers: int | None) -> None:  # fmt: skip
    n = len(regions)
    print(f"(e) AWS calls per region ({n} regions)")
    name = f"BenchCalls{uuid.uuid4().hex[:8]}"
    registry = tmp / f"registry-{name}"
    first, calls, manifests = _counted(tmp, data, name, VERSION, regions, account, partition,
                                       workers, registry)  # fmt: skip
    _record(registry, first, manifests, VERSION, account)
    print(_line("first release", calls, n))
    again, calls, _ = _counted(tmp, data, name, VERSION, regions, account, partition, workers,
                               registry)  # fmt: skip
    assert {r.status for r in again.results} == {"reused"}
    print(_line("no-op re-run (registry written)", calls, n))

    # An older release that missed one region, a newer one everywhere, then the older one
    # finished: only the missed region may publish.
    older, newer = ReleaseVersion.parse("1.1.0"), ReleaseVersion.parse("1.2.0")
    name = f"BenchOlder{uuid.uuid4().hex[:8]}"
    old_data = data + b"\0"  # another zip (bytes after the archive change its sha256)
    _counted(tmp, old_data, name, older, regions[1:], account, partition, workers)
    _counted(tmp, data, name, newer, regions, account, partition, workers)
    late, calls, _ = _counted(tmp, old_data, name, older, regions, account, partition, workers)
    assert calls.count("PublishLayerVersion") == 1, calls
    assert sorted(r.status for r in late.results) == ["new"] + ["reused"] * (n - 1)
    print(_line("older release finished after newer", calls, n))


if __name__ == "__main__":
    sys.exit(main())
