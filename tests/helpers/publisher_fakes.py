"""In-memory stand-ins for the publisher's unit tests (tests/unit/publish/).

``FakeLambda`` keeps one region's layer versions the way Lambda does (numbers start at 1,
only grow, are never reused; listings newest first, in pages) and records every call, so a
test can assert the exact calls a region publisher makes and the exact state it leaves.
Faults are scripted per operation, raised before the call acts (``fail``) or after it acted
server-side (``lose_answer``: the request went through, the answer was lost). A call for
another layer name answers as LambdaApi does for a layer that does not exist.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_builder.aws.clients import AwsCallError, LayerVersionRef, Statement
from layer_builder.config import LayerConfig
from layer_builder.model import BuildManifest, PublishResult, ReleaseVersion
from layer_builder.publish.fanout import INTERRUPT_GRACE, Seams, plan_publish, publish_all
from layer_builder.publish.markers import content_marker
from layer_builder.publish.plan import LayerPlan
from layer_builder.publish.publisher import Deadline
from layer_builder.publish.target import PublishOptions, PublishTarget

ACCOUNT = "123456789012"
REGION = "eu-west-1"
NAME = "LbGuard-python"
V = ReleaseVersion.parse("2.75.0")
ZIP = b"PK\x05\x06" + bytes(18)  # an empty zip: content only, never unpacked here
SHA = hashlib.sha256(ZIP).hexdigest()
CODE = base64.b64encode(hashlib.sha256(ZIP).digest()).decode("ascii")
OTHER_CODE = base64.b64encode(hashlib.sha256(b"other").digest()).decode("ascii")
MARKER = content_marker(SHA)


def arn(version: int, region: str = REGION, name: str = NAME) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}"


def make_plan(**changes: Any) -> LayerPlan:
    fields: dict[str, Any] = {
        "manifest_path": Path("dist/layer.zip.json"),
        "zip_path": Path("dist/layer.zip"),
        "layer_name": NAME,
        "architectures": ("x86_64",),
        "description": "Guard layer 2.75.0",
        "license_info": "MIT",
        "runtimes": ("python3.12", "python3.13"),
        "sha256": SHA,
        "code_sha256": CODE,
        "size": len(ZIP),
        "statements": (Statement("public"),),
        "release": V,
        "zip_bytes": ZIP,
    }
    fields.update(changes)
    return LayerPlan(**fields)


def aws_error(
    operation: str, code: str, *, retryable: bool, ambiguous: bool, region: str = REGION
) -> AwsCallError:
    return AwsCallError(
        operation, region, code, "scripted", retryable=retryable, ambiguous=ambiguous
    )


def throttled(operation: str) -> AwsCallError:
    return aws_error(operation, "TooManyRequestsException", retryable=True, ambiguous=False)


def server_error(operation: str) -> AwsCallError:
    return aws_error(operation, "ServiceException", retryable=True, ambiguous=True)


def denied(operation: str) -> AwsCallError:
    return aws_error(operation, "AccessDeniedException", retryable=False, ambiguous=False)


#: The metadata make_plan() publishes with: (runtimes, architectures, license).
METADATA = (("python3.12", "python3.13"), ("x86_64",), "MIT")


@dataclass
class Version:
    code: str | None
    description: str
    policy: list[Statement] = field(default_factory=list)
    metadata: tuple[tuple[str, ...], tuple[str, ...], str] = METADATA


class FakeLambda:
    """One region's Lambda layer API in memory (see the module docstring)."""

    def __init__(self, region: str = REGION, page_size: int = 50) -> None:
        self.region = region
        self.page_size = page_size
        self.versions: dict[int, Version] = {}
        self.last = 0
        self.calls: list[tuple[Any, ...]] = []
        self.published: list[dict[str, Any]] = []  # the keyword arguments of each publish
        # Raised before the call acts, one per call in order (None: that call succeeds).
        self.fail: dict[str, list[AwsCallError | None]] = {}
        self.lose_answer: dict[str, list[AwsCallError]] = {}  # raised after it acted
        self.hidden: set[int] = set()  # published but not listed yet (eventual consistency)
        self.racer_first = 0  # publishes of the same zip that land just before ours
        self.racer_after = 0  # ... and just after ours
        self.hide_published = False  # our published version is not listed yet
        # A scripted listing (see ``scripted``) instead of the versions above.
        self.pages: list[list[LayerVersionRef]] | None = None
        self.shas: dict[int, str] = {}
        self.scripted_name = NAME

    @classmethod
    def scripted(
        cls,
        pages: list[list[LayerVersionRef]],
        shas: dict[int, str] | None = None,
        layer_name: str = "L",
    ) -> FakeLambda:
        """A Lambda whose ListLayerVersions answers ``pages`` as given (newest first, markers
        p1, p2, ...) and whose GetLayerVersion answers ``shas``, both for ``layer_name`` only:
        for listings the model above cannot make, such as a page boundary shifted by a
        publish between two pages."""
        api = cls()
        api.scripted_name = layer_name
        api.pages = pages
        api.shas = dict(shas or {})
        return api

    def add(
        self,
        code: str | None,
        description: str,
        *policy: Statement,
        metadata: tuple[tuple[str, ...], tuple[str, ...], str] = METADATA,
    ) -> int:
        self.last += 1
        self.versions[self.last] = Version(code, description, list(policy), metadata)
        return self.last

    def ref(self, version: int, layer_name: str = NAME) -> LayerVersionRef:
        """The version as ListLayerVersions lists it."""
        held = self.versions[version]
        runtimes, archs, license_info = held.metadata
        return LayerVersionRef(version, arn(version, self.region, layer_name), held.description,
                               runtimes, archs, license_info)  # fmt: skip

    def _enter(self, *call: Any) -> None:
        self.calls.append(call)
        queued = self.fail.get(call[0])
        error = queued.pop(0) if queued else None
        if error is not None:
            raise error

    def _leave(self, op: str) -> None:
        queued = self.lose_answer.get(op)
        if queued:
            raise queued.pop(0)

    def list_versions(
        self, layer_name: str, marker: str | None = None
    ) -> tuple[list[LayerVersionRef], str | None]:
        self._enter("list", marker)
        if self.pages is not None:
            if layer_name != self.scripted_name:
                return [], None
            index = int(marker[1:]) if marker else 0
            following = f"p{index + 1}" if index + 1 < len(self.pages) else None
            return list(self.pages[index]), following
        if layer_name != NAME:
            return [], None
        newest = [
            self.ref(v, layer_name)
            for v in sorted(self.versions, reverse=True)
            if v not in self.hidden
        ]
        start = int(marker or 0)
        end = start + self.page_size
        return newest[start:end], (str(end) if end < len(newest) else None)

    def code_sha256(self, layer_name: str, version: int) -> str | None:
        self._enter("get", version)
        if self.pages is not None:
            return self.shas.get(version) if layer_name == self.scripted_name else None
        held = self.versions.get(version) if layer_name == NAME else None
        return held.code if held else None

    def publish(self, layer_name: str, **kwargs: Any) -> LayerVersionRef:
        self._enter("publish")
        if layer_name != NAME:
            raise aws_error(
                "PublishLayerVersion",
                "InvalidParameterValueException",
                retryable=False,
                ambiguous=False,
            )
        self.published.append(kwargs)
        content = kwargs["content"]
        code = CODE if content.get("ZipFile") == ZIP or "S3Key" in content else OTHER_CODE
        meta = (tuple(kwargs["runtimes"]), tuple(kwargs["architectures"]), kwargs["license_info"])
        for _ in range(self.racer_first):
            self.add(code, kwargs["description"], metadata=meta)
        self.racer_first = 0
        version = self.add(code, kwargs["description"], metadata=meta)
        if self.hide_published:
            self.hidden.add(version)
        for _ in range(self.racer_after):
            self.add(code, kwargs["description"], metadata=meta)
        self.racer_after = 0
        self._leave("publish")
        return self.ref(version, layer_name)

    def delete_version(self, layer_name: str, version: int) -> None:
        self._enter("delete", version)
        if layer_name == NAME:
            self.versions.pop(version, None)

    def policy(self, layer_name: str, version: int) -> list[Statement]:
        self._enter("policy", version)
        return list(self.versions[version].policy) if layer_name == NAME else []

    def remove_permission(self, layer_name: str, version: int, statement_id: str) -> None:
        self._enter("remove", version, statement_id)
        if layer_name != NAME:
            return
        policy = self.versions[version].policy
        policy[:] = [s for s in policy if s.statement_id != statement_id]

    def add_permission(self, layer_name: str, version: int, statement: Statement) -> bool:
        self._enter("add", version, statement.statement_id)
        if layer_name != NAME:
            raise aws_error(
                "AddLayerVersionPermission",
                "ResourceNotFoundException",
                retryable=False,
                ambiguous=False,
            )
        policy = self.versions[version].policy
        if any(s.statement_id == statement.statement_id for s in policy):
            return False
        policy.append(statement)
        return True


