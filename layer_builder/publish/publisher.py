"""Publish one layer in one region, idempotently, converging with other runs.

Per region: look for a version that already holds this zip anywhere in the layer's
history (:func:`~layer_builder.publish.reconcile.find_holders`: the registry's record for
this release, and the content marker every version we publish carries in its
Description); reuse the lowest-numbered one, or PublishLayerVersion (from the zip bytes,
or a staged S3 object for big zips) and look again, so that a racing run or a late commit
converges on the same lowest version. Then the permissions are made to match the config
exactly, and newer duplicates of the zip that no registry document records are deleted.
Every retry after an unclear failure looks again before it publishes again.

Artifact checks (:func:`plan_layers`) run before anything touches AWS.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_builder.aws import facts as aws_facts
from layer_builder.aws.clients import AwsCallError, LambdaApi, LayerVersionRef, S3Api, Statement
from layer_builder.config import LayerConfig, PermissionConfig, Template
from layer_builder.errors import ArgumentError, ArtifactError, LayerBuilderError
from layer_builder.model import BuildManifest, RegionResult, RegionStatus, ReleaseVersion
from layer_builder.publish.plan import LayerRecord, content_marker, marked_description
from layer_builder.publish.reconcile import Holders, find_holders, permission_changes

log = logging.getLogger(__name__)

S3_KEY_PREFIX = "layer-builder"


# --------------------------------------------------------------------------- what to publish


@dataclass(frozen=True)
class LayerPlan:
    """One verified zip and everything needed to publish it anywhere."""

    manifest_path: Path
    zip_path: Path
    layer_name: str
    architectures: tuple[str, ...]  # CompatibleArchitectures: what the zip serves
    description: str
    license_info: str
    runtimes: tuple[str, ...]
    sha256: str  # hex
    code_sha256: str  # base64, as Lambda reports it
    size: int
    statements: tuple[Statement, ...]
    release: ReleaseVersion
    statement_id: str = "public"  # the config's: statements with this id (or id-*) are ours
    s3_bucket: Template | None = None  # set only when the zip goes through S3
    zip_bytes: bytes | None = field(default=None, repr=False)  # set for direct uploads

    @property
    def use_s3(self) -> bool:
        return self.zip_bytes is None

    @property
    def marker(self) -> str:
        return content_marker(self.sha256)

    @property
    def marked_description(self) -> str:
        """The Description published: the build's, plus the content marker."""
        return marked_description(self.description, self.sha256)

    def bucket_for(self, region: str) -> str:
        assert self.s3_bucket is not None
        return self.s3_bucket.render(self.release, self.architectures[0], region=region)

    def s3_key(self) -> str:
        return f"{S3_KEY_PREFIX}/{self.layer_name}/{self.sha256}.zip"


def permission_statements(perm: PermissionConfig) -> tuple[Statement, ...]:
    """The statements a published version must carry."""
    if perm.accounts:
        # One statement per account: a statement has a single principal.
        return tuple(Statement(f"{perm.statement_id}-{a}", a) for a in perm.accounts)
    return (Statement(perm.statement_id, perm.principal, perm.organization_id),)


def _digest(path: Path, keep: bool) -> tuple[str, bytes, bytes | None]:
    """(hex sha256, raw digest, file bytes if ``keep``), reading the file once."""
    h = hashlib.sha256()
    chunks: list[bytes] | None = [] if keep else None
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            if chunks is not None:
                chunks.append(chunk)
    return h.hexdigest(), h.digest(), None if chunks is None else b"".join(chunks)


