"""Racing runs and late commits converge on one version per region (lowest number wins).

Two runs of one release are real processes (``python -m layer_builder publish``) against
moto's server behind a latency proxy, so their calls interleave; the late commit is the
fault proxy holding the first PublishLayerVersion of each region past the client's read
timeout before it lets it through.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.config import LayerConfig
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.histories import NEW, REGIONS, build, recorded, versions

Env = tuple[LayerConfig, Path, Path, str]


@pytest.fixture
def env(aws_env: str, make_config: Callable[..., LayerConfig], tmp_path: Path) -> Env:
    cfg = make_config(
        publish="max_workers: 8\nregion_timeout: 20\nattempts: 3\n", architectures="[x86_64]"
    )
    build(cfg, tmp_path / "dist", NEW)
    return cfg, tmp_path / "dist", tmp_path / "registry", aws_env


def _start(
    cfg: LayerConfig, dist: Path, registry: Path, endpoint: str, *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    return subprocess.Popen(
        [sys.executable, "-m", "layer_builder", "publish", str(cfg.path), "--version", NEW.text,
         "--dist", str(dist), "--registry", str(registry), "--regions", ",".join(REGIONS),
         *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_a_second_run_on_the_same_registry_waits_for_the_first_before_any_aws_call(
    env: Env,
) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(NEW, "x86_64")
    # Each run through its own proxy, so every call is known to be the first's or the
    # second's, with its arrival time.
    with (
        FaultProxy(endpoint, Faults(latency=0.3)) as first_proxy,
        FaultProxy(endpoint) as second_proxy,
    ):
        # --json: the human lines go to stderr, line by line.
        first = _start(cfg, dist, registry, first_proxy.url, "--json")
        assert first.stderr is not None
        # "publishing ..." is printed under the lock, after the registry's preflight.
        holding = first.stderr.readline()
        assert holding.startswith("publishing 1 layer(s)"), holding + first.stderr.read()
        assert first_proxy.count("PublishLayerVersion") == 0  # still at the start
        second = _start(cfg, dist, registry, second_proxy.url)
        code, err = _finish(first)
        assert code == 0, err
        # The first run's last call was answered 0.3 s after it arrived.
        first_done = first_proxy.arrivals(service=None)[-1][0] + 0.3
        second_code, second_err = _finish(second)
        arrivals = second_proxy.arrivals(service=None)
    assert second_code == 0, second_err
    # The second run asked AWS nothing (not even who it is) while the first held the lock,
    # then found every region done: reads only.
    assert arrivals and arrivals[0][0] > first_done
    assert {op for _, op in arrivals} <= {
        "GetCallerIdentity", "DescribeRegions", "ListLayerVersions", "GetLayerVersionPolicy"
    }  # fmt: skip
    assert {r: versions(endpoint, r, name) for r in REGIONS} == {r: [1] for r in REGIONS}
    assert recorded(registry, NEW) == {r: 1 for r in REGIONS}


def test_two_runs_with_two_registries_converge_on_the_lowest_version(env: Env) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(NEW, "x86_64")
    other = registry.with_name("registry-ci")
    with FaultProxy(endpoint, Faults(latency=0.1)) as proxy:
        runs = [_start(cfg, dist, r, proxy.url) for r in (registry, other)]
        outcomes = [_finish(p) for p in runs]
        published = proxy.count("PublishLayerVersion")
        deleted = proxy.count("DeleteLayerVersion")
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    # Whatever the interleaving, every duplicate published was deleted again (both runs
    # may delete the same one: the call is idempotent).
    assert published >= len(REGIONS) and (published == len(REGIONS) or deleted > 0)
    final = {r: versions(endpoint, r, name) for r in REGIONS}
    assert all(len(v) == 1 for v in final.values()), final
    assert recorded(registry, NEW) == recorded(other, NEW) == {r: v[0] for r, v in final.items()}


def test_two_runs_with_two_registries_and_late_commits_end_clean(env: Env) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(NEW, "x86_64")
    other = registry.with_name("registry-ci")
    # A 6 s read timeout; the first publish of each region (one run's) is held 7 s and then
    # commits: the held run finds the other run's version first, and its own lands later.
    cfg.path.write_text(cfg.path.read_text().replace("region_timeout: 20", "region_timeout: 12"))
    faults = Faults(first={"PublishLayerVersion": "hold"}, hold_seconds=7.0)
    with FaultProxy(endpoint, faults) as proxy:
        runs = [_start(cfg, dist, r, proxy.url) for r in (registry, other)]
        outcomes = [_finish(p) for p in runs]
        committed = proxy.holds_finished
        deleted = proxy.count("DeleteLayerVersion")
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert committed == len(REGIONS) and deleted >= len(REGIONS)
    # Both runs have ended and every late commit has landed: nothing is left behind.
    final = {r: versions(endpoint, r, name) for r in REGIONS}
    assert all(len(v) == 1 for v in final.values()), final
    assert recorded(registry, NEW) == recorded(other, NEW) == {r: v[0] for r, v in final.items()}
