"""What each CLI command does, in terms of the library. Called only from cli.main."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from layer_builder.build.assemble import (
    BuiltLayer,
    build_layer,
    manifest_path_for,
    resolve_layer_extension,
)
from layer_builder.build.verify import VerifyReport, verify_zip
from layer_builder.build.zipper import resolve_source_date_epoch
from layer_builder.config import LayerConfig, load_config
from layer_builder.errors import ArgumentError, PublishIncomplete
from layer_builder.model import BuildManifest, PublishResult, Registration, ReleaseVersion
from layer_builder.ui import UI


def dispatch(args: argparse.Namespace, ui: UI) -> int:
    handlers = {
        "build": cmd_build,
        "verify": cmd_verify,
        "publish": cmd_publish,
        "release": cmd_release,
        "registry": cmd_registry,
        "extension": cmd_extension,
    }
    return handlers[args.command](args, ui)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ------------------------------------------------------------------------------- build


def _build(
    cfg: LayerConfig,
    version: ReleaseVersion,
    archs: tuple[str, ...],
    out: Path,
    extension_files: list[str],
    ui: UI,
    *,
    extension_manifest: Path | None = None,
) -> list[BuiltLayer]:
    from layer_builder.build.extension import parse_extension_file_args

    overrides = parse_extension_file_args(extension_files, archs)
    # Resolved once, before any install: a bad SOURCE_DATE_EPOCH costs nothing, and every
    # architecture gets the same timestamp.
    epoch = resolve_source_date_epoch()
    # Every architecture's extension first: a missing pin or a wrong binary fails in seconds,
    # before any install, and before anything is written.
    extensions = {}
    for arch in archs:
        with ui.status(f"{arch}: extension"):
            extensions[arch] = resolve_layer_extension(
                cfg, arch, extension_file=overrides.get(arch), extension_manifest=extension_manifest
            )
    out.mkdir(parents=True, exist_ok=True)
    # Build into a staging directory and move the zips into place only when every
    # architecture built and verified: a failure never replaces an earlier good zip.
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=out) as staging_dir:
        staging = Path(staging_dir)
        staged = []
        for arch in archs:
            with ui.status(f"building {cfg.layer_name(version, arch)} {version.text} ({arch})"):
                layer = build_layer(
                    cfg,
                    version,
                    arch,
                    staging,
                    extension=extensions[arch],
                    epoch=epoch,
                    progress=ui.info,
                )
            # Every zip gets the same static checks `verify` runs, before anyone publishes it.
            verify_zip(layer.zip_path, arch=arch)
            staged.append(layer)
        built = []
        for layer in staged:
            zip_path, manifest_path = out / layer.zip_path.name, out / layer.manifest_path.name
            os.replace(layer.zip_path, zip_path)
            os.replace(layer.manifest_path, manifest_path)
            built.append(dataclasses.replace(layer, zip_path=zip_path, manifest_path=manifest_path))
    return built


def _build_table(ui: UI, built: list[BuiltLayer]) -> None:
    rows = []
    for b in built:
        m = b.manifest
        ext = f"{m.extension.name} {m.extension.version}" if m.extension else "-"
        rows.append(
            [
                m.architecture,
                m.layer_name,
                str(b.zip_path),
                _mb(m.zip_size),
                _mb(m.unzipped_size),
                _mb(b.room_left),
                m.sha256[:16],
                ext,
                "S3" if m.needs_s3_upload else "direct",
                f"{b.seconds:.1f}s",
            ]
        )
    ui.table(
        "built layers",
        [
            "arch",
            "layer",
            "zip",
            "zipped",
            "unzipped",
            "room left for code",
            "sha256",
            "extension",
            "upload",
            "time",
        ],
        rows,
    )


def cmd_build(args: argparse.Namespace, ui: UI) -> int:
    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    archs = cfg.select_architectures(args.arch)
    built = _build(cfg, version, archs, Path(args.out), args.extension_file, ui)
    if args.json:
        ui.emit_json(
            {
                "layers": [
                    {"zip": str(b.zip_path), "manifest": str(b.manifest_path), **asdict(b.manifest)}
                    for b in built
                ]
            }
        )
    _build_table(ui, built)
    return 0


# ------------------------------------------------------------------------------ verify


def cmd_verify(args: argparse.Namespace, ui: UI) -> int:
    reports: list[VerifyReport] = [verify_zip(Path(z), arch=args.arch) for z in args.zips]
    if args.json:
        ui.emit_json(
            {
                "ok": True,
                "zips": [
                    {
                        "path": str(r.path),
                        "architecture": r.architecture,
                        "family": r.family,
                        "file_count": r.file_count,
                        "zip_size": r.zip_size,
                        "unzipped_size": r.unzipped_size,
                        "room_left": r.room_left,
                        "sha256": r.sha256,
                        "code_sha256": r.code_sha256,
                        "needs_s3_upload": r.needs_s3_upload,
                        "elf_files": list(r.elf_files),
                        "notes": list(r.notes),
                    }
                    for r in reports
                ],
            }
        )
    for r in reports:
        ui.info(
            f"ok  {r.path}: {r.family} layer, {r.architecture or 'architecture unchecked'}, "
            f"{r.file_count:,} files, {_mb(r.zip_size)} zipped, {_mb(r.unzipped_size)} unzipped "
            f"({_mb(r.room_left)} left for function code), {len(r.elf_files)} ELF files checked"
        )
        for note in r.notes:
            ui.info(f"    note: {note}")
    return 0


# ----------------------------------------------------------------------------- publish


def _load_built(
    cfg: LayerConfig, version: ReleaseVersion, archs: tuple[str, ...], dist: Path
) -> list[tuple[Path, BuildManifest]]:
    out = []
    for arch in archs:
        mpath = manifest_path_for(dist, cfg, version, arch)
        manifest = BuildManifest.load(mpath)
        if manifest.version != version.text or manifest.architecture != arch:
            raise ArgumentError(
                f"{mpath}: built for {manifest.version} {manifest.architecture}, "
                f"not {version.text} {arch}"
            )
        verify_zip(manifest.zip_path(mpath), arch=arch)
        out.append((mpath, manifest))
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
    from layer_builder.publish.fanout import publish_all
    from layer_builder.registry import write_release

    account, partition, regions = target
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
        )
    _result_table(ui, result)
    registry_info: dict[str, Any] | None = None
    if not args.dry_run and (result.complete or args.allow_partial):
        manifests = [m for _, m in built]
        layers = sorted(result.layers(manifests), key=lambda layer: layer.architecture != "x86_64")
        reg = Registration(
            runtime_dir=cfg.registry.runtime_dir,
            canonical=cfg.canonical,
            version=version,
            sdk_version=cfg.sdk_version(version),
            account_number=account,
            compatible_runtimes=cfg.compatible_runtimes,
            layers=tuple(layers),
            link_prereleases=cfg.registry.link_prereleases,
            base_defaults=dict(cfg.registry.base),
        )
        written = write_release(
            registry_dir, reg, expected_regions=regions, allow_partial_regions=args.allow_partial
        )
        registry_info = {"root": str(registry_dir), **written.to_dict()}
        ui.info(
            f"registry written: {registry_dir}/aws-lambda-layers/{cfg.registry.runtime_dir}/"
            f"{version.text}.json"
        )
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
                "failed": [f"{r.region}/{r.architecture}" for r in result.failed],
                "results": [asdict(r) for r in result.results],
                "registry": registry_info,
            }
        )
    if not result.complete:
        # The reasons are in the table (and --json); the error line names what to re-run.
        raise PublishIncomplete([f"{r.region} ({r.architecture})" for r in result.failed])
    return 0


def _result_table(ui: UI, result: PublishResult) -> None:
    rows = [
        [
            r.region,
            r.architecture,
            r.version if r.version is not None else "-",
            r.status,
            r.arn or (r.error or "-"),
            f"{r.seconds:.1f}",
        ]
        for r in result.results
    ]
    ui.table(
        "dry run: nothing was published" if result.dry_run else "published layers",
        ["region", "arch", "version", "status", "ARN / error", "seconds"],
        rows,
    )
    counts: dict[str, int] = {}
    for r in result.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    ui.info(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


def _target(cfg: LayerConfig, regions_arg: str | None) -> tuple[str, str, list[str]]:
    from layer_builder.publish.regions import parse_regions_arg, resolve_target

    requested = cfg.publish.regions if regions_arg is None else parse_regions_arg(regions_arg)
    return resolve_target(requested, cfg.publish.exclude_regions)


def cmd_publish(args: argparse.Namespace, ui: UI) -> int:
    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    archs = cfg.select_architectures(args.arch)
    built = _load_built(cfg, version, archs, Path(args.dist))
    target = _target(cfg, args.regions)
    return publish_and_register(
        cfg, version, built, args, ui, registry_dir=Path(args.registry or "registry"), target=target
    )


@contextlib.contextmanager
def _sandbox(ui: UI, own_extension: bool) -> Iterator[Path]:
    from layer_builder.sandbox import sandbox_aws
    from layer_builder.standin import serve_standin

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
    registry_dir = Path(args.registry or ("sandbox/registry" if args.sandbox else "registry"))
    with contextlib.ExitStack() as stack:
        standin = (
            stack.enter_context(_sandbox(ui, bool(args.extension_file))) if args.sandbox else None
        )
        # Credentials and regions first: a missing credential should cost seconds, not a build.
        target = _target(cfg, args.regions)
        built_layers = _build(
            cfg, version, archs, out, args.extension_file, ui, extension_manifest=standin
        )
        _build_table(ui, built_layers)
        built = [(b.manifest_path, b.manifest) for b in built_layers]
        code = publish_and_register(
            cfg, version, built, args, ui, registry_dir=registry_dir, target=target
        )
        if args.sandbox and not args.dry_run:
            ui.note(
                f"SANDBOX: release complete. Registry: {registry_dir.resolve()} "
                f"(try: layer-builder registry show {cfg.canonical} --registry {registry_dir})"
            )
        return code


# ---------------------------------------------------------------------------- registry


def _registry_client(location: str | None) -> Any:
    from layer_builder.registry_client import RegistryClient

    return RegistryClient(location or "registry")


def cmd_registry(args: argparse.Namespace, ui: UI) -> int:
    client = _registry_client(args.registry)
    if args.registry_command == "latest":
        arn = client.layer_arn(args.canonical, args.region, args.arch)
        if args.json:
            ui.emit_json(
                {"canonical": args.canonical, "region": args.region, "arch": args.arch, "arn": arn}
            )
        else:
            print(arn)
        return 0
    doc = client.document(args.canonical) if args.canonical else client.index()
    ui.emit_json(doc)
    return 0


# --------------------------------------------------------------------------- extension


def cmd_extension(args: argparse.Namespace, ui: UI) -> int:
    from layer_builder.build.extension import pin

    pins = pin(Path(args.manifest), args.ext_version)
    if args.json:
        ui.emit_json({"manifest": args.manifest, "sha256": pins})
    for arch, sha in sorted(pins.items()):
        ui.info(f"{arch}: sha256 {sha}")
    ui.info(f"pinned in {args.manifest}")
    return 0
