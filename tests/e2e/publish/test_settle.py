"""A successful run ends clean: after a PublishLayerVersion whose answer was lost, the region
keeps looking for the version for the settle time before it publishes again, so a commit
that lands after the client gave up is found (and adopted) by the same run, not left as a
private duplicate. The lowest holder wins wherever it is in the history (a listing that
pages). Through the CLI against moto's server and the fault proxy's held request, and with
the publisher's paging fake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.aws.clients import Statement
from layer_builder.config import LayerConfig
from layer_builder.publish.publisher import RegionPublisher
from layer_builder.publish.records import LayerRecord
from tests.helpers.clock import Clock
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.histories import NEW, REGIONS, build, recorded, run_publish, versions
from tests.helpers.publisher_fakes import (
    CODE,
    MARKER,
    NAME,
    REGION,
    FakeLambda,
    RecordingDeadline,
    make_plan,
)


def test_a_publish_committed_after_the_client_gave_up_is_adopted_by_the_same_run(
    aws_env: str,
    make_config: Callable[..., LayerConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # region_timeout 12 with AWS_MAX_ATTEMPTS=2: a 6 s read timeout, so a settle time of 6 s
    # (the default rule); the proxy holds the first publish of each region 7 s, then lets
    # it through: it commits a second after the client gave up.
    cfg = make_config(
        publish="max_workers: 8\nregion_timeout: 12\nattempts: 3\n", architectures="[x86_64]"
    )
    dist, registry = tmp_path / "dist", tmp_path / "registry"
    build(cfg, dist, NEW)
    name = cfg.layer_name(NEW, "x86_64")
    faults = Faults(first={"PublishLayerVersion": "hold"}, hold_seconds=7.0)
    with FaultProxy(aws_env, faults) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
        assert code == 0, err
        finished = proxy.holds_finished
        published = proxy.count("PublishLayerVersion")
    assert finished == len(REGIONS)  # every held request committed before the run ended
    assert published == len(REGIONS)  # and none was sent twice
    assert data is not None
    # The run's own end state is clean: one version per region, public, recorded.
    assert {r: versions(aws_env, r, name) for r in REGIONS} == {r: [1] for r in REGIONS}
    assert recorded(registry, NEW) == {r: 1 for r in REGIONS}
    assert {r["status"] for r in data["results"]} == {"new"}
    for r in data["results"]:
        assert r["actions"][0].startswith("publish answer lost: found version 1 after ")
        assert r["actions"][0].endswith(" s (settle time 6 s)")  # reported
    # Nothing lands later, and the same command again only reads.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    assert data is not None and {r["status"] for r in data["results"]} == {"reused"}
    assert {r: versions(aws_env, r, name) for r in REGIONS} == {r: [1] for r in REGIONS}


def test_a_lost_publish_that_never_lands_is_waited_for_then_published_once_more() -> None:
    from tests.helpers.publisher_fakes import server_error

    api = FakeLambda()
    # Lambda never got it: the answer is lost and nothing was published.
    api.fail["publish"] = [server_error("PublishLayerVersion")]
    slept: list[float] = []
    pub = RegionPublisher("123456789012", "aws", settle=3.0, sleep=slept.append, clock=Clock(100.0))
    got = pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]
    assert (got.status, got.version, got.error) == ("new", 1, None)
    assert got.actions[0] == "publish answer lost: not listed within the settle time (3 s); " \
        "publishing again"  # fmt: skip
    # The backoff, then three looks a second apart, then the second publish.
    assert [c[0] for c in api.calls].count("publish") == 2
    assert sum(slept[1:]) == 3.0 and all(s <= 1.0 for s in slept[1:])
    assert [c[0] for c in api.calls][:6] == ["list", "publish", "list", "list", "list", "list"]


def test_the_lowest_holder_on_a_later_page_wins_over_a_late_duplicate_on_the_first() -> None:
    api = FakeLambda(page_size=2)
    lowest = api.add(CODE, f"the first publish {MARKER}", Statement("public"))
    api.add("b3RoZXI=", "another release [sha256:0123456789ab]")
    api.add("b3RoZXI=", "another release [sha256:0123456789ab]")
    late = api.add(CODE, f"a late commit {MARKER}")
    pub = RegionPublisher("123456789012", "aws")
    record = LayerRecord(NAME)
    got = pub.publish(api, make_plan(), deadline=RecordingDeadline(), record=record)  # type: ignore[arg-type]
    assert (got.status, got.version, got.deleted) == ("reused", lowest, (late,))
    assert sorted(api.versions) == [1, 2, 3]
    assert [c for c in api.calls if c[0] == "list"] == [("list", None), ("list", "2")]
    assert got.region == REGION