class FakeS3:
    """The staging bucket calls, recorded; ``delete_error`` makes the clean-up fail."""

    def __init__(self, delete_error: Exception | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.delete_error = delete_error

    def upload(self, bucket: str, key: str, path: Path) -> None:
        self.calls.append(("upload", bucket, key, path))

    def delete(self, bucket: str, key: str) -> None:
        self.calls.append(("delete", bucket, key))
        if self.delete_error is not None:
            raise self.delete_error


class RecordingDeadline(Deadline):
    """A deadline that never runs out unless told, and records what each check was before."""

    def __init__(self, seconds: float = 30.0, expire_before: str | None = None) -> None:
        super().__init__(seconds, clock=lambda: 0.0)
        self.checks: list[str] = []
        self.expire_before = expire_before

    def check(self, before: str) -> None:
        self.checks.append(before)
        if before == self.expire_before:
            self.cancelled.set()
        super().check(before)


class TopRng:
    """``uniform(a, b)`` always answers ``b``: the backoff's upper bound, deterministically."""

    def uniform(self, a: float, b: float) -> float:
        return b


def publish_layers(
    cfg: LayerConfig,
    version: ReleaseVersion,
    manifests: Sequence[tuple[Path, BuildManifest]],
    regions: Sequence[str],
    *,
    account: str,
    partition: str,
    aws: Any = None,
    max_workers: int | None = None,
    region_timeout: float | None = None,
    attempts: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    interrupt_grace: float = INTERRUPT_GRACE,
    **kwargs: Any,
) -> PublishResult:
    """plan_publish + publish_all for one config, with the overrides and seams as keywords
    (``dry_run``, ``records``, ``progress``, ``on_start``, ``interrupt`` pass through)."""
    target = PublishTarget(account, partition, tuple(regions))
    plans = plan_publish(cfg, version, manifests, target)
    options = PublishOptions.resolve(
        cfg, workers=max_workers, region_timeout=region_timeout, attempts=attempts
    )
    seams = Seams(aws=aws, sleep=sleep, clock=clock, rng=rng, interrupt_grace=interrupt_grace)
    return publish_all(plans, target, options, seams, **kwargs)
