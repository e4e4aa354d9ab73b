"""Instrument a user's Lambda function with the newest layer a registry names.

The consumer side of the pipeline: what Sentry's AWS Lambda integration does with the
registry, for any partition and architecture. :class:`FunctionInstrumenter` reads a
function's configuration, compares its layers with the registry's newest release for the
function's region and architecture, and enables, updates or disables instrumentation.

``enable`` records what it changed (the original handler, each environment variable's
value before enabling, ``null`` when it was absent, and a short digest of what it set) in one
compact JSON environment variable,
:data:`~layer_builder.consumer.rules.RESTORE_VAR`, on the function itself. It
travels in the same UpdateFunctionConfiguration call as the change, so the record can never
disagree with the function. ``disable`` takes the function's current state as the truth:
what the user changed after ``enable`` stays (see
:func:`~layer_builder.consumer.rules.restored`).

A function gets the layer that serves its architecture (the universal layer, or its
architecture's entry of a per-architecture release); when none does, nothing is attached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from layer_builder.aws.clients import Aws, AwsCallError, FunctionApi
from layer_builder.aws.facts import REGION_RE
from layer_builder.consumer import rules as instr
from layer_builder.errors import ArgumentError, FunctionError
from layer_builder.registry.reader import LayerRelease
from layer_builder.types import Family

log = logging.getLogger(__name__)

Action = Literal["enable", "update", "disable"]

#: Which registry entry a runtime family uses unless the caller names one.
CANONICALS: dict[str, str] = {"python": "aws-layer:python", "node": "aws-layer:node"}
_FUNCTION_ARN_RE = re.compile(
    r"^arn:(?P<partition>[a-z0-9-]+):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"function:(?P<name>[A-Za-z0-9_-]{1,140})(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)
_FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,140}$")
_CONFLICT_CODES = frozenset({"ResourceConflictException", "PreconditionFailedException"})
# Refusals the user can act on (permissions, a layer they cannot use, their KMS key).
_REFUSED_CODES = frozenset(
    {
        "AccessDeniedException",
        "InvalidParameterValueException",
        "ResourceNotFoundException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSNotFoundException",
    }
)


class ReleaseSource(Protocol):
    """What the instrumenter needs from a registry: :class:`RegistryClient` fits."""

    def latest(self, canonical: str) -> LayerRelease: ...


@dataclass(frozen=True)
class FunctionStatus:
    """A function as the registry sees it (``out_of_date`` is what Sentry's UI shows)."""

    function: str
    arn: str
    region: str
    runtime: str
    family: Family
    architecture: str
    canonical: str
    handler: str
    layers: tuple[str, ...]  # every attached layer ARN, in order
    layer_arn: str | None  # our attached layer, if any
    layer_version: int | None
    latest_arn: str
    latest_version: int
    out_of_date: bool  # ours is attached and is not the newest for this region/architecture
    instrumented: bool  # ours is attached and the handler/NODE_OPTIONS load it
    dsn_set: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; never holds environment values (the DSN stays off the screen)."""
        data = asdict(self)
        data["layers"] = list(self.layers)
        data["layer_attached"] = self.layer_arn is not None
        return data


@dataclass(frozen=True)
class ChangeResult:
    """What enable, update or disable did to one function."""

    action: Action
    function: str
    arn: str
    region: str
    changed: bool
    layers_before: tuple[str, ...]
    layers_after: tuple[str, ...]
    handler_before: str
    handler_after: str
    env_changed: tuple[str, ...]  # names only: values may hold the DSN
    layer_arn: str | None  # our layer after the change
    warnings: tuple[str, ...] = ()  # e.g. a runtime the layer does not list

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("layers_before", "layers_after", "env_changed", "warnings"):
            data[key] = list(data[key])
        return data


@dataclass(frozen=True)
class _Target:
    function: str  # a name or an unqualified ARN, as the API takes it
    region: str
    qualifier: str | None


class _Conflict(Exception):
    """Another update of the function is in progress, or it changed since we read it."""


class FunctionInstrumenter:
    """Status, enable, update and disable of Lambda functions, against one registry.

    ``lambda_client(region)`` returns a boto3 Lambda client (default:
    :mod:`layer_builder.aws.clients` with the standard credential chain). A function is a
    name or an ARN; its region comes from the ARN, else ``region``, else the configured
    default region. ``sleep``/``clock``/``jitter`` (a number in [0, 1)) are injectable so
    retry and wait tests run instantly and predictably.
    """

    def __init__(
        self,
        registry: ReleaseSource,
        *,
        lambda_client: Callable[[str], Any] | None = None,
        default_region: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        conflict_attempts: int = 8,
        backoff: float = 1.0,
        max_backoff: float = 16.0,
        settle_timeout: float = 300.0,
        poll_interval: float = 2.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._registry = registry
        self._factory = lambda_client
        self._aws_instance: Aws | None = None
        self._default_region = default_region
        self._sleep = sleep
        self._clock = clock
        self._attempts = max(1, conflict_attempts)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._settle_timeout = settle_timeout
        self._poll = poll_interval
        self._jitter = jitter

    # --- public API -----------------------------------------------------------------

    def status(
        self, function: str, *, region: str | None = None, canonical: str | None = None
    ) -> FunctionStatus:
        """Which of our layers is attached, the newest one, and whether it is out of date."""
        target = self._target(function, region, modify=False)
        snap = self._read(target)
        family = instr.family(snap)
        release = self._registry.latest(canonical or CANONICALS[family])
        latest = instr.latest_arn(snap, release, target.region)
        ours = instr.attached(snap.layers, release)
        version = int(ours.rsplit(":", 1)[1]) if ours else None
        return FunctionStatus(
            function=snap.name,
            arn=snap.arn,
            region=target.region,
            runtime=snap.runtime,
            family=family,
            architecture=snap.architecture,
            canonical=release.canonical,
            handler=snap.handler,
            layers=snap.layers,
            layer_arn=ours,
            layer_version=version,
            latest_arn=latest,
            latest_version=int(latest.rsplit(":", 1)[1]),
            out_of_date=ours is not None and instr.is_older(ours, latest),
            instrumented=ours is not None and instr.wired(snap, family),
            dsn_set=bool(snap.env.get(instr.DSN_VAR)),
        )

    def enable(
        self,
        function: str,
        *,
        dsn: str,
        traces_sample_rate: float | str | None = None,
        region: str | None = None,
        canonical: str | None = None,
    ) -> ChangeResult:
        """Attach the newest layer (or replace an older one of ours in place) and wire it up."""
        dsn = instr.validate_dsn(dsn)
        rate = instr.validate_sample_rate(traces_sample_rate)
        warnings: list[str] = []

        def plan(snap: instr.Snapshot) -> instr.Wanted:
            family = instr.family(snap)
            release = self._registry.latest(canonical or CANONICALS[family])
            latest = instr.latest_arn(snap, release, self._region_of(snap))
            layers = instr.with_layer(snap, latest, release)
            preload = instr.preload_for(latest)
            handler, env = instr.instrumented(snap, family, dsn, rate, preload)
            warning = instr.runtime_warning(snap, release)
            warnings[:] = [warning] if warning else []
            return instr.Wanted(handler, layers, env, latest)

        result = self._modify("enable", function, region, plan)
        for warning in warnings:
            log.warning("%s", warning)
        return dataclasses.replace(result, warnings=tuple(warnings))

    def update(
        self, function: str, *, region: str | None = None, canonical: str | None = None
    ) -> ChangeResult:
        """Move our layer to the newest version; nothing else changes, except a Node preload
        of ours, switched to the one that layer version needs (``-r`` or ``--import``)."""

        def plan(snap: instr.Snapshot) -> instr.Wanted:
            family = instr.family(snap)
            release = self._registry.latest(canonical or CANONICALS[family])
            if instr.attached(snap.layers, release) is None:
                raise FunctionError(
                    f"function {snap.name}: no {release.canonical} layer is "
                    "attached; enable it first"
                )
            latest = instr.latest_arn(snap, release, self._region_of(snap))
            env = instr.updated_env(snap, family, instr.preload_for(latest))
            return instr.Wanted(snap.handler, instr.with_layer(snap, latest, release), env, latest)

        return self._modify("update", function, region, plan)

    def disable(
        self, function: str, *, region: str | None = None, canonical: str | None = None
    ) -> ChangeResult:
        """Remove our layer and undo ``enable``, keeping what the user changed since."""

        def plan(snap: instr.Snapshot) -> instr.Wanted:
            release = self._registry.latest(canonical or CANONICALS[instr.family(snap)])
            layers = tuple(a for a in snap.layers if not instr.is_ours(a, release))
            handler, env = instr.restored(snap)
            return instr.Wanted(handler, layers, env, None)

        return self._modify("disable", function, region, plan)

    # --- the read-modify-write loop -------------------------------------------------

    def _modify(
        self,
        action: Action,
        function: str,
        region: str | None,
        plan: Callable[[instr.Snapshot], instr.Wanted],
    ) -> ChangeResult:
        target = self._target(function, region, modify=True)
        for attempt in range(1, self._attempts + 1):
            before = self._settled(target)
            wanted = plan(before)
            changes: dict[str, Any] = {}
            if wanted.handler != before.handler:
                changes["Handler"] = wanted.handler
            if wanted.layers != before.layers:
                changes["Layers"] = list(wanted.layers)
            if wanted.env != before.env:
                instr.check_env_size(before.name, wanted.env)
                changes["Environment"] = {"Variables": wanted.env}
            if changes:
                if before.revision_id:
                    # Fails with PreconditionFailed if someone changed the function since we
                    # read it, so we never overwrite their change with our stale copy.
                    changes["RevisionId"] = before.revision_id
                log.info(
                    "%s %s: updating %s",
                    action,
                    before.name,
                    ", ".join(k for k in changes if k != "RevisionId"),
                )
                try:
                    with self._refusals(target, reading=False):
                        self._api(target.region).update_configuration(before.arn, changes)
                except _Conflict as exc:
                    if attempt == self._attempts:
                        raise FunctionError(
                            f"function {before.name}: still busy after {attempt} attempts "
                            f"({exc}); try again later"
                        ) from None
                    # Equal jitter: two tools retrying the same function spread apart.
                    cap = min(self._backoff * 2 ** (attempt - 1), self._max_backoff)
                    delay = cap / 2 + cap / 2 * self._jitter()
                    log.info("function %s busy (%s); retrying in %.1fs", before.name, exc, delay)
                    self._sleep(delay)
                    continue
                self._settled(target, after_update=True)
            changed_env = sorted(
                k
                for k in set(before.env) | set(wanted.env)
                if before.env.get(k) != wanted.env.get(k)
            )
            return ChangeResult(
                action,
                before.name,
                before.arn,
                target.region,
                bool(changes),
                before.layers,
                wanted.layers,
                before.handler,
                wanted.handler,
                tuple(changed_env),
                wanted.ours,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _settled(self, target: _Target, *, after_update: bool = False) -> instr.Snapshot:
        """The configuration once no update is in progress (Lambda applies them async)."""
        deadline = self._clock() + self._settle_timeout
        while True:
            snap = self._read(target)
            if snap.update_status != "InProgress" and snap.state != "Pending":
                break
            if self._clock() >= deadline:
                raise FunctionError(
                    f"function {snap.name}: still updating after "
                    f"{self._settle_timeout:.0f}s; try again later"
                )
            self._sleep(self._poll)
        if after_update and snap.update_status == "Failed":
            raise FunctionError(
                f"function {snap.name}: Lambda could not apply the change: "
                f"{snap.update_reason or 'no reason given'}"
            )
        return snap

    # --- AWS calls ------------------------------------------------------------------

    def _target(self, function: str, region: str | None, *, modify: bool) -> _Target:
        m = _FUNCTION_ARN_RE.match(function)
        if m:
            if region and region != m["region"]:
                raise ArgumentError(
                    f"--region {region} contradicts the function ARN's region {m['region']}"
                )
            if modify and m["qualifier"]:
                raise ArgumentError(
                    f"{function}: a version or alias cannot be changed; give "
                    "the function's name or unqualified ARN"
                )
            unqualified = function.rsplit(":", 1)[0] if m["qualifier"] else function
            return _Target(unqualified, m["region"], m["qualifier"])
        if not _FUNCTION_NAME_RE.match(function):
            raise ArgumentError(f"{function!r}: not a Lambda function name or function ARN")
        chosen = region or self._configured_region()
        if not chosen:
            raise ArgumentError(
                f"function {function}: no region; pass --region or a function "
                "ARN (or set AWS_REGION)"
            )
        if not REGION_RE.match(chosen):
            raise ArgumentError(f"--region: {chosen!r} is not a region name")
        return _Target(function, chosen, None)

    def _configured_region(self) -> str | None:
        if self._default_region is None and self._factory is None:
            self._default_region = self._aws().session.region_name or ""
        return self._default_region or None

    def _aws(self) -> Aws:
        # Created on first use: parsing arguments must not need AWS settings.
        if self._aws_instance is None:
            self._aws_instance = Aws()
        return self._aws_instance

    def _api(self, region: str) -> FunctionApi:
        if self._factory is None:
            return self._aws().function_api(region)
        return FunctionApi(region, self._factory(region))

    def _region_of(self, snap: instr.Snapshot) -> str:
        return snap.arn.split(":")[3]

    def _read(self, target: _Target) -> instr.Snapshot:
        with self._refusals(target, reading=True):
            cfg = self._api(target.region).configuration(target.function, target.qualifier)
        env = cfg.get("Environment") or {}
        if env.get("Error"):
            err = env["Error"]
            raise FunctionError(
                f"function {cfg.get('FunctionName')}: cannot read its environment: "
                f"{err.get('ErrorCode')}: {err.get('Message')}"
            )
        return instr.Snapshot(
            name=str(cfg["FunctionName"]),
            arn=str(cfg["FunctionArn"]),
            runtime=str(cfg.get("Runtime") or ""),
            architecture=str((cfg.get("Architectures") or ["x86_64"])[0]),
            handler=str(cfg.get("Handler") or ""),
            layers=tuple(str(layer["Arn"]) for layer in cfg.get("Layers") or []),
            env={str(k): str(v) for k, v in (env.get("Variables") or {}).items()},
            revision_id=cfg.get("RevisionId"),
            update_status=str(cfg.get("LastUpdateStatus") or "Successful"),
            update_reason=str(cfg.get("LastUpdateStatusReason") or ""),
            state=str(cfg.get("State") or "Active"),
        )

    @contextlib.contextmanager
    def _refusals(self, target: _Target, *, reading: bool) -> Iterator[None]:
        """AWS refusals the user can act on as a FunctionError; a conflict as _Conflict."""
        try:
            yield
        except AwsCallError as exc:
            code, message = exc.code, " ".join(exc.detail.split())
            if code in _CONFLICT_CODES:
                raise _Conflict(code) from None
            if code == "ResourceNotFoundException" and reading:
                raise FunctionError(
                    f"function {target.function} not found in {target.region} "
                    "(check the name, --region and the credentials' account)"
                ) from None
            if code in _REFUSED_CODES:
                raise FunctionError(
                    f"function {target.function}: {exc.operation} refused: {code}: {message}"
                ) from None
            raise
