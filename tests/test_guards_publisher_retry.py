"""The publisher's retries, deadlines and S3 staging, word for word: the backoff bounds, when
a region gives up and the exact error it reports, what a deadline refuses to start, and
the staged object's life (uploaded, published from, removed even when publishing fails).
In-memory Lambda and S3 from tests/publisher_fakes.py; time is injected, never waited."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from layer_builder.aws.clients import Statement
from layer_builder.config import Template
from layer_builder.model import RegionResult
from layer_builder.publish.publisher import Deadline, DeadlineExceeded, RegionPublisher, RetryPolicy
from tests.helpers.publisher_fakes import (
    ACCOUNT,
    CODE,
    MARKER,
    NAME,
    REGION,
    SHA,
    FakeLambda,
    FakeS3,
    RecordingDeadline,
    TickClock,
    TopRng,
    arn,
    denied,
    make_plan,
    throttled,
)

LIST_ERROR = "ListLayerVersions in eu-west-1: TooManyRequestsException: scripted"


class RecordingRng:
    def __init__(self) -> None:
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return b


def test_the_backoff_doubles_from_the_base_delay_up_to_the_cap_with_full_jitter() -> None:
    rng = RecordingRng()
    policy = RetryPolicy(attempts=9, base_delay=0.5, max_delay=6.0)
    delays = [policy.delay(attempt, rng) for attempt in range(1, 7)]  # type: ignore[arg-type]
    assert delays == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0]
    assert {low for low, _ in rng.bounds} == {0.0}


def test_the_default_policy_tries_four_times_sleeping_one_two_then_four_seconds() -> None:
    api = FakeLambda()
    api.fail["list"] = [throttled("ListLayerVersions")] * 4
    slept: list[float] = []
    pub = RegionPublisher(ACCOUNT, "aws", sleep=slept.append, clock=TickClock(), rng=TopRng())
    got = pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == RegionResult(
        REGION, ("x86_64",), NAME, "failed", error=f"{LIST_ERROR} (gave up after 4 attempts)"
    )
    assert (slept, len(api.calls)) == ([1.0, 2.0, 4.0], 4)


def test_each_retry_is_logged_with_its_region_layer_reason_and_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeLambda()
    api.fail["list"] = [throttled("ListLayerVersions")]
    pub = RegionPublisher(ACCOUNT, "aws", sleep=lambda s: None, clock=TickClock(), rng=TopRng())
    with caplog.at_level("INFO", logger="layer_builder.publish.publisher"):
        pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert caplog.messages[0] == f"eu-west-1 {NAME}: {LIST_ERROR}; retry 2 in 1.00 s"


def test_an_error_that_cannot_pass_on_retry_fails_the_region_at_once() -> None:
    api = FakeLambda()
    api.fail["list"] = [denied("ListLayerVersions")]
    slept: list[float] = []
    pub = RegionPublisher(ACCOUNT, "aws", sleep=slept.append, clock=TickClock(), rng=TopRng())
    got = pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == RegionResult(
        REGION,
        ("x86_64",),
        NAME,
        "failed",
        error="ListLayerVersions in eu-west-1: AccessDeniedException: scripted",
    )
    assert (slept, api.calls) == ([], [("list", None)])


def test_a_region_that_fails_after_choosing_its_version_still_reports_it() -> None:

    api = FakeLambda()
    api.add(CODE, f"Guard layer 2.75.0 {MARKER}", Statement("public"))
    api.add(CODE, f"Guard layer 2.75.0 {MARKER}")
    api.fail["delete"] = [throttled("DeleteLayerVersion")] * 2
    pub = RegionPublisher(
        ACCOUNT, "aws", retry=RetryPolicy(attempts=2), sleep=lambda s: None, rng=TopRng()
    )
    got = pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got.error == (
        "DeleteLayerVersion in eu-west-1: TooManyRequestsException: scripted "
        "(gave up after 2 attempts)"
    )
    assert (got.status, got.version, got.arn, got.actions) == ("failed", 1, arn(1), ("reuse 1",))


@pytest.mark.parametrize(
    ("seconds", "slept", "error"),
    [
        pytest.param(
            2.0,
            [],
            f"{LIST_ERROR} (no time left to retry within region_timeout 2 s)",
            id="delay-equals-time-left",
        ),
        pytest.param(2.5, [2.0], None, id="delay-fits"),
    ],
)
def test_a_retry_is_only_slept_for_when_it_fits_before_the_deadline(
    seconds: float, slept: list[float], error: str | None
) -> None:
    api = FakeLambda()
    api.fail["list"] = [throttled("ListLayerVersions")]
    waits: list[float] = []
    pub = RegionPublisher(
        ACCOUNT,
        "aws",
        dry_run=True,
        retry=RetryPolicy(base_delay=2.0),
        sleep=waits.append,
        clock=TickClock(),
        rng=TopRng(),
    )
    deadline = Deadline(seconds, clock=lambda: 0.0)
    got = pub.publish(api, make_plan(), deadline=deadline)  # type: ignore[arg-type]

    assert (waits, got.region, got.error) == (slept, REGION, error)
    assert got.status == ("failed" if error else "planned-new")


def test_a_deadline_reached_stops_the_region_before_its_next_call() -> None:
    api = FakeLambda()
    deadline = RecordingDeadline(seconds=2.5, expire_before="PublishLayerVersion")
    got = RegionPublisher(ACCOUNT, "aws", clock=TickClock()).publish(
        api,
        make_plan(),
        deadline=deadline,  # type: ignore[arg-type]
    )

    assert got == RegionResult(
        REGION,
        ("x86_64",),
        NAME,
        "failed",
        error="region_timeout of 2.5 s exceeded before PublishLayerVersion",
    )
    assert api.calls == [("list", None)]


def test_a_deadline_counts_down_on_its_clock() -> None:
    readings = iter([100.0, 103.0])
    deadline = Deadline(10, clock=lambda: next(readings))
    assert deadline.remaining() == 7.0


def test_a_deadline_with_no_time_left_refuses_to_start_a_call() -> None:
    readings = iter([0.0, 10.0])
    deadline = Deadline(10, clock=lambda: next(readings))
    with pytest.raises(DeadlineExceeded, match=r"^region_timeout of 10 s exceeded before X$"):
        deadline.check("X")


def test_a_deadline_with_time_left_lets_a_call_start() -> None:
    readings = iter([0.0, 9.5])
    deadline = Deadline(10, clock=lambda: next(readings))
    deadline.check("X")  # raises DeadlineExceeded if wrong
    assert deadline.cancelled.is_set() is False


def test_a_deadline_cancelled_from_outside_stops_its_region() -> None:
    cancelled = threading.Event()
    deadline = Deadline(60, clock=lambda: 0.0, cancelled=cancelled)
    cancelled.set()
    with pytest.raises(DeadlineExceeded, match=r"^region_timeout of 60 s exceeded before Y$"):
        deadline.check("Y")


# --------------------------------------------------------------------------- S3 staging

BIG = Path("dist/big.zip")
KEY = f"layer-builder/{NAME}/{SHA}.zip"


def staged_plan() -> object:
    return make_plan(zip_bytes=None, zip_path=BIG, s3_bucket=Template("stage-{{ region }}"))


def test_a_big_zip_is_staged_in_the_regions_bucket_published_from_it_and_removed() -> None:
    api, s3, deadline = FakeLambda(), FakeS3(), RecordingDeadline()
    got = RegionPublisher(ACCOUNT, "aws", clock=TickClock()).publish(
        api,
        staged_plan(),  # type: ignore[arg-type]
        deadline=deadline,
        s3=lambda: s3,  # type: ignore[arg-type,return-value]
    )

    assert (got.status, got.version) == ("new", 1)
    assert s3.calls == [("upload", "stage-eu-west-1", KEY, BIG), ("delete", "stage-eu-west-1", KEY)]
    assert api.published[0]["content"] == {"S3Bucket": "stage-eu-west-1", "S3Key": KEY}
    assert deadline.checks[:3] == ["ListLayerVersions", "PutObject", "PublishLayerVersion"]


def test_the_staged_object_is_removed_when_the_publish_fails() -> None:
    api, s3 = FakeLambda(), FakeS3()
    api.fail["publish"] = [denied("PublishLayerVersion")]
    got = RegionPublisher(ACCOUNT, "aws", clock=TickClock()).publish(
        api,
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(),
        s3=lambda: s3,  # type: ignore[arg-type,return-value]
    )

    assert got.error == "PublishLayerVersion in eu-west-1: AccessDeniedException: scripted"
    assert s3.calls[-1] == ("delete", "stage-eu-west-1", KEY)


def test_a_staged_object_that_cannot_be_removed_does_not_fail_the_region() -> None:
    api = FakeLambda()
    s3 = FakeS3(delete_error=denied("DeleteObject"))
    got = RegionPublisher(ACCOUNT, "aws", clock=TickClock()).publish(
        api,
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(),
        s3=lambda: s3,  # type: ignore[arg-type,return-value]
    )

    assert (got.status, got.version, got.error) == ("new", 1, None)


def test_a_deadline_reached_before_the_upload_uploads_nothing() -> None:
    api, s3 = FakeLambda(), FakeS3()
    got = RegionPublisher(ACCOUNT, "aws", clock=TickClock()).publish(
        api,
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(expire_before="PutObject"),
        s3=lambda: s3,  # type: ignore[arg-type,return-value]
    )

    assert got.error == "region_timeout of 30 s exceeded before PutObject"
    assert s3.calls == []


def test_a_big_zip_without_an_s3_client_fails_its_region_with_the_reason() -> None:
    got = RegionPublisher(ACCOUNT, "aws", clock=TickClock()).publish(
        FakeLambda(),  # type: ignore[arg-type]
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(),
    )

    assert got.error == "dist/big.zip: needs an S3 upload and no S3 client was given"
