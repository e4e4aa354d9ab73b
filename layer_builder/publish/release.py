"""One release: built zips -> every region -> the registry, as one call.

:class:`ReleaseRequest` says what to release and how (the zips, where, the registry, dry
run, partial, stand-in, the overrides); :func:`run_release` runs it and returns a
:class:`ReleaseOutcome` (the per-region results, what the registry writer did, interrupted
or incomplete). It owns the order that makes a release safe: refuse stand-in zips, take the
registry lock (not for a dry run), check the version against the layer's scheme, one
preflight of the registry (it parses, it is writable, it agrees with these zips), publish,
and write the registry only when every region succeeded (or ``allow_partial``) and no
interrupt came. It prints nothing and raises no outcome: the caller (``cli/``) turns the
outcome into output and an exit code, and owns the signal handling that sets ``interrupt``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from layer_builder.config import LayerConfig
from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.model import BuildManifest, PublishResult, RegionResult, ReleaseVersion
from layer_builder.publish.target import PublishOptions, PublishTarget, resolve_publish_target
from layer_builder.registry.files import RegistryLock, registry_lock
from layer_builder.registry.writer import WriteResult
from layer_builder.versions import scheme_for_runtimes, version_key

Built = tuple[Path, BuildManifest]  # (manifest path, manifest)
ProgressFn = Callable[[RegionResult], None]


@dataclass(frozen=True)
class ReleaseRequest:
    """Everything one release needs; ``target`` None resolves ``regions`` under the lock
    (so a second run on the registry waits before it asks AWS anything)."""

    config: LayerConfig
    version: ReleaseVersion
    built: tuple[Built, ...]
    registry: Path
    target: PublishTarget | None = None
    regions: str | None = None  # only when ``target`` is None: see resolve_publish_target
    dry_run: bool = False
    allow_partial: bool = False
    allow_standin: bool = False  # the sandbox, or the user's own emulator
    workers: int | None = None
    attestation: str | None = None  # recorded in the registry's provenance


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a release did. ``written`` is the registry writer's result (None: not written);
    ``created`` says the registry root did not exist before."""

    result: PublishResult
    target: PublishTarget
    written: WriteResult | None
    created: bool
    interrupted: bool


class ReleaseObserver(Protocol):
    """What a release shows while it runs (the CLI's output implements it)."""

    def publishing(self, request: ReleaseRequest, target: PublishTarget, workers: int) -> None:
        """Publishing is about to start (after the lock and the preflight)."""

    def region_progress(self, total: int) -> contextlib.AbstractContextManager[ProgressFn]:
        """A per-region progress callback for the ``total`` tasks of the fan-out."""

    def published(self, result: PublishResult) -> None:
        """Every region is done (or given up on); the registry is not written yet."""


def refuse_standin(built: Sequence[Built], *, allow: bool) -> None:
    """A zip carrying the sandbox's stand-in extension never reaches AWS by accident."""
    from layer_builder.publish.plan import standin_source

    if allow:
        return
    for mpath, m in built:
        source = standin_source(m)
        if source is not None:
            # Name where it came from only when that says more (a --extension-file path).
            origin = "" if "stand-in" in source.lower() else f" (from {source})"
            raise ArtifactError(
                f"{mpath}: the zip carries the sandbox stand-in extension{origin}, "
                "not the real one; refusing to publish it outside "
                "--sandbox (rebuild without --sandbox, or pass --allow-standin to publish it "
                "to your own emulator)"
            )


@contextlib.contextmanager
def _release_lock(registry: Path, *, dry_run: bool) -> Iterator[RegistryLock | None]:
    """The registry's lock for a release (None for a dry run: it writes nothing, so it
    neither waits for nor blocks another run)."""
    if dry_run:
        yield None
        return
    with registry_lock(registry) as lock:
        yield lock


