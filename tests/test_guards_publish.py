"""Publishing guards at their edges: the 50 MB direct-upload threshold (a zip of exactly the
limit goes direct) and the fan-out giving up on a hung region at its deadline, measured on
the injected clock (mutants that moved either passed the older tests; see
docs/mutation-testing.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ConfigFactory
from publisher_fakes import publish_layers

from layer_builder.aws import facts as aws_facts
from layer_builder.aws.clients import Aws
from layer_builder.errors import ArgumentError
from layer_builder.model import BuildManifest, RegionResult, ReleaseVersion
from layer_builder.publish import plan_layers
from layer_builder.publish.plan import LayerPlan
from layer_builder.publish.publisher import RegionPublisher

V = ReleaseVersion.parse("2.75.0")
MakeLayers = Callable[..., list[tuple[Path, BuildManifest]]]


def test_a_zip_of_exactly_the_direct_upload_limit_goes_direct(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]", publish='s3_bucket: "stage-{{ region }}"\n')
    manifests = make_layers(cfg, V)
    zip_path = manifests[0][1].zip_path(manifests[0][0])
    size = zip_path.stat().st_size
    regions = ["eu-west-1", "us-west-2"]

    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", size)
    (direct,) = plan_layers(cfg, V, manifests, regions)
    assert (direct.use_s3, direct.size) == (False, size)
    assert direct.zip_bytes == zip_path.read_bytes()

    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", size - 1)
    (staged,) = plan_layers(cfg, V, manifests, regions)
    assert (staged.use_s3, staged.zip_bytes) == (True, None)
    assert staged.bucket_for("eu-west-1") == "stage-eu-west-1"


class SteppingClock:
    """An injected clock that moves on by ``step`` each time anyone reads it, from any
    thread: time passes only as the code under test looks at it, never with the wall."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now


HUNG = "eu-west-3"


def test_the_fan_out_gives_up_on_a_hung_region_at_its_deadline(
    no_aws_env: None,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    clock = SteppingClock(step=0.02)
    started: dict[str, float] = {}

    def publish(
        self: RegionPublisher, api: Any, plan: LayerPlan, *, deadline: Any, **_: Any
    ) -> RegionResult:
        """The region publisher, standing in for AWS: one region answers, one never does."""
        region = api.region
        started[region] = clock.now
        if region == HUNG:
            # Stuck in a call until the fan-out cancels it. The real-time cap only keeps a
            # broken fan-out from hanging the test; it then reports "new", which fails below.
            deadline.cancelled.wait(3.0)
        return RegionResult(region, plan.architectures, plan.layer_name, "new", version=1)

    monkeypatch.setattr(RegionPublisher, "publish", publish)
    reported: list[tuple[str, str, float]] = []
    result = publish_layers(
        cfg,
        V,
        manifests,
        ["eu-west-1", HUNG],
        account="123456789012",
        partition="aws",
        aws=Aws(),
        region_timeout=0.2,
        attempts=1,
        clock=clock,
        progress=lambda r: reported.append((r.region, r.status, clock.now)),
    )
    by_region = {r.region: r for r in result.results}
    assert by_region["eu-west-1"].status == "new"
    hung = by_region[HUNG]
    assert (hung.status, hung.error) == (
        "failed",
        "region_timeout of 0.2 s exceeded (no answer from the region)",
    )
    (given_up_at,) = [at for region, _, at in reported if region == HUNG]
    waited = given_up_at - started[HUNG]
    # Not before the deadline, and within the grace (0.05 s) plus a few clock reads after it.
    assert 0.2 <= waited <= 0.2 + 0.05 + 4 * clock.step, waited


def test_s3_staging_buckets_and_refusals_word_for_word(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    extra = random.Random(3).randbytes(700_000)  # incompressible: about 0.7 MB zipped
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", 512 * 1024)
    per_arch = make_config(publish='s3_bucket: "stage-{{ region }}{{ arch_suffix }}"\n')
    plans = plan_layers(per_arch, V, make_layers(per_arch, V, extra), ["eu-west-1", "us-west-2"])
    assert [p.bucket_for("eu-west-1") for p in plans] == [
        "stage-eu-west-1",
        "stage-eu-west-1-arm64",
    ]

    none = make_config(architectures="[x86_64]")
    manifests = make_layers(none, V, extra)
    size = manifests[0][1].zip_path(manifests[0][0]).stat().st_size
    with pytest.raises(ArgumentError, match="direct-upload limit") as exc:
        plan_layers(none, V, manifests, ["eu-west-1"])
    assert str(exc.value) == (
        f"{none.path}: publish.s3_bucket: {manifests[0][1].zip_file} is "
        f"{size / 1048576:.1f} MB, over the 0.5 MB direct-upload limit; set publish.s3_bucket "
        "to a bucket per region (e.g. 'my-layers-{{ region }}') so the zip can be staged in S3"
    )

    one = make_config(architectures="[x86_64]", publish='s3_bucket: "one-bucket"\n')
    manifests = make_layers(one, V, extra)
    (plan,) = plan_layers(one, V, manifests, ["eu-west-1"])  # one region: one bucket is fine
    assert plan.bucket_for("eu-west-1") == "one-bucket"
    with pytest.raises(ArgumentError, match="same bucket") as exc:
        plan_layers(one, V, manifests, ["eu-west-1", "us-west-2"])
    assert str(exc.value) == (
        f"{one.path}: publish.s3_bucket: renders to the same bucket for every region; Lambda "
        "reads the zip only from a bucket in the layer's own region, use {{ region }}"
    )
