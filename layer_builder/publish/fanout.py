"""Publish every layer to every region, concurrently and with a deadline per region.

One task per (region, layer name) runs on a bounded set of worker threads; each region
gets its own reused Lambda clients. The calling thread only waits: it hands each finished
result to ``progress`` (so a terminal renderer never runs on a worker thread), and gives
up on a task that passes its ``region_timeout`` even if its thread is stuck in a call, so
one hung region cannot hang the release. The workers are daemon threads, never joined:
the process exits as soon as the result is printed, even with a thread stuck in a call.

Two passes: first every region's layer history is listed (the survey, reads only), and a
version anywhere that claims this release with another zip is refused (ArtifactError, exit
2) before any region writes; then every region publishes, starting from its survey.

``interrupt`` (set by the CLI's SIGINT/SIGTERM handler) stops everything: no task starts,
and no running task starts another call (every step checks it); the calls in flight get
``interrupt_grace`` seconds to finish, and the rest are reported as not done.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from layer_builder.aws.clients import Aws, LambdaApi, LayerVersionRef, Timeouts
from layer_builder.config import LayerConfig
from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.model import BuildManifest, PublishResult, RegionResult, ReleaseVersion
from layer_builder.publish.plan import LayerPlan, plan_layers
from layer_builder.publish.publisher import (
    SETTLE_CAP,
    Deadline,
    RegionPublisher,
    RetryPolicy,
)
from layer_builder.publish.reconcile import conflicts
from layer_builder.publish.records import LayerRecord
from layer_builder.publish.target import PublishOptions, PublishTarget

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (region, layer name)
Events = queue.Queue[tuple[str, Key, float, RegionResult | None]]
#: Seconds the tasks running when an interrupt arrives get to finish their calls.
INTERRUPT_GRACE = 5.0
NOT_STARTED = "interrupted before it started"
ProgressFn = Callable[[RegionResult], None]
StartFn = Callable[[str, str], None]

#: How long past its deadline a task may take to report by itself before it is given up on.
_GRACE = 0.05
_MIN_SOCKET_TIMEOUT = 0.05


def socket_timeouts(aws: Aws, region_timeout: float) -> Timeouts:
    """Connect/read timeouts so botocore's attempts of one call fit in the region's budget."""
    per_try = max(_MIN_SOCKET_TIMEOUT, region_timeout / max(1, aws.retries.total_max_attempts))
    return Timeouts(
        connect=min(aws.timeouts.connect, per_try), read=min(aws.timeouts.read, per_try)
    )


@dataclass(frozen=True)
class Seams:
    """What tests and benchmarks replace: AWS, the clock, sleeping, randomness, and how
    long the calls in flight get after an interrupt."""

    aws: Aws | None = None  # None: a new Aws() (real boto3 clients)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random | None = None
    interrupt_grace: float = INTERRUPT_GRACE


def plan_publish(
    cfg: LayerConfig,
    version: ReleaseVersion,
    manifests: Sequence[tuple[Path, BuildManifest]],
    target: PublishTarget,
) -> list[LayerPlan]:
    """The plans :func:`publish_all` takes: ArgumentError without regions; each zip verified
    against its manifest (ArtifactError, nothing published)."""
    if not target.regions:
        raise ArgumentError("no regions to publish to")
    return plan_layers(cfg, version, manifests, sorted(set(target.regions)))


def publish_all(
    plans: Sequence[LayerPlan],
    target: PublishTarget,
    options: PublishOptions,
    seams: Seams | None = None,
    *,
    dry_run: bool = False,
    records: Mapping[str, LayerRecord] | None = None,
    progress: ProgressFn | None = None,
    on_start: StartFn | None = None,
    interrupt: threading.Event | None = None,
) -> PublishResult:
    """Publish (or with ``dry_run`` only plan) every planned zip in every region of ``target``.

    ``plans`` come from :func:`~layer_builder.publish.zips.plan_layers` (which verified each
    zip against its manifest); ``options`` from :meth:`PublishOptions.resolve`. Regions
    that fail are returned as failed results, never raised: the caller decides (exit 3
    naming them). Results are sorted by (region, layer name). ``records`` (by layer name)
    say what the registry holds for this release
    (:func:`~layer_builder.publish.plan.registry_records`).
    """
    regions = sorted(set(target.regions))
    seams = seams or Seams()
    aws = seams.aws or Aws()
    timeout, sleep = options.region_timeout, seams.sleep
    interrupt = interrupt or threading.Event()
    timeouts = socket_timeouts(aws, timeout)
    publisher = RegionPublisher(
        account=target.account,
        partition=target.partition,
        dry_run=dry_run,
        retry=RetryPolicy(attempts=options.attempts),
        settle=settle_seconds(timeouts),
        # Waits end at an interrupt: a region in a backoff or settling stops at once.
        sleep=(lambda seconds: _wait(interrupt, seconds)) if sleep is time.sleep else sleep,
        clock=seams.clock,
        rng=seams.rng or random.Random(),
    )
    apis = {region: aws.lambda_api(region, timeouts) for region in regions}
    tasks = [(region, plan) for region in regions for plan in plans]
    workers = max(1, min(options.max_workers, len(tasks)))
    log.info(
        "%s %d layer(s) in %d region(s) with %d workers",
        "planning" if dry_run else "publishing",
        len(plans),
        len(regions),
        workers,
    )
    runner = _FanOut(
        aws, publisher, apis, timeouts, timeout, seams.clock,
        records=dict(records or {}), interrupt=interrupt, interrupt_grace=seams.interrupt_grace,
    )  # fmt: skip
    # Pass 1, reads only: every region's history, and the release's conflicts in any of them.
    runner.surveying = True
    runner.run(tasks, workers, None, None)
    # A snapshot: a survey thread stuck past its deadline must not add an unchecked listing.
    runner.surveyed = dict(runner.listings)
    _refuse_conflicts(plans, runner.surveyed)
    if interrupt.is_set():
        results = [_failed((r, p.layer_name), p, NOT_STARTED) for r, p in tasks]
    else:
        runner.surveying = False
        results = runner.run(tasks, workers, progress, on_start)
    ordered = tuple(sorted(results, key=lambda r: (r.region, r.layer_name)))
    return PublishResult(
        account=target.account, partition=target.partition, results=ordered, dry_run=dry_run
    )


def _wait(event: threading.Event, seconds: float) -> None:
    event.wait(seconds)


def settle_seconds(timeouts: Timeouts) -> float:
    """How long a region looks for a version whose PublishLayerVersion answer was lost.

    The client waited ``timeouts.read`` for the answer; a commit later than as long again
    after that is not waited for (the next run of the layer deletes it). At most
    :data:`SETTLE_CAP`, so a request that never reached Lambda costs a bounded wait.
    """
    return min(SETTLE_CAP, max(1.0, timeouts.read))


def _refuse_conflicts(
    plans: Sequence[LayerPlan], listings: Mapping[Key, tuple[LayerVersionRef, ...]]
) -> None:
    """ArtifactError naming both digests and where, when AWS holds this release with
    another zip (whatever the registry says): before any region writes."""
    for plan in plans:
        found: dict[str, list[str]] = {}
        for (region, name), listing in sorted(listings.items()):
            if name != plan.layer_name:
                continue
            for ref, marker in conflicts(listing, plan):
                found.setdefault(marker.sha, []).append(f"{region} version {ref.version}")
        if found:
            where = "; ".join(f"sha256 {sha} in {', '.join(at)}" for sha, at in found.items())
            raise ArtifactError(
                f"{plan.layer_name} {plan.release.text} already exists in AWS with other "
                f"content ({where}), but {plan.zip_path} has sha256 {plan.sha256}: a released "
                "version can only be finished with the same zip. Rebuild it identically (same "
                "SOURCE_DATE_EPOCH and dependency versions; compare the build manifests) or "
                "release a new version. Nothing was published."
            )


class _FanOut:
    """The pool, the event queue and the deadline bookkeeping of one publish_all call."""

    def __init__(
        self,
        aws: Aws,
        publisher: RegionPublisher,
        apis: dict[str, LambdaApi],
        timeouts: Timeouts,
        timeout: float,
        clock: Callable[[], float],
        *,
        records: dict[str, LayerRecord],
        interrupt: threading.Event,
        interrupt_grace: float,
    ) -> None:
        self.aws = aws
        self.publisher = publisher
        self.apis = apis
        self.timeouts = timeouts
        self.timeout = timeout
        self.clock = clock
        self.cancels: dict[Key, threading.Event] = {}
        self.records = records
        self.interrupt = interrupt
        self.interrupt_grace = interrupt_grace
        self.surveying = False  # pass 1: list only, into ``listings``
        self.listings: dict[Key, tuple[LayerVersionRef, ...]] = {}
        self.surveyed: dict[Key, tuple[LayerVersionRef, ...]] = {}  # checked: pass 2 reads

    def _worker(self, work: queue.Queue[tuple[Key, LayerPlan] | None], events: Events,
                cancels: dict[Key, threading.Event], surveying: bool) -> None:  # fmt: skip
        # The pass's own queue and flags: a thread of pass 1 stuck past its deadline must
        # not report into pass 2.
        while (item := work.get()) is not None:
            key, plan = item
            if self.interrupt.is_set():
                events.put(("skipped", key, self.clock(), None))
                continue
            self._task(key, plan, events, cancels[key], surveying)

    def _task(self, key: Key, plan: LayerPlan, events: Events, cancel: threading.Event,
              surveying: bool) -> None:  # fmt: skip
        if cancel.is_set():
            return
        region = key[0]
        # Everything inside the try: a task whose thread died without a "done" event would
        # keep run() waiting for it for ever (it never started, so no deadline covers it).
        try:
            deadline = Deadline(self.timeout, self.clock, cancel, self.interrupt)
            events.put(("start", key, self.clock(), None))
            if surveying:
                listing, error = self.publisher.survey(self.apis[region], plan, deadline=deadline)
                if listing is not None:
                    self.listings[key] = listing
                # Only the event matters in pass 1: a failed survey leaves the region to
                # list (and refuse a conflict) itself in pass 2.
                result = _failed(key, plan, error or "surveyed")
            else:
                result = self.publisher.publish(
                    self.apis[region],
                    plan,
                    deadline=deadline,
                    s3=lambda: self.aws.s3_api(region, self.timeouts),
                    record=self.records.get(plan.layer_name),
                    listing=self.surveyed.get(key),
                )
        except Exception as exc:  # a bug: log it with its traceback, fail this task only
            log.exception("%s %s: unexpected error", region, plan.layer_name)
            result = _failed(key, plan, f"unexpected error: {exc!r}")
        events.put(("done", key, self.clock(), result))

    def run(
        self,
        tasks: list[tuple[str, LayerPlan]],
        workers: int,
        progress: ProgressFn | None,
        on_start: StartFn | None,
    ) -> list[RegionResult]:
        plans = {(region, plan.layer_name): plan for region, plan in tasks}
        self.cancels = {key: threading.Event() for key in plans}
        events: Events = queue.Queue()
        pending = set(plans)
        started: dict[Key, float] = {}
        results: list[RegionResult] = []
        work: queue.Queue[tuple[Key, LayerPlan] | None] = queue.Queue()
        for key, plan in plans.items():
            work.put((key, plan))
        for _ in range(workers):
            work.put(None)  # one stop marker per worker
            # Daemon threads: never joined, so a thread stuck in a call cannot hold the
            # process after the result is printed.
            threading.Thread(target=self._worker, daemon=True, name="publish",
                             args=(work, events, self.cancels, self.surveying)).start()  # fmt: skip

        def finish(result: RegionResult) -> None:
            pending.discard((result.region, result.layer_name))
            results.append(result)
            if progress:
                progress(result)

        grace_end: float | None = None
        try:
            while pending:
                now = self.clock()
                if self.interrupt.is_set() and grace_end is None:
                    grace_end = now + self.interrupt_grace
                    # Every running task stops before its next call (Deadline.check sees
                    # the interrupt); the calls in flight get the grace to finish.
                if grace_end is not None and now >= grace_end:
                    for key in sorted(pending):
                        self.cancels[key].set()
                        what = "interrupted" if key in started else NOT_STARTED
                        finish(_failed(key, plans[key], what))
                    break
                for key in sorted(k for k in pending if k in started):
                    if now - started[key] >= self.timeout + _GRACE:
                        # Stuck inside a call: stop waiting; the thread stops at its next check.
                        self.cancels[key].set()
                        finish(
                            _failed(
                                key,
                                plans[key],
                                f"region_timeout of {self.timeout:g} s "
                                "exceeded (no answer from the region)",
                                self.timeout,
                            )
                        )
                if not pending:
                    break
                waits = [started[k] + self.timeout + _GRACE - now for k in pending if k in started]
                if grace_end is not None:
                    waits.append(grace_end - now)
                elif not self.interrupt.is_set():
                    waits.append(0.2)  # notice an interrupt soon even with nothing started
                try:
                    kind, key, at, result = events.get(timeout=max(0.0, min(waits)))
                except queue.Empty:
                    continue
                if key not in pending:
                    continue  # already given up on
                if kind == "start":
                    started[key] = at
                    if on_start:
                        on_start(*key)
                elif kind == "skipped":
                    finish(_failed(key, plans[key], NOT_STARTED))
                else:
                    assert result is not None
                    finish(result)
        finally:
            if pending:  # a failing progress callback, or a KeyboardInterrupt
                self.interrupt.set()  # workers start nothing more
                for key in pending:
                    self.cancels[key].set()
        return results


def _failed(key: Key, plan: LayerPlan, error: str, seconds: float = 0.0) -> RegionResult:
    return RegionResult(
        region=key[0],
        architectures=plan.architectures,
        layer_name=plan.layer_name,
        status="failed",
        seconds=seconds,
        error=error,
    )
