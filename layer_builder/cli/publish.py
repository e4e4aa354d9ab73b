"""`publish` and `release`: publish built zips to every region and write the registry.

The flow: refuse stand-in zips outside the sandbox; take the registry lock; check the
registry and read what it records for this release (a rebuilt zip is refused here); plan
and publish per region; print what was done; write the registry. SIGINT/SIGTERM stop
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
from layer_builder.cli.paths import check_input_dir, check_output_dir
from layer_builder.config import LayerConfig, load_config
from layer_builder.errors import ArgumentError, ArtifactError, Interrupted, PublishIncomplete
from layer_builder.model import BuildManifest, PublishResult, Registration, ReleaseVersion


def _load_built(
    cfg: LayerConfig,
    version: ReleaseVersion,
    archs: tuple[str, ...],
    dist: Path,
    args: argparse.Namespace | None = None,
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
    if args is not None:
        refuse_standin(out, args)  # what the manifest says comes before any zip check
    for mpath, manifest in out:
        verify_zip(manifest.zip_path(mpath))
    return out


def publish_and_register(
    cfg: LayerConfig,
    version: ReleaseVersion,
    built: list[tuple[Path, BuildManifest]],
    args: argparse.Namespace,
    ui: UI,
    *,
    registry_dir: Path,
    target: tuple[str, str, list[str]],
) -> int:
    refuse_standin(built, args)
    with _registry_lock(args, registry_dir), _interrupts() as interrupt:
        return _publish_locked(
            cfg, version, built, args, ui, registry_dir=registry_dir, target=target,
            interrupt=interrupt,
        )  # fmt: skip


def refuse_standin(built: list[tuple[Path, BuildManifest]], args: argparse.Namespace) -> None:
    """A zip carrying the sandbox's stand-in extension never reaches AWS by accident."""
    from layer_builder.publish.plan import standin_source

    if getattr(args, "sandbox", False) or getattr(args, "allow_standin", False):
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


def _publish_locked(
    cfg: LayerConfig,
    version: ReleaseVersion,
    built: list[tuple[Path, BuildManifest]],
    args: argparse.Namespace,
    ui: UI,
    *,
    registry_dir: Path,
    target: tuple[str, str, list[str]],
    interrupt: threading.Event,
) -> int:
    from layer_builder.build.sbom import release_sbom
    from layer_builder.provenance import with_attestation
    from layer_builder.publish.fanout import publish_all
    from layer_builder.publish.plan import registry_records
    from layer_builder.registry.files import preflight_release
    from layer_builder.registry.writer import write_release

    account, partition, regions = target
    _check_version_scheme(cfg, version)
    if not args.dry_run:
        # A registry that cannot be written is found before anything is published.
        check_output_dir(registry_dir, "--registry")
    # Before any AWS write: the registry's files parse, and what it records for this
    # release agrees with these zips.
    state = preflight_release(
        registry_dir, cfg.registry.runtime_dir, version.text, writable=not args.dry_run
    )
    records = registry_records(state, built, account)
    workers = args.workers if args.workers is not None else cfg.publish.max_workers
    total = len(regions) * len(built)
    verb = "planning" if args.dry_run else "publishing"
    ui.info(
        f"{verb} {len(built)} layer(s) to {len(regions)} region(s) of partition {partition} "
        f"as account {account} ({workers} at a time)"
    )
    with ui.region_progress(total) as progress:
        result = publish_all(
            cfg,
            version,
            built,
            regions,
            account=account,
            partition=partition,
            dry_run=args.dry_run,
            max_workers=workers,
            progress=progress,
            records=records,
            interrupt=interrupt,
        )
    _result_table(ui, result)
    # Interrupted is interrupted, whatever got done and with --allow-partial too: the
    # registry is not written and latest.json does not move; the same command finishes.
    interrupted = interrupt.is_set()
    registry_info: dict[str, Any] | None = None
    if interrupted:
        ui.info("registry not written: interrupted")
    elif not args.dry_run and (result.complete or args.allow_partial):
        manifests = [m for _, m in built]
        layers = sorted(
            result.layers(manifests), key=lambda layer: layer.architectures[0] != "x86_64"
        )
        bom, packages = release_sbom(cfg.family, manifests)
        built_by = next((m.provenance for m in manifests if m.provenance), None)
        reg = Registration(
            runtime_dir=cfg.registry.runtime_dir,
            canonical=cfg.canonical,
            version=version,
            sdk_version=cfg.sdk_version(version),
            account_number=account,
            compatible_runtimes=cfg.compatible_runtimes,
            layers=tuple(layers),
            link_prereleases=cfg.registry.link_prereleases,
            layout=cfg.layout,
            base_defaults=dict(cfg.registry.base),
            sbom=bom,
            packages=packages,
            provenance=with_attestation(built_by, getattr(args, "attestation", None)),
        )
        created = not registry_dir.exists()
        written = write_release(
            registry_dir, reg, expected_regions=regions, allow_partial_regions=args.allow_partial
        )
        registry_info = {"root": str(registry_dir), **written.to_dict()}
        ui.registry_outcome(registry_dir, written.version_file, written.written, created=created)
    elif not args.dry_run:
        ui.info(
            f"registry not written: {len(result.failed)} region(s) failed "
            "(use --allow-partial to record the regions that succeeded)"
        )
    if args.json:
        ui.emit_json(
            {
                "complete": result.complete,
                "dry_run": result.dry_run,
                "account": result.account,
                "partition": result.partition,
                "failed": [f"{r.region}/{r.layer_name}" for r in result.failed],
                "results": [asdict(r) for r in result.results],
                "registry": registry_info,
                "interrupted": interrupted,
            }
        )
    if interrupted:
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


