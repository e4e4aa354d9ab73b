"""One region's publish, call by call: what RegionPublisher asks Lambda, what it leaves
behind and what it reports (the whole RegionResult), against an in-memory Lambda
(tests/helpers/publisher_fakes.py), fast enough to pin every path of publish/publisher.py
that the moto-backed tests reach only slowly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from layer_builder.aws.clients import Statement
from layer_builder.config import Template
from layer_builder.model import RegionResult
from layer_builder.publish.publisher import Deadline, DeadlineExceeded, RegionPublisher, RetryPolicy
from layer_builder.publish.records import LayerRecord
from tests.helpers.clock import Clock
from tests.helpers.publisher_fakes import (
    ACCOUNT,
    CODE,
    MARKER,
    NAME,
    OTHER_CODE,
    REGION,
    SHA,
    FakeLambda,
    FakeS3,
    RecordingDeadline,
    TopRng,
    arn,
    denied,
    make_plan,
    server_error,
    throttled,
)

DESCRIPTION = f"Guard layer 2.75.0 {MARKER}"
PUBLIC = Statement("public")


def publisher(*, dry_run: bool = False, clock: Clock | None = None) -> RegionPublisher:
    return RegionPublisher(
        ACCOUNT,
        "aws",
        dry_run=dry_run,
        sleep=lambda s: None,
        clock=clock or Clock(100.0),
        rng=TopRng(),
    )


def result(status: str, version: int | None, *actions: str, **more: object) -> RegionResult:
    return RegionResult(
        REGION,
        ("x86_64",),
        NAME,
        status,  # type: ignore[arg-type]
        version=version,
        arn=arn(version) if version else None,
        actions=actions,
        **more,  # type: ignore[arg-type]
    )


def test_a_first_publish_sends_the_zip_and_grants_the_permission() -> None:
    api = FakeLambda()
    deadline = RecordingDeadline()
    clock = Clock(100.0, step=1.23456)
    got = publisher(clock=clock).publish(api, make_plan(), deadline=deadline)  # type: ignore[arg-type]

    assert got == result(
        "new", 1, "published 1", "added permission public", seconds=1.235, permission_added=True
    )
    assert api.published == [
        {
            "content": {"ZipFile": api_zip()},
            "description": DESCRIPTION,
            "license_info": "MIT",
            "runtimes": ("python3.12", "python3.13"),
            "architectures": ("x86_64",),
        }
    ]
    # Published from an empty layer and answered: no policy to read, nothing to verify.
    assert api.calls == [("list", None), ("publish",), ("list", None), ("add", 1, "public")]
    assert deadline.checks == [
        "ListLayerVersions",
        "PublishLayerVersion",
        "ListLayerVersions",
        "AddLayerVersionPermission",
    ]


def api_zip() -> bytes:
    return make_plan().zip_bytes or b""


def test_the_lowest_holder_is_reused_and_a_newer_unrecorded_duplicate_deleted() -> None:
    api = FakeLambda()
    api.add(OTHER_CODE, "old build [sha256:000000000000]")
    api.add(CODE, DESCRIPTION)
    api.add(CODE, DESCRIPTION, PUBLIC)
    deadline = RecordingDeadline()
    got = publisher().publish(api, make_plan(), deadline=deadline)  # type: ignore[arg-type]

    assert got == result(
        "reused",
        2,
        "reuse 2",
        "added permission public",
        "deleted duplicate 3",
        permission_added=True,
        deleted=(3,),
    )
    assert api.calls == [
        ("list", None),
        ("get", 2),
        ("policy", 2),
        ("add", 2, "public"),
        ("get", 3),
        ("delete", 3),
    ]
    assert deadline.checks == [
        "ListLayerVersions",
        "GetLayerVersion",
        "GetLayerVersionPolicy",
        "AddLayerVersionPermission",
        "GetLayerVersion",
        "DeleteLayerVersion",
    ]
    assert (sorted(api.versions), api.versions[2].policy) == ([1, 2], [PUBLIC])


def test_a_marker_that_lies_does_not_make_a_version_the_winner() -> None:
    api = FakeLambda()
    api.add(OTHER_CODE, DESCRIPTION)  # carries our marker, holds another zip
    api.add(CODE, DESCRIPTION, PUBLIC)
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("reused", 2, "reuse 2")
    assert api.calls == [("list", None), ("get", 1), ("get", 2), ("policy", 2)]
    assert sorted(api.versions) == [1, 2]


def test_the_version_the_registry_records_is_trusted_without_reading_it_again() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    record = LayerRecord(NAME, CODE, versions={REGION: 1}, protected={REGION: frozenset({1})})
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline(), record=record)  # type: ignore[arg-type]

    assert got == result("reused", 1, "reuse 1")
    assert api.calls == [("list", None), ("policy", 1)]


def test_a_recorded_version_on_an_older_page_is_listed_and_read() -> None:
    api = FakeLambda(page_size=2)
    api.add(CODE, "Guard layer 2.75.0", PUBLIC)  # published before markers existed
    api.add(OTHER_CODE, "newer [sha256:000000000000]")
    api.add(OTHER_CODE, "newest [sha256:111111111111]")
    record = LayerRecord(NAME, CODE, versions={REGION: 1})
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline(), record=record)  # type: ignore[arg-type]

    assert got == result("reused", 1, "reuse 1")
    assert api.calls == [("list", None), ("list", "2"), ("get", 1), ("policy", 1)]


@pytest.mark.parametrize(
    ("record", "second_code", "calls"),
    [
        pytest.param(
            LayerRecord(NAME, protected={REGION: frozenset({2})}),
            CODE,
            [("list", None), ("get", 1), ("policy", 1)],
            id="recorded-by-another-document",
        ),
        pytest.param(
            LayerRecord(NAME, deletes_allowed=False),
            CODE,
            [("list", None), ("get", 1), ("policy", 1)],
            id="registry-partly-unreadable",
        ),
        pytest.param(
            LayerRecord(NAME),
            OTHER_CODE,
            [("list", None), ("get", 1), ("policy", 1), ("get", 2)],
            id="marker-without-the-zip",
        ),
    ],
)
def test_a_newer_version_is_kept_unless_proven_an_unrecorded_duplicate(
    record: LayerRecord, second_code: str, calls: list[tuple[object, ...]]
) -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    api.add(second_code, DESCRIPTION)
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline(), record=record)  # type: ignore[arg-type]

    assert got == result("reused", 1, "reuse 1")
    assert (api.calls, sorted(api.versions)) == (calls, [1, 2])


def test_a_duplicate_recorded_only_in_another_region_is_deleted_here() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    api.add(CODE, DESCRIPTION)
    record = LayerRecord(NAME, protected={"us-west-2": frozenset({2})})
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline(), record=record)  # type: ignore[arg-type]

    assert got == result("reused", 1, "reuse 1", "deleted duplicate 2", deleted=(2,))
    assert sorted(api.versions) == [1]


def test_a_duplicate_that_may_not_be_deleted_is_reported_and_kept() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    api.add(CODE, DESCRIPTION)
    api.fail["delete"] = [denied("DeleteLayerVersion")]
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result(
        "reused", 1, "reuse 1", "could not delete duplicate 2: AccessDeniedException"
    )
    assert sorted(api.versions) == [1, 2]


def test_a_throttled_delete_is_retried_without_repeating_what_was_done() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    api.add(CODE, DESCRIPTION)
    api.fail["delete"] = [throttled("DeleteLayerVersion")]
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("reused", 1, "reuse 1", "deleted duplicate 2", deleted=(2,))
    assert api.calls == [
        ("list", None),
        ("get", 1),
        ("policy", 1),
        ("get", 2),
        ("delete", 2),
        ("get", 2),
        ("delete", 2),
    ]


def test_a_deleted_duplicate_is_not_deleted_again_after_a_retry() -> None:
    # Racers publish the same zip just below and just above ours: the lower one wins, ours
    # (2) and the upper one (3) are deleted; deleting 3 is throttled once. The retry must
    # neither delete ours again nor report anything twice.
    api = FakeLambda()
    api.racer_first = api.racer_after = 1
    api.fail["delete"] = [None, throttled("DeleteLayerVersion")]
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result(
        "reused",
        1,
        "published 2",
        "reuse 1",
        "added permission public",
        "deleted duplicate 2",
        "deleted duplicate 3",
        permission_added=True,
        deleted=(2, 3),
    )
    assert api.calls[6:] == [("delete", 2), ("get", 3), ("delete", 3), ("get", 3), ("delete", 3)]


def test_a_dry_run_on_an_empty_layer_plans_a_publish_and_writes_nothing() -> None:
    api = FakeLambda()
    got = publisher(dry_run=True).publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == RegionResult(REGION, ("x86_64",), NAME, "planned-new", actions=("publish",))
    assert api.calls == [("list", None)]


def test_a_dry_run_plans_the_permission_heal_and_the_delete_without_doing_them() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION)
    api.add(CODE, DESCRIPTION)
    got = publisher(dry_run=True).publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result(
        "planned-heal-permission",
        1,
        "reuse 1",
        "add permission public (*)",
        "delete duplicate 2",
    )
    assert api.calls == [("list", None), ("get", 1), ("policy", 1)]


def test_a_dry_run_retried_after_a_throttled_policy_read_plans_the_reuse_once() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    api.fail["policy"] = [throttled("GetLayerVersionPolicy")]
    got = publisher(dry_run=True).publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("planned-reuse", 1, "reuse 1")


def test_a_dry_run_with_nothing_to_change_plans_a_reuse() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    got = publisher(dry_run=True).publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("planned-reuse", 1, "reuse 1")


def test_stale_statements_of_ours_are_removed_and_others_kept() -> None:
    api = FakeLambda()
    old = Statement("public-111111111111", "111111111111")
    theirs = Statement("theirs", "222222222222")
    api.add(CODE, DESCRIPTION, old, theirs)
    deadline = RecordingDeadline()
    got = publisher().publish(api, make_plan(), deadline=deadline)  # type: ignore[arg-type]

    assert got == result(
        "reused",
        1,
        "reuse 1",
        "removed permission public-111111111111",
        "added permission public",
        permission_added=True,
    )
    assert api.versions[1].policy == [theirs, PUBLIC]
    assert deadline.checks[-2:] == ["RemoveLayerVersionPermission", "AddLayerVersionPermission"]


def test_a_publish_whose_answer_was_lost_is_found_again_and_counts_as_new() -> None:
    api = FakeLambda()
    api.lose_answer["publish"] = [server_error("PublishLayerVersion")]
    slept: list[float] = []
    pub = RegionPublisher(ACCOUNT, "aws", sleep=slept.append, clock=Clock(100.0), rng=TopRng())
    got = pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    lost = "publish answer lost: found version 1 after 0.0 s (settle time 30 s)"
    assert got == result(
        "new", 1, lost, "reuse 1", "added permission public", permission_added=True
    )
    # The retry looks before publishing again; the version found may be a racing run's, so
    # the deletes wait out the settle time (30 one-second waits after the 1 s backoff)
    # before their own last look.
    assert api.calls == [
        ("list", None),
        ("publish",),
        ("list", None),
        ("get", 1),
        ("policy", 1),
        ("add", 1, "public"),
        ("list", None),
    ]
    assert (slept, sorted(api.versions)) == ([1.0] + [1.0] * 30, [1])


def test_a_publish_that_was_definitely_refused_is_retried_without_listing_again() -> None:
    api = FakeLambda()
    api.fail["publish"] = [throttled("PublishLayerVersion")]
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("new", 1, "published 1", "added permission public", permission_added=True)
    assert api.calls == [
        ("list", None),
        ("publish",),
        ("publish",),
        ("list", None),
        ("add", 1, "public"),
    ]


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "not-listed-yet"])
def test_a_racer_below_our_version_wins_and_ours_is_deleted(listed: bool) -> None:
    api = FakeLambda()
    api.racer_first = 1
    api.hide_published = not listed
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result(
        "reused",
        1,
        "published 2",
        "reuse 1",
        "added permission public",
        "deleted duplicate 2",
        permission_added=True,
        deleted=(2,),
    )
    # Our own version is known to hold the zip: deleted without reading it first.
    assert api.calls == [
        ("list", None),
        ("publish",),
        ("list", None),
        ("get", 1),
        ("policy", 1),
        ("add", 1, "public"),
        ("delete", 2),
    ]


def test_our_version_not_listed_yet_is_still_the_one_we_published() -> None:
    api = FakeLambda()
    api.hide_published = True
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("new", 1, "published 1", "added permission public", permission_added=True)
    assert api.calls == [("list", None), ("publish",), ("list", None), ("add", 1, "public")]


def test_a_dry_run_plans_the_delete_of_every_newer_duplicate() -> None:
    api = FakeLambda()
    for _ in range(3):
        api.add(CODE, DESCRIPTION, PUBLIC)
    got = publisher(dry_run=True).publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("planned-reuse", 1, "reuse 1", "delete duplicate 2", "delete duplicate 3")


def test_a_newer_version_with_a_lying_marker_does_not_stop_the_deletes_after_it() -> None:
    api = FakeLambda()
    api.add(CODE, DESCRIPTION, PUBLIC)
    api.add(OTHER_CODE, DESCRIPTION)
    api.add(CODE, DESCRIPTION)
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result("reused", 1, "reuse 1", "deleted duplicate 3", deleted=(3,))
    assert sorted(api.versions) == [1, 2]


def test_a_duplicate_that_may_not_be_deleted_does_not_stop_the_deletes_after_it() -> None:
    api = FakeLambda()
    for _ in range(3):
        api.add(CODE, DESCRIPTION, PUBLIC)
    api.fail["delete"] = [denied("DeleteLayerVersion")]
    got = publisher().publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result(
        "reused",
        1,
        "reuse 1",
        "could not delete duplicate 2: AccessDeniedException",
        "deleted duplicate 3",
        deleted=(3,),
    )
    assert sorted(api.versions) == [1, 2]


def test_stale_statements_under_the_configured_statement_id_are_removed() -> None:
    api = FakeLambda()
    stale = Statement("share-111111111111", "111111111111")
    api.add(CODE, DESCRIPTION, stale)
    plan = make_plan(statements=(Statement("share"),), statement_id="share")
    got = publisher().publish(api, plan, deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert got == result(
        "reused",
        1,
        "reuse 1",
        "removed permission share-111111111111",
        "added permission share",
        permission_added=True,
    )
    assert api.versions[1].policy == [Statement("share")]


# ------------------------------------------------------------------------------------------------
# The publisher's retries, deadlines and S3 staging, word for word: the backoff bounds, when
# a region gives up and the exact error it reports, what a deadline refuses to start, and
# the staged object's life (uploaded, published from, removed even when publishing fails).
# In-memory Lambda and S3 from tests/helpers/publisher_fakes.py; time is injected, never waited.


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
    pub = RegionPublisher(ACCOUNT, "aws", sleep=slept.append, clock=Clock(100.0), rng=TopRng())
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
    pub = RegionPublisher(ACCOUNT, "aws", sleep=lambda s: None, clock=Clock(100.0), rng=TopRng())
    with caplog.at_level("INFO", logger="layer_builder.publish.publisher"):
        pub.publish(api, make_plan(), deadline=RecordingDeadline())  # type: ignore[arg-type]

    assert caplog.messages[0] == f"eu-west-1 {NAME}: {LIST_ERROR}; retry 2 in 1.00 s"


def test_an_error_that_cannot_pass_on_retry_fails_the_region_at_once() -> None:
    api = FakeLambda()
    api.fail["list"] = [denied("ListLayerVersions")]
    slept: list[float] = []
    pub = RegionPublisher(ACCOUNT, "aws", sleep=slept.append, clock=Clock(100.0), rng=TopRng())
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
        clock=Clock(100.0),
        rng=TopRng(),
    )
    deadline = Deadline(seconds, clock=lambda: 0.0)
    got = pub.publish(api, make_plan(), deadline=deadline)  # type: ignore[arg-type]

    assert (waits, got.region, got.error) == (slept, REGION, error)
    assert got.status == ("failed" if error else "planned-new")


def test_a_deadline_reached_stops_the_region_before_its_next_call() -> None:
    api = FakeLambda()
    deadline = RecordingDeadline(seconds=2.5, expire_before="PublishLayerVersion")
    got = RegionPublisher(ACCOUNT, "aws", clock=Clock(100.0)).publish(
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
    got = RegionPublisher(ACCOUNT, "aws", clock=Clock(100.0)).publish(
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
    got = RegionPublisher(ACCOUNT, "aws", clock=Clock(100.0)).publish(
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
    got = RegionPublisher(ACCOUNT, "aws", clock=Clock(100.0)).publish(
        api,
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(),
        s3=lambda: s3,  # type: ignore[arg-type,return-value]
    )

    assert (got.status, got.version, got.error) == ("new", 1, None)


def test_a_deadline_reached_before_the_upload_uploads_nothing() -> None:
    api, s3 = FakeLambda(), FakeS3()
    got = RegionPublisher(ACCOUNT, "aws", clock=Clock(100.0)).publish(
        api,
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(expire_before="PutObject"),
        s3=lambda: s3,  # type: ignore[arg-type,return-value]
    )

    assert got.error == "region_timeout of 30 s exceeded before PutObject"
    assert s3.calls == []


def test_a_big_zip_without_an_s3_client_fails_its_region_with_the_reason() -> None:
    got = RegionPublisher(ACCOUNT, "aws", clock=Clock(100.0)).publish(
        FakeLambda(),  # type: ignore[arg-type]
        staged_plan(),  # type: ignore[arg-type]
        deadline=RecordingDeadline(),
    )

    assert got.error == "dist/big.zip: needs an S3 upload and no S3 client was given"
