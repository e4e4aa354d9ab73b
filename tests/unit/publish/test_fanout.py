"""The fan-out as a caller sees it, with the region publisher replaced by a scripted stand-in
and an injected clock (time passes only when the code reads it; never the wall clock): the
socket timeouts each region's clients get, what every task is handed, how many workers run,
the order and shape of the results, interrupts, a late answer from a region already given
up on, and a failing progress callback."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.aws.clients import Aws, RetrySettings, Timeouts
from layer_builder.errors import ArgumentError
from layer_builder.model import BuildManifest, RegionResult, ReleaseVersion
from layer_builder.publish import plan_layers
from layer_builder.publish.fanout import socket_timeouts
from layer_builder.publish.plan import LayerPlan
from layer_builder.publish.publisher import RegionPublisher
from layer_builder.publish.records import LayerRecord
from tests.helpers.clock import Clock
from tests.helpers.layers import ConfigFactory
from tests.helpers.publisher_fakes import publish_layers

V = ReleaseVersion.parse("2.75.0")
MakeLayers = Callable[..., list[tuple[Path, BuildManifest]]]
ACCOUNT = "123456789012"
# Caps on real waiting, only so that a broken fan-out fails the test instead of hanging it.
CAP = 5.0


class FakeApi:
    def __init__(self, region: str) -> None:
        self.region = region


class FakeAws:
    """What the fan-out uses of Aws: its timeouts and retry settings, and the per-region
    Lambda and S3 handles (recorded with the timeouts they were asked for)."""

    def __init__(self, timeouts: Timeouts | None = None, attempts: int = 3) -> None:
        self.timeouts = timeouts or Timeouts(connect=10.0, read=60.0)
        self.retries = RetrySettings("standard", attempts)
        self.calls: list[tuple[str, str, Timeouts | None]] = []

    def lambda_api(self, region: str, timeouts: Timeouts | None = None) -> FakeApi:
        self.calls.append(("lambda", region, timeouts))
        return FakeApi(region)

    def s3_api(self, region: str, timeouts: Timeouts | None = None) -> str:
        self.calls.append(("s3", region, timeouts))
        return f"s3 in {region}"


Script = Callable[..., RegionResult]


def _new(api: Any, plan: Any) -> RegionResult:
    return RegionResult(api.region, plan.architectures, plan.layer_name, "new", version=7)


def _script(monkeypatch: pytest.MonkeyPatch, script: Script) -> None:
    def publish(self: RegionPublisher, api: Any, plan: Any, **kwargs: Any) -> RegionResult:
        return script(self, api, plan, **kwargs)

    def survey(self: RegionPublisher, api: Any, plan: Any, **kwargs: Any) -> tuple[Any, None]:
        return (), None  # pass 1 reads an empty history: these guards are about pass 2

    monkeypatch.setattr(RegionPublisher, "publish", publish)
    monkeypatch.setattr(RegionPublisher, "survey", survey)


def _once() -> Callable[[RegionResult], None]:
    """A progress callback that refuses a second report of the same task: a fan-out that
    kept reporting one would otherwise loop until it ran out of memory."""
    seen: set[tuple[str, str]] = set()

    def progress(result: RegionResult) -> None:
        key = (result.region, result.layer_name)
        if key in seen:
            raise AssertionError(f"reported twice: {key}")
        seen.add(key)

    return progress


def _run(cfg: Any, manifests: Any, regions: list[str], **kwargs: Any) -> Any:
    kwargs.setdefault("aws", FakeAws())
    kwargs.setdefault("clock", Clock(start=0.01, step=0.01))
    kwargs.setdefault("progress", _once())
    return publish_layers(cfg, V, manifests, regions, account=ACCOUNT, partition="aws", **kwargs)


# --------------------------------------------------------------------------- socket timeouts


@pytest.mark.parametrize(
    ("connect", "read", "attempts", "budget", "expected"),
    [
        (4.0, 60.0, 3, 30.0, Timeouts(connect=4.0, read=10.0)),  # the budget split 3 ways
        (60.0, 5.0, 3, 30.0, Timeouts(connect=10.0, read=5.0)),
        (60.0, 60.0, 1, 30.0, Timeouts(connect=30.0, read=30.0)),  # one attempt: all of it
        (60.0, 60.0, 0, 30.0, Timeouts(connect=30.0, read=30.0)),  # no attempts: as one
        (60.0, 60.0, 3, 0.03, Timeouts(connect=0.05, read=0.05)),  # a floor of 0.05 s
        (0.02, 0.03, 3, 0.03, Timeouts(connect=0.02, read=0.03)),  # the floor is no minimum
    ],
)
def test_socket_timeouts_fit_botocores_attempts_in_the_region_budget(
    connect: float, read: float, attempts: int, budget: float, expected: Timeouts
) -> None:
    aws = FakeAws(Timeouts(connect=connect, read=read), attempts)
    assert socket_timeouts(aws, budget) == expected  # type: ignore[arg-type]


def test_each_region_gets_its_clients_once_with_the_split_timeouts(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    _script(monkeypatch, lambda self, api, plan, s3, **_: (s3(), _new(api, plan))[1])
    aws = FakeAws(Timeouts(connect=4.0, read=60.0), attempts=3)
    _run(cfg, manifests, ["us-west-2", "eu-west-1", "us-west-2"], aws=aws, region_timeout=30)
    split = Timeouts(connect=4.0, read=10.0)
    lambdas = [c for c in aws.calls if c[0] == "lambda"]
    s3s = sorted(c for c in aws.calls if c[0] == "s3")
    assert (lambdas, s3s) == (
        [("lambda", "eu-west-1", split), ("lambda", "us-west-2", split)],
        [("s3", "eu-west-1", split), ("s3", "us-west-2", split)],
    )


# --------------------------------------------------------------------------- arguments


def test_no_regions_is_an_argument_error(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    with pytest.raises(ArgumentError, match=r"^no regions to publish to$"):
        _run(cfg, make_layers(cfg, V), [])


@pytest.mark.parametrize(("timeout", "attempts"), [(0, 1), (-1, 1), (1, 0)])
def test_a_zero_budget_or_no_attempts_is_an_argument_error(
    make_config: ConfigFactory, make_layers: MakeLayers, timeout: float, attempts: int
) -> None:
    cfg = make_config(architectures="[x86_64]")
    with pytest.raises(ArgumentError, match=r"^region_timeout must be > 0 and attempts >= 1$"):
        _run(cfg, make_layers(cfg, V), ["eu-west-1"], region_timeout=timeout, attempts=attempts)


@pytest.mark.parametrize(
    ("regions", "refused"),
    [(["eu-west-1", "us-west-2"], True), (["eu-west-1", "eu-west-1"], False)],
)
def test_a_staged_zip_is_checked_against_the_distinct_regions(
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    monkeypatch: pytest.MonkeyPatch,
    regions: list[str],
    refused: bool,
) -> None:
    # One bucket for every region cannot serve two regions; a region named twice is one.
    cfg = make_config(architectures="[x86_64]", publish='s3_bucket: "one-bucket"\n')
    manifests = make_layers(cfg, V)
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", 1)
    _seen_by_publisher(monkeypatch)
    if refused:
        with pytest.raises(ArgumentError, match=r"renders to the same bucket for every region"):
            _run(cfg, manifests, regions)
    else:
        assert [r.status for r in _run(cfg, manifests, regions).results] == ["new"]


def _seen_by_publisher(
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[RegionPublisher, str, Any, Any]]:
    """Records (publisher, region, deadline, record) for each task, answering "new"."""
    seen: list[tuple[RegionPublisher, str, Any, Any]] = []
    lock = threading.Lock()

    def script(self: RegionPublisher, api: Any, plan: Any, *, deadline: Any, record: Any,
               **_: Any) -> RegionResult:  # fmt: skip
        with lock:
            seen.append((self, api.region, deadline, record))
        return _new(api, plan)

    _script(monkeypatch, script)
    return seen


def test_the_configured_budget_and_attempts_reach_every_region(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]", publish="region_timeout: 45\nattempts: 3\n")
    seen = _seen_by_publisher(monkeypatch)
    _run(cfg, make_layers(cfg, V), ["eu-west-1"])
    ((publisher, _, deadline, _),) = seen
    assert (deadline.seconds, publisher.retry.attempts) == (45.0, 3)


def test_overridden_budget_and_attempts_reach_every_region(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]", publish="region_timeout: 45\nattempts: 3\n")
    seen = _seen_by_publisher(monkeypatch)
    _run(cfg, make_layers(cfg, V), ["eu-west-1"], region_timeout=12, attempts=1)
    ((publisher, _, deadline, _),) = seen
    assert (deadline.seconds, publisher.retry.attempts) == (12.0, 1)


def test_the_publisher_gets_the_callers_account_and_tools(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    seen = _seen_by_publisher(monkeypatch)
    clock, rng = Clock(start=0.01, step=0.01), random.Random(5)
    sleeps: list[float] = []
    _run(cfg, make_layers(cfg, V), ["eu-west-1"], dry_run=True, clock=clock, rng=rng,
         sleep=sleeps.append)  # fmt: skip
    ((publisher, _, deadline, _),) = seen
    got = (publisher.account, publisher.partition, publisher.dry_run, publisher.clock,
           publisher.rng, publisher.sleep, deadline.cancelled.is_set())  # fmt: skip
    assert got == (ACCOUNT, "aws", True, clock, rng, sleeps.append, False)


def test_a_dry_run_result_says_so(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    _seen_by_publisher(monkeypatch)
    assert _run(cfg, make_layers(cfg, V), ["eu-west-1"], dry_run=True).dry_run is True


def test_without_an_rng_the_publisher_gets_its_own(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    seen = _seen_by_publisher(monkeypatch)
    _run(cfg, make_layers(cfg, V), ["eu-west-1"])
    ((publisher, _, _, _),) = seen
    assert type(publisher.rng) is random.Random


def test_each_task_gets_the_registry_record_of_its_layer(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64, arm64]")
    manifests = make_layers(cfg, V)
    names = sorted(m.layer_name for _, m in manifests)
    record = LayerRecord(names[0], versions={"eu-west-1": 3})
    seen = _seen_by_publisher(monkeypatch)
    _run(cfg, manifests, ["eu-west-1"], records={names[0]: record})
    by_name = {r.layer_name if r else None: r for _, _, _, r in seen}
    assert by_name == {names[0]: record, None: None}


def test_results_are_sorted_by_region_and_layer_with_the_callers_account(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64, arm64]")
    manifests = make_layers(cfg, V)
    names = sorted(m.layer_name for _, m in manifests)
    _seen_by_publisher(monkeypatch)
    result = _run(cfg, manifests, ["us-west-2", "eu-west-1", "us-west-2"], max_workers=3)
    got = [(r.region, r.layer_name, r.status) for r in result.results]
    assert (result.account, result.partition, result.dry_run, got) == (
        ACCOUNT,
        "aws",
        False,
        [(region, name, "new") for region in ("eu-west-1", "us-west-2") for name in names],
    )


# --------------------------------------------------------------------------- workers


@pytest.mark.parametrize(
    ("configured", "given", "regions", "expected"),
    [
        (64, 2, 3, 2),  # the caller's number
        (2, None, 3, 2),  # the configured number
        (64, 50, 3, 3),  # never more than there are tasks
        (64, 1, 3, 1),
    ],
)
def test_the_number_of_worker_threads(
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    monkeypatch: pytest.MonkeyPatch,
    configured: int,
    given: int | None,
    regions: int,
    expected: int,
) -> None:
    cfg = make_config(architectures="[x86_64]", publish=f"max_workers: {configured}\n")
    manifests = make_layers(cfg, V)
    _seen_by_publisher(monkeypatch)
    workers: list[threading.Thread] = []

    class Counted(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.name == "publish":
                workers.append(self)

    monkeypatch.setattr(threading, "Thread", Counted)
    names = ["eu-west-1", "eu-west-2", "eu-west-3", "us-east-1"][:regions]
    _run(cfg, manifests, names, max_workers=given)
    # Two passes (the survey, then the publish), each with its own workers.
    assert (len(workers), all(w.daemon for w in workers)) == (2 * expected, True)


# --------------------------------------------------------------------------- tasks


def test_start_and_progress_callbacks_see_every_task(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    name = manifests[0][1].layer_name
    _seen_by_publisher(monkeypatch)
    started: list[tuple[str, str]] = []
    done: list[tuple[str, str, str]] = []
    _run(cfg, manifests, ["eu-west-1", "us-west-2"], on_start=lambda *k: started.append(k),
         progress=lambda r: done.append((r.region, r.layer_name, r.status)))  # fmt: skip
    assert (sorted(started), sorted(done)) == (
        [("eu-west-1", name), ("us-west-2", name)],
        [("eu-west-1", name, "new"), ("us-west-2", name, "new")],
    )


def test_an_unexpected_exception_fails_that_task_only(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)

    def script(self: RegionPublisher, api: Any, plan: Any, **_: Any) -> RegionResult:
        if api.region == "eu-west-1":
            raise KeyError("Version")
        return _new(api, plan)

    _script(monkeypatch, script)
    # A short budget, so that a task whose failure is lost is given up on soon.
    result = _run(cfg, manifests, ["eu-west-1", "us-west-2"], region_timeout=1)
    got = [(r.region, r.status, r.error, r.seconds, r.architectures) for r in result.results]
    assert got == [
        ("eu-west-1", "failed", "unexpected error: KeyError('Version')", 0.0, ("x86_64",)),
        ("us-west-2", "new", None, 0.0, ("x86_64",)),
    ]


def test_a_region_given_up_on_reports_the_budget_and_its_late_answer_is_dropped(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    clock = Clock(start=0.01, step=0.01)

    def script(self: RegionPublisher, api: Any, plan: Any, *, deadline: Any,
               **_: Any) -> RegionResult:  # fmt: skip
        if api.region == "eu-west-1":
            deadline.cancelled.wait(CAP)  # stuck in a call; answers once told to stop: too late
        return _new(api, plan)

    def on_start(region: str, name: str) -> None:
        if region == "eu-west-1":
            clock.advance(1000.0)  # its budget runs out while the call hangs

    _script(monkeypatch, script)
    # One worker: the second region starts only after the first one's late answer is queued.
    result = _run(cfg, manifests, ["eu-west-1", "us-west-2"], clock=clock, region_timeout=100,
                  max_workers=1, on_start=on_start)  # fmt: skip
    got = [(r.region, r.status, r.error, r.seconds) for r in result.results]
    assert got == [
        ("eu-west-1", "failed", "region_timeout of 100 s exceeded (no answer from the region)",
         100.0),
        ("us-west-2", "new", None, 0.0),
    ]  # fmt: skip


class CallerClock:
    """Workers always read ``worker``; the fan-out's own loop (the calling thread) reads
    ``values`` in turn once they are set, then keeps the last one: exact readings, so a
    boundary can be hit on the dot."""

    def __init__(self, worker: float = 0.0) -> None:
        self.caller = threading.get_ident()
        self.worker = worker
        self.now = worker
        self.values: list[float] = []

    def __call__(self) -> float:
        if threading.get_ident() != self.caller:
            return self.worker
        if self.values:
            self.now = self.values.pop(0)
        return self.now


def _stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call hangs until the fan-out tells it to stop (or CAP passes: then "new")."""

    def script(self: RegionPublisher, api: Any, plan: Any, *, deadline: Any,
               **_: Any) -> RegionResult:  # fmt: skip
        deadline.cancelled.wait(CAP)
        return _new(api, plan)

    _script(monkeypatch, script)