def plan_layers(
    cfg: LayerConfig,
    version: ReleaseVersion,
    manifests: Sequence[tuple[Path, BuildManifest]],
    regions: Sequence[str] = (),
) -> list[LayerPlan]:
    """Verify every zip against its manifest and the config; nothing is published on error.

    Raises ArtifactError (missing zip, checksum mismatch, manifest for another version,
    architecture or layer name) or ArgumentError (a zip needs S3 and no bucket is configured).
    """
    if not manifests:
        raise ArtifactError("no build manifests given: run `layer-builder build` first")
    plans: list[LayerPlan] = []
    seen: set[str] = set()
    statements = permission_statements(cfg.publish.permission)
    for manifest_path, m in manifests:
        where = str(manifest_path)
        if m.layout != cfg.layout:
            raise ArtifactError(
                f"{where}: built with layout {m.layout}, {cfg.path} says {cfg.layout}; rebuild"
            )
        for arch in m.architectures:
            if arch not in cfg.architectures:
                raise ArtifactError(
                    f"{where}: architecture {arch!r} is not configured in "
                    f"{cfg.path} ({', '.join(cfg.architectures)})"
                )
            if arch in seen:
                raise ArtifactError(f"{where}: a second zip for {arch}")
            seen.add(arch)
        if m.version != version.text:
            raise ArtifactError(
                f"{where}: built for version {m.version}, not {version.text}; "
                "rebuild or pass the matching --version"
            )
        expected = cfg.layer_name(version, m.architectures[0])
        if m.layer_name != expected:
            raise ArtifactError(
                f"{where}: layer name {m.layer_name!r} differs from the config's "
                f"{expected!r}; rebuild with the current config"
            )
        zip_path = m.zip_path(manifest_path)
        if not zip_path.is_file():
            raise ArtifactError(f"{zip_path}: zip not found (listed in {where}); rebuild it")
        size = zip_path.stat().st_size
        # Read the module attribute at call time so the limit can be lowered in tests.
        use_s3 = m.needs_s3_upload or size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES
        hexdigest, raw, data = _digest(zip_path, keep=not use_s3)
        if hexdigest != m.sha256:
            raise ArtifactError(
                f"{zip_path}: sha256 is {hexdigest}, the manifest {where} says "
                f"{m.sha256}; the zip changed after the build, rebuild it"
            )
        code_sha = base64.b64encode(raw).decode("ascii")
        if code_sha != m.code_sha256:
            raise ArtifactError(
                f"{where}: code_sha256 {m.code_sha256!r} does not match the zip ({code_sha!r})"
            )
        if use_s3:
            _check_bucket(cfg, version, m, size, regions)
        plans.append(
            LayerPlan(
                manifest_path=manifest_path,
                zip_path=zip_path,
                layer_name=m.layer_name,
                architectures=m.architectures,
                description=m.description,
                license_info=m.license,
                runtimes=m.compatible_runtimes,
                sha256=hexdigest,
                code_sha256=code_sha,
                size=size,
                statements=statements,
                release=version,
                statement_id=cfg.publish.permission.statement_id,
                s3_bucket=cfg.publish.s3_bucket if use_s3 else None,
                zip_bytes=data,
            )
        )
    return sorted(plans, key=lambda p: p.layer_name)


def _check_bucket(
    cfg: LayerConfig, version: ReleaseVersion, m: BuildManifest, size: int, regions: Sequence[str]
) -> None:
    limit_mb = aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES / (1024 * 1024)
    if cfg.publish.s3_bucket is None:
        raise ArgumentError(
            f"{cfg.path}: publish.s3_bucket: {m.zip_file} is {size / 1048576:.1f} MB, over the "
            f"{limit_mb:g} MB direct-upload limit; set publish.s3_bucket to a bucket per region "
            "(e.g. 'my-layers-{{ region }}') so the zip can be staged in S3"
        )
    buckets = {cfg.publish.s3_bucket.render(version, m.architectures[0], region=r) for r in regions}
    if len(regions) > 1 and len(buckets) == 1:
        raise ArgumentError(
            f"{cfg.path}: publish.s3_bucket: renders to the same bucket for every region; Lambda "
            "reads the zip only from a bucket in the layer's own region, use {{ region }}"
        )


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


