"""`build` and `verify`: the release's reproducible zips (universal: one; per-arch: one per
architecture), and their static checks."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from layer_builder.build.assemble import BuiltLayer, build_release, plan_extension
from layer_builder.build.verify import VerifyReport, verify_zip
from layer_builder.build.zipper import resolve_source_date_epoch
from layer_builder.cli.output import UI, mb
from layer_builder.config import LayerConfig, load_config
from layer_builder.model import ReleaseVersion

# ------------------------------------------------------------------------------- build


def build_layers(
    cfg: LayerConfig,
    version: ReleaseVersion,
    archs: tuple[str, ...],
    out: Path,
    extension_files: list[str],
    ui: UI,
    *,
    extension_manifest: Path | None = None,
    explicit_archs: bool = False,
) -> list[BuiltLayer]:
    """Build the release's layers: one universal zip, or one per architecture (per-arch).

    ``explicit_archs``: ``archs`` came from ``--arch``, so an architecture the extension has
    no binary for is an error instead of being left out with a line saying so.
    """
    from layer_builder.build.extension import parse_extension_file_args

    overrides = parse_extension_file_args(extension_files, archs)
    # Resolved once, before any install: a bad SOURCE_DATE_EPOCH costs nothing, and every
    # layer gets the same timestamp.
    epoch = resolve_source_date_epoch()
    # Every architecture's extension first: a missing pin or a wrong binary fails in seconds,
    # before any install, and before anything is written.
    with ui.status(f"extension for {', '.join(archs)}"):
        plan = plan_extension(
            cfg,
            archs,
            overrides=overrides,
            extension_manifest=extension_manifest,
            explicit=explicit_archs,
        )
    for arch, why in plan.skipped:
        served = ", ".join(plan.architectures)
        what = f"{cfg.layer_name(version)} serves {served} only" if cfg.universal else (
            f"no {arch} layer is built")  # fmt: skip
        ui.note(f"{arch}: left out: {why}; {what}")
    out.mkdir(parents=True, exist_ok=True)
    # Build into a staging directory and move the zips into place only when every layer
    # built and verified: a failure never replaces an earlier good zip.
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=out) as staging_dir:
        staging = Path(staging_dir)
        served = ", ".join(plan.architectures)
        what = (
            f"{cfg.layer_name(version)} {version.text} ({served})"
            if cfg.universal
            else f"{cfg.path.stem} {version.text} per architecture ({served})"
        )
        with ui.status(f"building {what}"):
            staged = build_release(cfg, version, plan, staging, epoch=epoch, progress=ui.info)
        # Every zip gets the same static checks `verify` runs, before anyone publishes it.
        for layer in staged:
            verify_zip(layer.zip_path)
        built = []
        for layer in staged:
            zip_path, manifest_path = out / layer.zip_path.name, out / layer.manifest_path.name
            os.replace(layer.zip_path, zip_path)
            os.replace(layer.manifest_path, manifest_path)
            built.append(dataclasses.replace(layer, zip_path=zip_path, manifest_path=manifest_path))
    return built


def build_table(ui: UI, built: list[BuiltLayer]) -> None:
    rows = []
    for b in built:
        m = b.manifest
        ext = (
            ", ".join(sorted({f"{e.name} {e.version}" for e in m.extensions}))
            if m.extensions
            else "-"
        )
        rows.append(
            [
                ", ".join(m.architectures),
                m.layer_name,
                str(b.zip_path),
                mb(m.zip_size),
                mb(m.unzipped_size),
                mb(b.room_left),
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
    built = build_layers(
        cfg, version, archs, Path(args.out), args.extension_file, ui, explicit_archs=bool(args.arch)
    )
    if args.json:
        ui.emit_json(
            {
                "layers": [
                    {"zip": str(b.zip_path), "manifest": str(b.manifest_path), **asdict(b.manifest)}
                    for b in built
                ]
            }
        )
    build_table(ui, built)
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
                        "architectures": list(r.architectures),
                        "layout": r.layout,
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
            f"ok  {r.path}: {r.family} layer, "
            f"{', '.join(r.architectures) or 'architecture unchecked'}"
            f"{' (universal)' if r.layout == 'universal' else ''}, "
            f"{r.file_count:,} files, {mb(r.zip_size)} zipped, {mb(r.unzipped_size)} unzipped "
            f"({mb(r.room_left)} left for function code), {len(r.elf_files)} ELF files checked"
        )
        for note in r.notes:
            ui.info(f"    note: {note}")
    return 0


# ----------------------------------------------------------------------------- publish