def _check_version_scheme(cfg: LayerConfig, version: ReleaseVersion) -> None:
    """The registry orders a layer's releases by its ecosystem's scheme (PEP 440 for
    Python, SemVer for Node): a version that scheme cannot read is refused before publishing,
    not when the links are written."""
    from layer_builder.registry.versions import scheme_for_runtimes, version_key

    scheme = scheme_for_runtimes(cfg.compatible_runtimes)
    try:
        version_key(version.text, scheme)
    except ArgumentError as exc:
        raise ArgumentError(
            f"--version: {exc}, the version order of {cfg.path}'s layer (runtimes "
            f"{', '.join(cfg.compatible_runtimes)}); nothing was published"
        ) from None


def _result_table(ui: UI, result: PublishResult) -> None:
    ui.publish_summary(result)
    # The per-region plan: every region in a dry run; otherwise the regions where more
    # happened than publish-or-reuse (permissions changed, duplicates deleted).
    for r in result.results:
        notable = [a for a in r.actions if not a.startswith(("published ", "reuse ", "added "))]
        if r.ok and (result.dry_run or notable):
            ui.info(f"{'plan' if result.dry_run else 'done'}: {r.region} {r.layer_name}: "
                    f"{'; '.join(r.actions)}")  # fmt: skip


def resolve_publish_target(cfg: LayerConfig, regions_arg: str | None) -> tuple[str, str, list[str]]:
    from layer_builder.publish.regions import parse_regions_arg, resolve_target

    requested = cfg.publish.regions if regions_arg is None else parse_regions_arg(regions_arg)
    return resolve_target(requested, cfg.publish.exclude_regions)


def cmd_publish(args: argparse.Namespace, ui: UI) -> int:
    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    archs = cfg.select_architectures(args.arch)
    check_input_dir(Path(args.dist), "--dist")
    built = _load_built(cfg, version, archs, Path(args.dist), args)
    registry_dir = Path(args.registry or "registry")
    # The lock before the first AWS call: a second run on this registry waits (or gives up,
    # exit 2) before it asks AWS anything; publish_and_register re-enters it.
    with _registry_lock(args, registry_dir):
        target = resolve_publish_target(cfg, args.regions)
        return publish_and_register(
            cfg, version, built, args, ui, registry_dir=registry_dir, target=target
        )


def _registry_lock(
    args: argparse.Namespace, registry_dir: Path
) -> contextlib.AbstractContextManager[None]:
    from layer_builder.registry.files import registry_lock

    # A dry run writes nothing, so it neither waits for nor blocks another run.
    return contextlib.nullcontext() if args.dry_run else registry_lock(registry_dir)


@contextlib.contextmanager
def _sandbox(ui: UI, own_extension: bool) -> Iterator[Path]:
    from layer_builder.sandbox.emulator import sandbox_aws
    from layer_builder.sandbox.standin import serve_standin

    with sandbox_aws() as info, serve_standin() as standin_manifest:
        ui.note(
            f"SANDBOX: AWS is emulated by moto on {info.endpoint} with fake credentials; "
            "nothing reaches AWS."
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
    registry_dir = Path(args.registry or ("sandbox/registry" if args.sandbox else "registry"))
    if not args.dry_run:
        # A registry that cannot be written should cost seconds, not a build and a smoke test;
        # publish_and_register checks it again, under the lock, before any AWS write.
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
        code = publish_and_register(
            cfg, version, built, args, ui, registry_dir=registry_dir, target=target
        )
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
