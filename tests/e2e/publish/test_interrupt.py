"""Ctrl-C (SIGINT) and SIGTERM during publish: exit 130, what is done and what is not is
printed, and running the same command again finishes without duplicating anything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.aws.clients import Aws
from layer_builder.config import LayerConfig
from layer_builder.publish import resolve_regions
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.histories import NEW, build, versions


def _publish(cfg: LayerConfig, dist: Path, registry: Path, endpoint: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layer_builder", "publish", str(cfg.path), "--version", NEW.text,
         "--dist", str(dist), "--registry", str(registry), "--regions", "all", "--workers", "2",
         "--json"],
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_mid_publish_exits_130_and_the_rerun_finishes(
    aws_env: str,
    make_config: Callable[..., LayerConfig],
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    cfg = make_config(publish="region_timeout: 30\n", architectures="[x86_64]")
    dist, registry = tmp_path / "dist", tmp_path / "registry"
    build(cfg, dist, NEW)
    name = cfg.layer_name(NEW, "x86_64")
    _, _, regions = resolve_regions(Aws(), None, ())
    assert len(regions) > 6

    # 0.15 s per call and 2 workers: the whole release takes several seconds.
    with FaultProxy(aws_env, Faults(latency=0.15)) as proxy:
        proc = _publish(cfg, dist, registry, proxy.url)
        assert proc.stderr is not None
        lines: list[str] = []
        first_result = threading.Event()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if re.match(r"\[\s*1/", line):
                    first_result.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if not first_result.wait(60):
            proc.kill()
            reader.join(5)
            raise AssertionError("no result within 60 s:\n" + "".join(lines))
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        reader.join(timeout=10)
        assert proc.stdout is not None
        report = json.loads(proc.stdout.read())
    err = "".join(lines)
    assert code == 130, err
    assert report["interrupted"] and report["registry"] is None
    not_done = [r for r in report["results"] if r["status"] == "failed"]
    assert not_done and all(r["error"].startswith("interrupted") for r in not_done)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted: ") and " done; not done: " in last
    assert last.endswith("run the same command again to finish (nothing will be duplicated)")
    assert "Traceback" not in err
    assert "registry not written: interrupted" in err
    done = [r for r in regions if versions(aws_env, r, name)]
    assert 0 < len(done) < len(regions)  # stopped part-way

    # The same command again: exit 0, one version everywhere, nothing duplicated.
    rerun = _publish(cfg, dist, registry, aws_env)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert {r: versions(aws_env, r, name) for r in regions} == {r: [1] for r in regions}
    assert (registry / f"aws-lambda-layers/python/{NEW.text}.json").is_file()


def _start(
    cfg: LayerConfig, dist: Path, registry: Path, endpoint: str, *extra: str
) -> subprocess.Popen[str]:
    """``publish --regions all`` with the config's own worker count (64 by default)."""
    return subprocess.Popen(
        [sys.executable, "-m", "layer_builder", "publish", str(cfg.path), "--version", NEW.text,
         "--dist", str(dist), "--registry", str(registry), "--regions", "all", "--json", *extra],
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(1200):
        if condition():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate(timeout=30)
    raise AssertionError(f"never saw {what}:\n{err}")


@pytest.mark.parametrize("extra", [(), ("--allow-partial",)])
def test_an_interrupt_stops_every_region_with_the_default_64_workers(
    aws_env: str,
    make_config: Callable[..., LayerConfig],
    tmp_path: Path,
    extra: tuple[str, ...],
) -> None:
    cfg = make_config(publish="region_timeout: 60\n", architectures="[x86_64]")
    assert cfg.publish.max_workers == 64
    dist, registry = tmp_path / "dist", tmp_path / "registry"
    build(cfg, dist, NEW)
    # 1.5 s per call: every region is in flight at once, the first publishes arrive
    # together, and none can finish before the interrupt.
    with FaultProxy(aws_env, Faults(latency=1.5)) as proxy:
        proc = _start(cfg, dist, registry, proxy.url, *extra)
        _wait_for(lambda: proxy.count("PublishLayerVersion") > 0, "a publish", proc)
        interrupted_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        arrivals = proxy.arrivals()
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] and report["registry"] is None
    assert "registry not written: interrupted" in err
    runtime = registry / "aws-lambda-layers/python"
    assert not (runtime / f"{NEW.text}.json").exists() and not (runtime / "latest.json").exists()
    # Nothing new started in any region: the calls in flight finished (1.5 s), and no call
    # arrived after them; no region got as far as its permission.
    late = [op for at, op in arrivals if at > interrupted_at + 1.2]
    assert late == [], late
    assert not any(op == "AddLayerVersionPermission" for _, op in arrivals)
    assert {r["status"] for r in report["results"]} == {"failed"}
    assert all(r["error"].startswith("interrupted") for r in report["results"])
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted: 0 of ") and "Traceback" not in err


def test_a_second_ctrl_c_ends_at_once(
    aws_env: str, make_config: Callable[..., LayerConfig], tmp_path: Path
) -> None:
    cfg = make_config(publish="region_timeout: 60\n", architectures="[x86_64]")
    dist, registry = tmp_path / "dist", tmp_path / "registry"
    build(cfg, dist, NEW)
    _, _, regions = resolve_regions(Aws(), None, ())
    # Every region's listing hangs: after the first Ctrl-C the run would wait out the grace.
    faults = Faults(first={"ListLayerVersions": "hold"}, hold_seconds=60)
    with FaultProxy(aws_env, faults) as proxy:
        proc = _start(cfg, dist, registry, proxy.url)
        _wait_for(lambda: proxy.count(service="lambda") >= len(regions), "the listings", proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        # Well inside the 5 s grace the first Ctrl-C gives the calls in flight.
        _, err = proc.communicate(timeout=3)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    assert not (registry / "aws-lambda-layers").exists()
