"""Publish one layer in one region, idempotently, converging with other runs.

Per region: list the layer's whole history and look for a version that already holds this
zip with this run's metadata (:func:`~layer_builder.publish.reconcile.find_holders`: the
registry's record for this release, and the release marker every version we publish carries
in its Description); reuse the lowest-numbered one, or PublishLayerVersion (from the zip
bytes, or a staged S3 object for big zips) and look again, so that a racing run or a late
commit converges on the same lowest version. Then the permissions are made to match the
config exactly, and newer duplicates that no registry document records are deleted: of this
zip, and of every zip the registry records for the layer.

After a PublishLayerVersion whose answer was lost, the version may still appear: the
region keeps looking for it for a bounded settle time (:data:`SETTLE_CAP`, at most the
call's own read timeout) before it publishes again, and before it finishes it waits out
the settle time and looks once more, so a late commit is found and deleted by this run.

Artifact checks (:func:`plan_layers`) run before anything touches AWS.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from layer_builder.aws.clients import AwsCallError, LambdaApi, LayerVersionRef, S3Api, Statement
from layer_builder.errors import ArgumentError, ArtifactError, LayerBuilderError
from layer_builder.model import RegionResult, RegionStatus
from layer_builder.publish.markers import parse_marker
from layer_builder.publish.plan import LayerPlan
from layer_builder.publish.reconcile import (
    Holders,
    conflicts,
    describe_metadata,
    find_holders,
    list_history,
    permission_changes,
    recorded_duplicates,
)
from layer_builder.publish.records import LayerRecord

log = logging.getLogger(__name__)

#: The longest a region keeps looking for a version whose PublishLayerVersion answer was
#: lost (the settle time is the call's read timeout, at most this): see docs/release-engineers.md.
SETTLE_CAP = 30.0
#: Seconds between two looks while settling (one ListLayerVersions each, a fifteenth of the
#: region's throttle budget).
SETTLE_POLL = 1.0
#: Of the region's budget, what settling leaves for the last look and the deletes.
SETTLE_MARGIN = 1.0

# --------------------------------------------------------------------------- retry and time


@dataclass(frozen=True)
class RetryPolicy:
    """Region-level retries on top of botocore's: exponential backoff with full jitter."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 20.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class DeadlineExceeded(LayerBuilderError):
    """A region ran out of time, or the fan-out gave up on it."""


class StepInterrupted(DeadlineExceeded):
    """SIGINT/SIGTERM arrived: the region starts no further call."""


class ReleaseConflict(ArtifactError):
    """This release already exists in AWS with another zip."""


class Deadline:
    """A wall-clock budget for one (region, architecture), cancellable from outside."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        cancelled: threading.Event | None = None,
        interrupted: threading.Event | None = None,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self.cancelled = cancelled or threading.Event()
        self.interrupted = interrupted or threading.Event()

    def remaining(self) -> float:
        return self._end - self._clock()

    def check(self, before: str) -> None:
        """Raise DeadlineExceeded instead of starting ``before`` when time is up, or
        :class:`Interrupted` after SIGINT/SIGTERM: nothing new starts in any region."""
        if self.interrupted.is_set():
            raise StepInterrupted(f"interrupted before {before}")
        if self.cancelled.is_set() or self.remaining() <= 0:
            raise DeadlineExceeded(f"region_timeout of {self.seconds:g} s exceeded before {before}")


# --------------------------------------------------------------------------- one region


@dataclass
class _State:
    """What one region's attempts have learnt so far; survives between retries."""

    holders: Holders | None = None  # None: look (again) before deciding anything
    listing: tuple[LayerVersionRef, ...] | None = None  # the last whole-history listing
    surveyed: tuple[LayerVersionRef, ...] | None = None  # the fan-out's listing, used once
    in_doubt_since: float | None = None  # a lost publish answer, not yet found in a listing
    settle_until: float | None = None  # until then a lost publish may still land
    settle_slept: float = 0.0  # of the settle time, spent waiting (bounds it under a fake clock)
    published: LayerVersionRef | None = None  # the version our PublishLayerVersion returned
    target: LayerVersionRef | None = None  # the winner: the version the registry records
    status: RegionStatus = "failed"
    ambiguous_publish: bool = False  # a PublishLayerVersion of ours may have gone through
    permission_done: bool = False
    permission_added: bool = False
    deletes_done: bool = False
    actions: list[str] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)