def run_release(
    request: ReleaseRequest,
    observer: ReleaseObserver,
    *,
    interrupts: Callable[[], contextlib.AbstractContextManager[threading.Event]] | None = None,
) -> ReleaseOutcome:
    """Run ``request``: refuse stand-ins, lock, preflight, publish, write the registry.

    ``interrupts`` is entered once the lock is held and the target known; the event it
    yields (set by the caller's signal handler) stops the publishing (see publish_all).
    Bad input and a registry that cannot take the release raise (exit 2, nothing
    published); failed regions and an interrupt are in the outcome, not raised.
    """
    refuse_standin(request.built, allow=request.allow_standin)
    with _release_lock(request.registry, dry_run=request.dry_run) as lock:
        target = request.target or resolve_publish_target(request.config, request.regions)
        with (interrupts or _no_interrupts)() as interrupt:
            return _run_locked(request, target, observer, interrupt, lock)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[threading.Event]:
    yield threading.Event()


def _run_locked(
    request: ReleaseRequest,
    target: PublishTarget,
    observer: ReleaseObserver,
    interrupt: threading.Event,
    lock: RegistryLock | None,
) -> ReleaseOutcome:
    from layer_builder.publish.fanout import plan_publish, publish_all
    from layer_builder.publish.records import registry_records
    from layer_builder.registry.files import preflight_release

    cfg, built, registry = request.config, list(request.built), request.registry
    check_version_scheme(cfg, request.version)
    # Before any AWS write: the registry's files parse, it can be written (not for a dry
    # run), and what it records for this release agrees with these zips.
    state = preflight_release(
        registry, cfg.registry.runtime_dir, request.version.text, writable=not request.dry_run
    )
    records = registry_records(state, built, target.account)
    options = PublishOptions.resolve(cfg, workers=request.workers)
    observer.publishing(request, target, options.max_workers)
    with observer.region_progress(len(target.regions) * len(built)) as progress:
        plans = plan_publish(cfg, request.version, built, target)
        result = publish_all(
            plans,
            target,
            options,
            dry_run=request.dry_run,
            progress=progress,
            records=records,
            interrupt=interrupt,
        )
    observer.published(result)
    # Interrupted is interrupted, whatever got done and with allow_partial too: the
    # registry is not written and latest.json does not move; the same command finishes.
    interrupted = interrupt.is_set()
    written, created = None, False
    if not interrupted and not request.dry_run and (result.complete or request.allow_partial):
        created = not registry.exists()
        written = _write_registry(request, target, result, lock)
    return ReleaseOutcome(result, target, written, created, interrupted)


def _write_registry(
    request: ReleaseRequest, target: PublishTarget, result: PublishResult, lock: RegistryLock | None
) -> WriteResult:
    from layer_builder.build.sbom import release_sbom
    from layer_builder.model import Registration
    from layer_builder.provenance import with_attestation
    from layer_builder.registry.writer import write_release

    cfg, version = request.config, request.version
    manifests = [m for _, m in request.built]
    layers = sorted(result.layers(manifests), key=lambda layer: layer.architectures[0] != "x86_64")
    bom, packages = release_sbom(cfg.family, manifests)
    built_by = next((m.provenance for m in manifests if m.provenance), None)
    reg = Registration(
        runtime_dir=cfg.registry.runtime_dir,
        canonical=cfg.canonical,
        version=version,
        sdk_version=cfg.sdk_version(version),
        account_number=target.account,
        compatible_runtimes=cfg.compatible_runtimes,
        layers=tuple(layers),
        link_prereleases=cfg.registry.link_prereleases,
        layout=cfg.layout,
        base_defaults=dict(cfg.registry.base),
        sbom=bom,
        packages=packages,
        provenance=with_attestation(built_by, request.attestation),
    )
    return write_release(
        request.registry,
        reg,
        expected_regions=list(target.regions),
        allow_partial_regions=request.allow_partial,
        lock=lock,
    )


def check_version_scheme(cfg: LayerConfig, version: ReleaseVersion) -> None:
    """The registry orders a layer's releases by its ecosystem's scheme (PEP 440 for
    Python, SemVer for Node): a version that scheme cannot read is refused before publishing,
    not when the links are written."""
    scheme = scheme_for_runtimes(cfg.compatible_runtimes)
    try:
        version_key(version.text, scheme)
    except ArgumentError as exc:
        raise ArgumentError(
            f"--version: {exc}, the version order of {cfg.path}'s layer (runtimes "
            f"{', '.join(cfg.compatible_runtimes)}); nothing was published"
        ) from None
