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
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy, Faults
from test_publish_histories import NEW, build, versions

from layer_builder.aws.clients import Aws
from layer_builder.config import LayerConfig
from layer_builder.publish import resolve_regions


def _publish(
    cfg: LayerConfig, dist: Path, registry: Path, endpoint: str
) -> subprocess.Popen[str]:
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