@dataclass
class RegionPublisher:
    """Publishes one layer plan in one region, with region-level retries and a deadline."""

    account: str
    partition: str
    dry_run: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    settle: float = SETTLE_CAP  # seconds to look for a version whose publish answer was lost
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def publish(
        self,
        api: LambdaApi,
        plan: LayerPlan,
        *,
        deadline: Deadline,
        s3: Callable[[], S3Api] | None = None,
        record: LayerRecord | None = None,
        listing: tuple[LayerVersionRef, ...] | None = None,
    ) -> RegionResult:
        """Run the attempts; never raises for AWS trouble, returns a failed result instead.

        ``listing``: the layer's history as the fan-out's survey read it (conflicts already
        refused); without it the first look lists and refuses a conflict itself.
        """
        region = api.region
        record = record or LayerRecord(plan.layer_name)
        start = self.clock()
        state = _State(surveyed=listing)
        error = self._retrying(lambda: self._attempt(api, plan, state, deadline, s3, record),
                               deadline, region, plan.layer_name)  # fmt: skip
        return self._result(plan, region, state, start, error)

    def survey(
        self, api: LambdaApi, plan: LayerPlan, *, deadline: Deadline
    ) -> tuple[tuple[LayerVersionRef, ...] | None, str | None]:
        """The layer's whole history in this region (with retries), or (None, the error)."""
        out: list[tuple[LayerVersionRef, ...]] = []
        error = self._retrying(
            lambda: out.append(list_history(api, plan.layer_name, deadline.check)),
            deadline, api.region, plan.layer_name,
        )  # fmt: skip
        return (out[0] if out else None), error

    def _retrying(
        self, step: Callable[[], None], deadline: Deadline, region: str, name: str
    ) -> str | None:
        """Run ``step`` with region-level retries; the error that ended it, or None."""
        attempt = 0
        while True:
            attempt += 1
            try:
                step()
                return None
            except AwsCallError as exc:
                error: str = str(exc)
                if not exc.retryable or attempt >= self.retry.attempts:
                    if exc.retryable:
                        error += f" (gave up after {attempt} attempts)"
                    return error
                delay = self.retry.delay(attempt, self.rng)
                if deadline.remaining() <= delay:
                    return error + (
                        f" (no time left to retry within region_timeout {deadline.seconds:g} s)"
                    )
                log.info("%s %s: %s; retry %d in %.2f s", region, name, exc, attempt + 1, delay)
                self.sleep(delay)
                if deadline.interrupted.is_set():
                    return "interrupted before a retry"
            except LayerBuilderError as exc:  # deadline, interrupt, conflict, credentials
                return str(exc)

    def _result(
        self, plan: LayerPlan, region: str, state: _State, start: float, error: str | None = None
    ) -> RegionResult:
        target = state.target
        return RegionResult(
            region=region,
            architectures=plan.architectures,
            layer_name=plan.layer_name,
            status="failed" if error else state.status,
            version=target.version if target else None,
            arn=target.arn if target else None,
            seconds=round(self.clock() - start, 3),
            permission_added=state.permission_added,
            error=error,
            actions=tuple(state.actions),
            deleted=tuple(state.deleted),
        )

    def _look(self, api: LambdaApi, plan: LayerPlan, state: _State, deadline: Deadline,
              record: LayerRecord) -> Holders:  # fmt: skip
        if state.surveyed is not None:
            listing, state.surveyed = state.surveyed, None
        else:
            first = state.listing is None
            listing = list_history(api, plan.layer_name, deadline.check)
            found = conflicts(listing, plan) if first else []
            if found:
                # The fan-out could not survey this region: refuse here, before any write.
                ref, marker = found[0]
                raise ReleaseConflict(
                    f"{plan.layer_name} {plan.release.text} already exists in {api.region} "
                    f"(version {ref.version}) with sha256 {marker.sha}, but {plan.zip_path} has "
                    f"{plan.sha256}: nothing was published in this region"
                )
        state.listing = listing
        holders = find_holders(
            api, listing, plan, recorded=record.recorded(api.region), check=deadline.check
        )
        for ref in holders.other_metadata:
            note = (f"not reused: version {ref.version} holds this zip with other metadata "
                    f"({describe_metadata(ref)})")  # fmt: skip
            if note not in state.actions:
                state.actions.append(note)
        ours = state.published
        if ours is not None:
            # Our own version holds the zip (Lambda answered with it), listed yet or not.
            others = tuple(h for h in holders.versions if h.version != ours.version)
            versions = sorted((*others, ours), key=lambda r: r.version)
            holders = Holders(tuple(versions), holders.verified | {ours.version},
                              holders.other_metadata)  # fmt: skip
        return holders

    def _attempt(
        self,
        api: LambdaApi,
        plan: LayerPlan,
        state: _State,
        deadline: Deadline,
        s3: Callable[[], S3Api] | None,
        record: LayerRecord,
    ) -> None:
        name = plan.layer_name
        while state.target is None:
            if state.holders is None:
                state.holders = self._look(api, plan, state, deadline, record)
            holders = state.holders
            if holders.winner is None:
                if self.dry_run:
                    state.status = "planned-new"
                    state.actions.append("publish")
                    return
                if state.in_doubt_since is not None:
                    if self._settle_wait(state, deadline):
                        # Our lost publish may still land: look again before publishing again.
                        state.holders = None
                        continue
                    state.actions.append(
                        f"publish answer lost: not listed within the settle time "
                        f"({self.settle:g} s); publishing again"
                    )
                    state.in_doubt_since = None
                if holders.other_metadata and not any(
                    a.startswith("published beside") for a in state.actions
                ):
                    beside = ", ".join(str(r.version) for r in holders.other_metadata)
                    state.actions.append(f"published beside version(s) {beside}")
                # Until the answer is in, the publish may have happened server-side: a
                # retry must look again before it publishes again.
                state.holders = None
                try:
                    ref = self._publish(api, plan, deadline, s3)
                except AwsCallError as exc:
                    if exc.ambiguous:
                        state.ambiguous_publish = True
                        state.in_doubt_since = self.clock()
                        state.settle_until = state.in_doubt_since + self.settle
                        state.settle_slept = 0.0
                    else:
                        state.holders = holders  # definitely rejected: the listing holds
                    raise
                state.published = ref
                state.actions.append(f"published {ref.version}")
                log.info("%s %s: published %s", api.region, name, ref.arn)
                # Converge: a racing run or a late commit may hold a lower version.
                state.holders = self._look(api, plan, state, deadline, record)
                continue
            winner = holders.winner
            if winner.version not in holders.verified:
                deadline.check("GetLayerVersion")
                if api.code_sha256(name, winner.version) != plan.code_sha256:
                    # A marker that lies (or a collision): that version does not count.
                    state.holders = Holders(holders.versions[1:], holders.verified,
                                            holders.other_metadata)  # fmt: skip
                    continue
            if state.in_doubt_since is not None and state.published is None:
                waited = self.clock() - state.in_doubt_since
                state.actions.append(
                    f"publish answer lost: found version {winner.version} after {waited:.1f} s "
                    f"(settle time {self.settle:g} s)"
                )
                # Not cleared: the version found may be a racing run's, with ours still to
                # land. The delete step waits out the settle time before its last look.
                state.in_doubt_since = None
            state.target = winner
        target = state.target
        ours = state.published is not None and state.published.version == target.version
        found_after_ambiguous = state.ambiguous_publish and state.published is None
        if self.dry_run:
            state.status = "planned-reuse"
        else:
            state.status = "new" if ours or found_after_ambiguous else "reused"
        reuse = f"reuse {target.version}"
        # Once: a retry after a throttled policy or delete call comes back here.
        if not ours and reuse not in state.actions:
            state.actions.append(reuse)
        if not state.permission_done:
            self._reconcile_permission(api, plan, state, deadline, created=ours)
        if not state.deletes_done:
            self._delete_duplicates(api, plan, state, deadline, record)

    def _settle_wait(self, state: _State, deadline: Deadline) -> bool:
        """Wait one poll of the settle time after a lost publish answer; False when it is
        over (by the clock, or by the time slept: an injected sleep must not spin)."""
        if state.settle_until is None:
            return False
        left = min(
            state.settle_until - self.clock(),
            self.settle - state.settle_slept,
            deadline.remaining() - SETTLE_MARGIN,  # never at the cost of the region
        )
        if left <= 0:
            return False
        deadline.check("ListLayerVersions")
        pause = min(SETTLE_POLL, left)
        self.sleep(pause)
        state.settle_slept += pause
        return True

    def _publish(
        self, api: LambdaApi, plan: LayerPlan, deadline: Deadline, s3: Callable[[], S3Api] | None
    ) -> LayerVersionRef:
        kwargs: dict[str, Any] = {
            "description": plan.marked_description,
            "license_info": plan.license_info,
            "runtimes": plan.runtimes,
            "architectures": plan.architectures,
        }
        if plan.zip_bytes is not None:
            deadline.check("PublishLayerVersion")
            return api.publish(plan.layer_name, content={"ZipFile": plan.zip_bytes}, **kwargs)
        if s3 is None:
            raise ArgumentError(f"{plan.zip_path}: needs an S3 upload and no S3 client was given")
        bucket, key = plan.bucket_for(api.region), plan.s3_key()
        store = s3()
        deadline.check("PutObject")
        store.upload(bucket, key, plan.zip_path)
        try:
            deadline.check("PublishLayerVersion")
            return api.publish(
                plan.layer_name, content={"S3Bucket": bucket, "S3Key": key}, **kwargs
            )
        finally:
            # Lambda has copied the object (or failed): the staged copy is no longer needed.
            try:
                store.delete(bucket, key)
            except LayerBuilderError as exc:
                log.warning("%s: could not remove s3://%s/%s: %s", api.region, bucket, key, exc)

    def _reconcile_permission(
        self, api: LambdaApi, plan: LayerPlan, state: _State, deadline: Deadline, created: bool
    ) -> None:
        """Make the winner's policy grant exactly what the config asks for."""
        assert state.target is not None
        version = state.target.version
        if created:
            present: list[Statement] = []  # we published it and saw the answer: no policy yet
        else:
            deadline.check("GetLayerVersionPolicy")
            present = api.policy(plan.layer_name, version)
        # "public" (the default id) is ours only on a version we published (it carries our
        # marker); on a version adopted from elsewhere it is someone else's.
        ours = created or parse_marker(state.target.description) is not None
        changes = permission_changes(
            present, plan.statements, plan.statement_id, public_is_ours=ours
        )
        if self.dry_run:
            if not changes.empty:
                state.status = "planned-heal-permission"
                state.actions.extend(changes.describe())
            state.permission_done = True
            return
        for sid in changes.remove:
            deadline.check("RemoveLayerVersionPermission")
            api.remove_permission(plan.layer_name, version, sid)
            state.actions.append(f"removed permission {sid}")
        for statement in changes.add:
            deadline.check("AddLayerVersionPermission")
            # A conflict (statement exists) also ends here: after a lost answer to our own
            # earlier call, or a concurrent run, it is there now.
            api.add_permission(plan.layer_name, version, statement)
            state.permission_added = True
            state.actions.append(f"added permission {statement.statement_id}")
        state.permission_done = True

    def _delete_duplicates(
        self, api: LambdaApi, plan: LayerPlan, state: _State, deadline: Deadline,
        record: LayerRecord,
    ) -> None:  # fmt: skip
        """Delete newer versions holding the same zip that no registry document records,
        and unrecorded newer duplicates of every zip the registry records for the layer."""
        assert state.target is not None and state.holders is not None
        region = api.region
        if state.ambiguous_publish and not self.dry_run:
            # An earlier publish of ours went unanswered: it may land until the settle time
            # is over. Wait that out, then look once more, so this run deletes it.
            while self._settle_wait(state, deadline):
                pass
            state.holders = self._look(api, plan, state, deadline, record)
        candidates = [(ref, plan.code_sha256) for ref in state.holders.versions
                      if ref.version > state.target.version]  # fmt: skip
        candidates += recorded_duplicates(state.listing or (), record, region, plan)
        for ref, code in candidates:
            if record.is_protected(region, ref.version) or ref.version in state.deleted:
                continue  # recorded somewhere, or deleted by an earlier attempt
            if self.dry_run:
                state.actions.append(f"delete duplicate {ref.version}")
                continue
            if code != plan.code_sha256 or ref.version not in state.holders.verified:
                deadline.check("GetLayerVersion")
                if api.code_sha256(plan.layer_name, ref.version) != code:
                    continue  # only ever delete a version proven to hold that very zip
            deadline.check("DeleteLayerVersion")
            try:
                api.delete_version(plan.layer_name, ref.version)
            except AwsCallError as exc:
                if exc.retryable:
                    raise
                # Cleanup, not publishing: a role without lambda:DeleteLayerVersion still
                # publishes; the duplicate stays private and unrecorded, and is reported.
                state.actions.append(f"could not delete duplicate {ref.version}: {exc.code}")
                log.warning("%s %s: %s", region, plan.layer_name, exc)
                continue
            state.deleted.append(ref.version)
            state.actions.append(f"deleted duplicate {ref.version}")
            log.info("%s %s: deleted duplicate version %d", region, plan.layer_name, ref.version)
        state.deletes_done = True
