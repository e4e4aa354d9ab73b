"""`publish` and `release`: the command line of :mod:`layer_builder.publish.release`.

Arguments become a :class:`ReleaseRequest` (the zips: loaded from ``--dist`` or built,
smoke-tested and loaded); :func:`run_release` does the release (stand-in refusal, lock,
preflight, publish, registry); its progress and :class:`ReleaseOutcome` become output and
an exit code here. SIGINT/SIGTERM stop
starting work, let the calls in flight finish briefly, print what is done and what is
not, and exit 130.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from layer_builder.build.assemble import manifest_paths_for
from layer_builder.build.verify import verify_zip
from layer_builder.cli.build import build_layers, build_table, lock_mode, phase_lines
from layer_builder.cli.output import UI, failed_lines
from layer_builder.cli.paths import (
    DEFAULT_REGISTRY,
    SANDBOX_REGISTRY,
    check_input_dir,
    check_not_a_broken_link,
    check_output_dir,
)
from layer_builder.config import LayerConfig, load_config
from layer_builder.errors import ArgumentError, Interrupted, PublishIncomplete
from layer_builder.model import BuildManifest, PublishResult, ReleaseVersion
from layer_builder.publish.release import (
    ReleaseOutcome,
    ReleaseRequest,
    refuse_standin,
    run_release,
)
from layer_builder.publish.target import PublishTarget, resolve_publish_target


def _load_built(
    cfg: LayerConfig,
    version: ReleaseVersion,
    archs: tuple[str, ...],
    dist: Path,
    *,
    allow_standin: bool,
) -> list[tuple[Path, BuildManifest]]:
    out: list[tuple[Path, BuildManifest]] = []
    for mpath in manifest_paths_for(dist, cfg, version, archs):
        manifest = BuildManifest.load(mpath)
        # Universal: the zip serves what it was built for; per-arch: one manifest per arch.
        wanted = manifest.architectures if cfg.universal else (archs[len(out)],)
        if manifest.version != version.text or manifest.architectures != wanted:
            raise ArgumentError(
                f"{mpath}: built for {manifest.version} {', '.join(manifest.architectures)}, "
                f"not {version.text} {', '.join(wanted)}"
            )
        out.append((mpath, manifest))
    refuse_standin(out, allow=allow_standin)  # what the manifest says comes before any zip check
    for mpath, manifest in out:
        verify_zip(manifest.zip_path(mpath))
    return out


def release_request(
    cfg: LayerConfig,
    version: ReleaseVersion,
    built: list[tuple[Path, BuildManifest]],
    args: argparse.Namespace,
    *,
    registry_dir: Path,
    target: PublishTarget | None = None,
    allow_standin: bool,
    attestation: str | None = None,
) -> ReleaseRequest:
    """The release the arguments of ``publish``, ``release`` or ``craft publish`` ask for
    (the options all three have come from ``args``)."""
    return ReleaseRequest(
        config=cfg,
        version=version,
        built=tuple(built),
        registry=registry_dir,
        target=target,
        regions=None if target is not None else args.regions,
        dry_run=args.dry_run,
        allow_partial=args.allow_partial,
        allow_standin=allow_standin,
        workers=args.workers,
        attestation=attestation,
    )


def publish_and_register(request: ReleaseRequest, ui: UI, *, json: bool) -> int:
    """Run the release with its output; exit 0, or raise Interrupted / PublishIncomplete."""
    outcome = run_release(request, _Observer(ui), interrupts=_interrupts)
    return _report(request, outcome, ui, json=json)


@contextlib.contextmanager
def _interrupts() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set an event instead of raising: publishing stops starting work and
    lets the calls in flight finish. A second Ctrl-C interrupts at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: object) -> None:
        event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Observer:
    """The release's progress on the terminal (or log): what starts, per region, the table."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui

    def publishing(self, request: ReleaseRequest, target: PublishTarget, workers: int) -> None:
        verb = "planning" if request.dry_run else "publishing"
        self.ui.info(
            f"{verb} {len(request.built)} layer(s) to {len(target.regions)} region(s) of "
            f"partition {target.partition} as account {target.account} ({workers} at a time)"
        )

    def region_progress(self, total: int) -> contextlib.AbstractContextManager[Any]:
        return self.ui.region_progress(total)

    def published(self, result: PublishResult) -> None:
        _result_table(self.ui, result)


def _report(request: ReleaseRequest, outcome: ReleaseOutcome, ui: UI, *, json: bool) -> int:
    """The outcome as output and an exit code (0, or Interrupted / PublishIncomplete)."""
    result, written = outcome.result, outcome.written
    registry_info: dict[str, Any] | None = None
    if outcome.interrupted:
        ui.info("registry not written: interrupted")
    elif written is not None:
        registry_info = {"root": str(request.registry), **written.to_dict()}
        ui.registry_outcome(
            request.registry, written.version_file, written.written, created=outcome.created
        )
    elif not request.dry_run:
        ui.info(
            f"registry not written: {len(result.failed)} region(s) failed "
            "(use --allow-partial to record the regions that succeeded)"
        )
    if json:
        ui.emit_json(
            {
                "complete": result.complete,
                "dry_run": result.dry_run,
                "account": result.account,
                "partition": result.partition,
                "failed": [f"{r.region}/{r.layer_name}" for r in result.failed],
                "results": [asdict(r) for r in result.results],
                "registry": registry_info,
                "interrupted": outcome.interrupted,
            }
        )
    if outcome.interrupted:
        done = [r for r in result.results if r.ok]
        raise Interrupted(
            [f"{r.region} ({r.layer_name})" for r in result.failed],
            f"interrupted: {len(done)} of {len(result.results)} done; not done: "
            + ("; ".join(failed_lines(result.failed)) or "the registry")
            + "; run the same command again to finish (nothing will be duplicated)",
        )
    if not result.complete:
        # The reasons are in the table (and --json); the error line names what to re-run.
        raise PublishIncomplete([f"{r.region} ({r.layer_name})" for r in result.failed])
    return 0