def test_a_region_is_given_up_on_exactly_at_its_budget_plus_the_grace(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    _stuck(monkeypatch)
    clock = CallerClock()
    # Started at 0.0; the loop's next reading is 0.2 s of budget plus the 0.05 s grace.
    result = _run(cfg, make_layers(cfg, V), ["eu-west-1"], clock=clock, region_timeout=0.2,
                  on_start=lambda *_: clock.values.append(0.2 + 0.05))  # fmt: skip
    assert [(r.status, r.error) for r in result.results] == [
        ("failed", "region_timeout of 0.2 s exceeded (no answer from the region)")
    ]


def test_an_interrupt_ends_exactly_when_its_grace_runs_out(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    _stuck(monkeypatch)
    clock = CallerClock()
    interrupt = threading.Event()

    def on_start(*_: str) -> None:
        interrupt.set()  # Ctrl-C at 0.0 while the call hangs; the grace ends at 0.1
        clock.values.extend([0.0, 0.1])

    result = _run(cfg, make_layers(cfg, V), ["eu-west-1"], clock=clock, region_timeout=100,
                  interrupt=interrupt, interrupt_grace=0.1, on_start=on_start)  # fmt: skip
    assert [(r.status, r.error) for r in result.results] == [("failed", "interrupted")]


def test_a_hung_region_is_given_up_on_with_a_monotonic_clock_far_from_zero(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # time.monotonic() reads like this after days of uptime: the loop must wait for the
    # time left (a fraction of a second here), not for an absolute reading.
    cfg = make_config(architectures="[x86_64]")
    _stuck(monkeypatch)
    clock = Clock(start=0.02, step=0.02)
    clock.now = 500_000.0
    result = _run(cfg, make_layers(cfg, V), ["eu-west-1"], clock=clock, region_timeout=0.1)
    assert [(r.status, r.error) for r in result.results] == [
        ("failed", "region_timeout of 0.1 s exceeded (no answer from the region)")
    ]


def test_an_interrupt_grace_ends_with_a_monotonic_clock_far_from_zero(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    _stuck(monkeypatch)
    clock = Clock(start=0.02, step=0.02)
    clock.now = 500_000.0
    interrupt = threading.Event()
    result = _run(cfg, make_layers(cfg, V), ["eu-west-1"], clock=clock, region_timeout=100,
                  interrupt=interrupt, interrupt_grace=0.1,
                  on_start=lambda *_: interrupt.set())  # fmt: skip
    assert [(r.status, r.error) for r in result.results] == [("failed", "interrupted")]


# --------------------------------------------------------------------------- interrupts


def test_an_interrupt_before_anything_starts_publishes_nothing(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    seen = _seen_by_publisher(monkeypatch)
    interrupt = threading.Event()
    interrupt.set()
    result = _run(cfg, make_layers(cfg, V), ["eu-west-1", "us-west-2"], interrupt=interrupt)
    got = [(r.region, r.status, r.error) for r in result.results]
    assert (seen, got) == (
        [],
        [("eu-west-1", "failed", "interrupted before it started"),
         ("us-west-2", "failed", "interrupted before it started")],
    )  # fmt: skip


def test_an_interrupt_before_anything_starts_does_not_wait_out_the_grace(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every queued task is reported as not started as soon as a worker reaches it; nothing
    # is left for the grace to run out on (read on the injected clock).
    cfg = make_config(architectures="[x86_64]")
    _seen_by_publisher(monkeypatch)
    interrupt = threading.Event()
    interrupt.set()
    clock = Clock(start=0.01, step=0.01)
    regions = ["eu-west-1", "eu-west-2", "eu-west-3", "us-west-2"]
    result = _run(cfg, make_layers(cfg, V), regions, interrupt=interrupt, interrupt_grace=0.3,
                  max_workers=1, clock=clock)  # fmt: skip
    assert (len(result.results), clock.now < 0.3) == (4, True)


def test_an_interrupt_stops_a_stuck_call_after_the_grace_and_names_what_never_started(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    interrupt = threading.Event()
    cancels: list[threading.Event] = []

    def script(self: RegionPublisher, api: Any, plan: Any, *, deadline: Any,
               **_: Any) -> RegionResult:  # fmt: skip
        cancels.append(deadline.cancelled)
        interrupt.set()  # Ctrl-C while this call hangs
        deadline.cancelled.wait(CAP)
        return _new(api, plan)

    _script(monkeypatch, script)
    reported: list[str] = []
    result = _run(cfg, make_layers(cfg, V), ["eu-west-1", "us-west-2"], max_workers=1,
                  interrupt=interrupt, interrupt_grace=0.05, region_timeout=100,
                  progress=lambda r: reported.append(r.region))  # fmt: skip
    got = [(r.region, r.status, r.error, r.seconds) for r in result.results]
    assert (got, reported, [c.is_set() for c in cancels]) == (
        [("eu-west-1", "failed", "interrupted", 0.0),
         ("us-west-2", "failed", "interrupted before it started", 0.0)],
        ["eu-west-1", "us-west-2"],
        [True],
    )  # fmt: skip


def test_a_failing_progress_callback_stops_the_release(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(architectures="[x86_64]")
    interrupt = threading.Event()
    slow_started = threading.Event()
    slow_cancel: list[threading.Event] = []

    def script(self: RegionPublisher, api: Any, plan: Any, *, deadline: Any,
               **_: Any) -> RegionResult:  # fmt: skip
        if api.region == "us-west-2":
            slow_cancel.append(deadline.cancelled)
            slow_started.set()
            deadline.cancelled.wait(CAP)
        else:
            slow_started.wait(CAP)
        return _new(api, plan)

    _script(monkeypatch, script)

    def progress(result: RegionResult) -> None:
        raise RuntimeError(f"terminal gone at {result.region}")

    with pytest.raises(RuntimeError, match=r"^terminal gone at eu-west-1$"):
        _run(cfg, make_layers(cfg, V), ["eu-west-1", "us-west-2"], max_workers=2,
             interrupt=interrupt, region_timeout=100, progress=progress)  # fmt: skip
    # The release stops: nothing more starts and the region still running is told to stop.
    assert (interrupt.is_set(), [c.is_set() for c in slow_cancel]) == (True, [True])


def test_a_region_whose_budget_ends_within_an_interrupts_grace_is_reported_timed_out(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C with 60 s of grace; the hung region's budget ends 0.1 s later: the loop wakes
    # for that deadline rather than sleeping through to the end of the grace.
    cfg = make_config(architectures="[x86_64]")
    _stuck(monkeypatch)
    clock = Clock(start=0.02, step=0.02)
    clock.now = 500_000.0
    interrupt = threading.Event()
    result = _run(cfg, make_layers(cfg, V), ["eu-west-1"], clock=clock, region_timeout=0.1,
                  interrupt=interrupt, interrupt_grace=60,
                  on_start=lambda *_: interrupt.set())  # fmt: skip
    assert [(r.status, r.error) for r in result.results] == [
        ("failed", "region_timeout of 0.1 s exceeded (no answer from the region)")
    ]


def test_a_task_that_fails_before_it_starts_still_ends_the_run(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug before the first event (here: building the task's deadline) fails that task
    # only; before, its thread died silently and the run waited for it for ever.
    from layer_builder.publish import fanout

    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    real = fanout.Deadline
    calls: list[int] = []

    def first_one_breaks(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # the publish pass's first (the survey made two)
            raise RuntimeError("broken deadline")
        return real(*args)

    monkeypatch.setattr(fanout, "Deadline", first_one_breaks)
    _script(monkeypatch, lambda self, api, plan, **_: _new(api, plan))
    out: list[Any] = []
    runner = threading.Thread(
        target=lambda: out.append(_run(cfg, manifests, ["eu-west-1", "us-west-2"], max_workers=1)),
        daemon=True,
    )
    runner.start()
    runner.join(CAP)
    assert not runner.is_alive(), "the run never ended"
    got = [(r.region, r.status, r.error) for r in out[0].results]
    assert got == [
        ("eu-west-1", "failed", "unexpected error: RuntimeError('broken deadline')"),
        ("us-west-2", "new", None),
    ]


# ------------------------------------------------------------------------------------------------
# Publishing guards at their edges: the 50 MB direct-upload threshold (a zip of exactly the
# limit goes direct) and the fan-out giving up on a hung region at its deadline, measured on
# the injected clock.


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


HUNG = "eu-west-3"


def test_the_fan_out_gives_up_on_a_hung_region_at_its_deadline(
    no_aws_env: None,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    clock = Clock(start=0.02, step=0.02)
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