class Deadline:
    """A wall-clock budget for one (region, architecture), cancellable from outside."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self.cancelled = cancelled or threading.Event()

    def remaining(self) -> float:
        return self._end - self._clock()

    def check(self, before: str) -> None:
        """Raise DeadlineExceeded instead of starting ``before`` when time is up."""
        if self.cancelled.is_set() or self.remaining() <= 0:
            raise DeadlineExceeded(f"region_timeout of {self.seconds:g} s exceeded before {before}")


# --------------------------------------------------------------------------- one region


@dataclass
class _State:
    """What one region's attempts have learnt so far; survives between retries."""

    holders: Holders | None = None  # None: look (again) before deciding anything
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
    ) -> RegionResult:
        """Run the attempts; never raises for AWS trouble, returns a failed result instead."""
        region = api.region
        record = record or LayerRecord(plan.layer_name)
        start = self.clock()
        state = _State()
        attempt = 0
        while True:
            attempt += 1
            try:
                self._attempt(api, plan, state, deadline, s3, record)
                return self._result(plan, region, state, start)
            except AwsCallError as exc:
                error: str = str(exc)
                if not exc.retryable or attempt >= self.retry.attempts:
                    if exc.retryable:
                        error += f" (gave up after {attempt} attempts)"
                    return self._result(plan, region, state, start, error)
                delay = self.retry.delay(attempt, self.rng)
                if deadline.remaining() <= delay:
                    error += (
                        f" (no time left to retry within region_timeout {deadline.seconds:g} s)"
                    )
                    return self._result(plan, region, state, start, error)
                name = plan.layer_name
                log.info("%s %s: %s; retry %d in %.2f s", region, name, exc, attempt + 1, delay)
                self.sleep(delay)
            except LayerBuilderError as exc:  # deadline, credentials
                return self._result(plan, region, state, start, str(exc))

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

    def _arn(self, region: str, name: str) -> Callable[[int], str]:
        return lambda v: aws_facts.layer_arn(self.partition, region, self.account, name, v)

    def _look(self, api: LambdaApi, plan: LayerPlan, state: _State, deadline: Deadline,
              record: LayerRecord) -> Holders:  # fmt: skip
        holders = find_holders(
            api,
            plan.layer_name,
            marker=plan.marker,
            code_sha256=plan.code_sha256,
            recorded=record.recorded(api.region),
            arn_of=self._arn(api.region, plan.layer_name),
            check=deadline.check,
        )
        ours = state.published
        if ours is not None:
            # Our own version holds the zip (Lambda answered with it), listed yet or not.
            others = tuple(h for h in holders.versions if h.version != ours.version)
            versions = sorted((*others, ours), key=lambda r: r.version)
            holders = Holders(tuple(versions), holders.verified | {ours.version})
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
                # Until the answer is in, the publish may have happened server-side: a
                # retry must look again before it publishes again.
                state.holders = None
                try:
                    ref = self._publish(api, plan, deadline, s3)
                except AwsCallError as exc:
                    if exc.ambiguous:
                        state.ambiguous_publish = True
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
                    state.holders = Holders(holders.versions[1:], holders.verified)
                    continue
            state.target = winner
        target = state.target
        ours = state.published is not None and state.published.version == target.version
        found_after_ambiguous = state.ambiguous_publish and state.published is None
        if self.dry_run:
            state.status = "planned-reuse"
            state.actions.append(f"reuse {target.version}")
        else:
            state.status = "new" if ours or found_after_ambiguous else "reused"
            if not ours:
                state.actions.append(f"reuse {target.version}")
        if not state.permission_done:
            self._reconcile_permission(api, plan, state, deadline, created=ours)
        if not state.deletes_done:
            self._delete_duplicates(api, plan, state, deadline, record)

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
        changes = permission_changes(present, plan.statements, plan.statement_id)
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
        """Delete newer versions holding the same zip that no registry document records."""
        assert state.target is not None and state.holders is not None
        region = api.region
        if state.ambiguous_publish and not self.dry_run:
            # An earlier publish of ours went unanswered: it may have landed since we looked.
            state.holders = self._look(api, plan, state, deadline, record)
        for ref in state.holders.versions:
            if ref.version <= state.target.version or record.is_protected(region, ref.version):
                continue
            if self.dry_run:
                state.actions.append(f"delete duplicate {ref.version}")
                continue
            if ref.version not in state.holders.verified:
                deadline.check("GetLayerVersion")
                if api.code_sha256(plan.layer_name, ref.version) != plan.code_sha256:
                    continue  # only ever delete a version proven to hold this very zip
            deadline.check("DeleteLayerVersion")
            api.delete_version(plan.layer_name, ref.version)
            state.deleted.append(ref.version)
            state.actions.append(f"deleted duplicate {ref.version}")
            log.info("%s %s: deleted duplicate version %d", region, plan.layer_name, ref.version)
        state.deletes_done = True