def _result_table(ui: UI, result: PublishResult) -> None:
    ui.publish_summary(result)
    # The per-region plan: every region in a dry run; otherwise the regions where more
    # happened than publish-or-reuse (permissions changed, duplicates deleted).
    for r in result.results:
        notable = [a for a in r.actions if not a.startswith(("published ", "reuse ", "added "))]
        if r.ok and (result.dry_run or notable):
            ui.info(f"{'plan' if result.dry_run else 'done'}: {r.region} {r.layer_name}: "
                    f"{'; '.join(r.actions)}")  # fmt: skip


def cmd_publish(args: argparse.Namespace, ui: UI) -> int:
    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    archs = cfg.select_architectures(args.arch)
    check_input_dir(Path(args.dist), "--dist")
    check_not_a_broken_link(Path(args.registry or DEFAULT_REGISTRY), "--registry")
    built = _load_built(cfg, version, archs, Path(args.dist), allow_standin=args.allow_standin)
    registry_dir = Path(args.registry or DEFAULT_REGISTRY)
    if not args.dry_run:
        check_output_dir(registry_dir, "--registry")
    # The release takes the registry lock before its first AWS call (the regions): a second
    # run on this registry waits (or gives up, exit 2) before it asks AWS anything.
    request = release_request(
        cfg, version, built, args, registry_dir=registry_dir,
        allow_standin=args.allow_standin, attestation=args.attestation,
    )  # fmt: skip
    return publish_and_register(request, ui, json=args.json)


@contextlib.contextmanager
def _sandbox(ui: UI, own_extension: bool) -> Iterator[Path]:
    from layer_builder.sandbox.emulator import sandbox_aws
    from layer_builder.sandbox.standin import serve_standin

    with sandbox_aws() as info, serve_standin() as standin_manifest:
        ui.note(
            # Under 100 columns, so that CI=true never wraps the label people grep for.
            f"SANDBOX: nothing reaches AWS: moto on {info.endpoint} emulates it, with fake "
            "credentials."
        )
        what = "architectures without --extension-file get" if own_extension else "the extension is"
        ui.note(
            f"SANDBOX: {what} a local STAND-IN (not Relay), served by a local stand-in for "
            "Sentry's release registry and verified against its pinned sha256."
        )
        yield standin_manifest


def cmd_release(args: argparse.Namespace, ui: UI) -> int:
    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    archs = cfg.select_architectures(args.arch)
    out = Path(args.out or ("sandbox/dist" if args.sandbox else "dist"))
    check_output_dir(out, "--out")
    registry_dir = Path(args.registry or (SANDBOX_REGISTRY if args.sandbox else DEFAULT_REGISTRY))
    check_not_a_broken_link(registry_dir, "--registry")
    if not args.dry_run:
        # A registry that cannot be written should cost seconds, not a build and a smoke test
        # (the release's preflight probes it again, under the lock, before any AWS write).
        check_output_dir(registry_dir, "--registry")
    earlier = (registry_dir / "aws-lambda-layers").is_dir()
    with contextlib.ExitStack() as stack:
        standin = (
            stack.enter_context(_sandbox(ui, bool(args.extension_file))) if args.sandbox else None
        )
        # Credentials and regions first: a missing credential should cost seconds, not a build.
        target = resolve_publish_target(cfg, args.regions)
        built_layers = build_layers(
            cfg,
            version,
            archs,
            out,
            args.extension_file,
            ui,
            extension_manifest=standin,
            explicit_archs=bool(args.arch),
            lock_mode=lock_mode(args),
        )
        build_table(ui, built_layers)
        for line in phase_lines(built_layers):
            ui.info(line)
        if not args.no_smoke:
            # The gate: a layer that does not run in an emulated Lambda is never published.
            from layer_builder.cli.smoke import smoke_gate

            smoke_gate([b.zip_path for b in built_layers], ui, verbose=args.verbose)
        built = [(b.manifest_path, b.manifest) for b in built_layers]
        request = release_request(
            cfg, version, built, args, registry_dir=registry_dir, target=target,
            allow_standin=args.sandbox or args.allow_standin, attestation=args.attestation,
        )  # fmt: skip
        code = publish_and_register(request, ui, json=args.json)
        if args.sandbox and not args.dry_run:
            ui.note(
                f"SANDBOX: release complete. Registry: {registry_dir.resolve()} "
                f"(try: layer-builder registry show {cfg.canonical} --registry {registry_dir})"
            )
            if earlier:
                ui.note(
                    "SANDBOX: the registry also keeps earlier sandbox releases; each sandbox run "
                    "starts a fresh emulated AWS, so their layer versions exist no more"
                )
        return code
