"""`build` and `verify`: the release's reproducible zips (universal: one; per-arch: one per
architecture), and their static checks."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from layer_builder.build.assemble import BuiltLayer, build_release, plan_extension
from layer_builder.build.lock import LockMode, for_build
from layer_builder.build.verify import VerifyError, VerifyReport, verify_zip
from layer_builder.build.zipper import resolve_source_date_epoch
from layer_builder.cli.output import UI, mb
from layer_builder.cli.paths import check_output_dir, output_dir
from layer_builder.config import LayerConfig, load_config
from layer_builder.errors import ArtifactError
from layer_builder.model import ReleaseVersion
from layer_builder.provenance import provenance_from_env

# ------------------------------------------------------------------------------- build


def lock_mode(args: argparse.Namespace) -> LockMode:
    """``--locked`` / ``--no-lock`` / neither, as a lock mode."""
    if getattr(args, "locked", False):
        return "require"
    return "off" if getattr(args, "no_lock", False) else "auto"


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
    lock_mode: LockMode = "auto",
) -> list[BuiltLayer]:
    """Build the release's layers: one universal zip, or one per architecture (per-arch).

    ``explicit_archs``: ``archs`` came from ``--arch``, so an architecture the extension has
    no binary for is an error instead of being left out with a line saying so.
    """
    from layer_builder.build.extension import parse_extension_file_args

    # The arguments first (nothing touched), then --out must be (or become) a writable
    # directory (probed by creating a file there): both before minutes of work.
    overrides = parse_extension_file_args(extension_files, archs)
    # The lock is read before anything is touched: a stale one is exit 2 in a second.
    lock = for_build(cfg, version, lock_mode)
    provenance_from_env(os.environ)  # malformed GITHUB_* variables: exit 2 before any install
    check_output_dir(out, "--out")
    if lock is None and lock_mode != "off" and cfg.sdk.source != "path":
        ui.note(
            f"{cfg.path}: no lock file; dependencies resolved afresh (see `layer-builder lock`)"
        )
    # Resolved once, before any install: a bad SOURCE_DATE_EPOCH costs nothing, and every
    # layer gets the same timestamp.
    epoch = resolve_source_date_epoch()
    # Every architecture's extension first: a missing pin or a wrong binary fails in seconds,
    # before any install, and before anything is written.
    what = ", ".join(f"--extension-file {p}" for p in overrides.values()) or "downloading"
    with ui.status(
        f"checking the extension binaries for {', '.join(archs)} ({what}; sha256, ELF type)"
    ):
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
    # Build into a staging directory and move the zips into place only when every layer
    # built and verified: a failure never replaces an earlier good zip (and removes --out
    # again if this build created it).
    with output_dir(out), tempfile.TemporaryDirectory(prefix=".staging-", dir=out) as staging_dir:
        staging = Path(staging_dir)
        served = ", ".join(plan.architectures)
        what = (
            f"{cfg.layer_name(version)} {version.text} ({served})"
            if cfg.universal
            else f"{cfg.path.stem} {version.text} per architecture ({served})"
        )
        with ui.status(f"building {what}"):
            staged = build_release(
                cfg, version, plan, staging, epoch=epoch, progress=ui.info, lock=lock
            )
        # Every zip gets the same static checks `verify` runs, before anyone publishes it.
        for layer in staged:
            started = time.monotonic()
            verify_zip(layer.zip_path)
            layer.phases["verify"] = time.monotonic() - started
        built = []
        for layer in staged:
            zip_path, manifest_path = out / layer.zip_path.name, out / layer.manifest_path.name
            os.replace(layer.zip_path, zip_path)
            os.replace(layer.manifest_path, manifest_path)
            built.append(dataclasses.replace(layer, zip_path=zip_path, manifest_path=manifest_path))
    return built


#: The build phases, in order, as `--json` (`phases`) and the summary report them.
PHASES = ("install", "assemble", "zip", "verify")


def phase_lines(built: list[BuiltLayer]) -> list[str]:
    """Lines under the table, per layer: its extension, and where the build's time went."""
    lines = []
    for b in built:
        m = b.manifest
        for name, version in sorted({(e.name, e.version) for e in m.extensions}):
            archs = ", ".join(e.architecture for e in m.extensions if e.name == name) or "-"
            lines.append(f"{m.layer_name}: extension {name} {version} ({archs})")
        with_code = [i.runtime for i in m.bytecode if i.compiled]
        without = [i.runtime for i in m.bytecode if not i.compiled]
        if m.bytecode:
            # Which runtimes start from bytecode; the fix for the others was said above.
            lines.append(
                f"{m.layer_name}: bytecode for {', '.join(with_code) or 'no runtime'}"
                + (f"; none for {', '.join(without)} (no interpreter)" if without else "")
            )
        spent = ", ".join(f"{phase} {b.phases[phase]:.1f}" for phase in PHASES if phase in b.phases)
        total = sum(b.phases.values())
        lines.append(f"{m.layer_name}: {total:.1f} s ({spent})")
    return lines


def build_table(ui: UI, built: list[BuiltLayer]) -> None:
    # One row per zip, narrow enough for a CI log: the directory is in the title, sizes in
    # MB, a sha256 prefix (the full one, the room left for code and the bundled packages
    # are in the manifest and --json).
    rows = []
    for b in built:
        m = b.manifest
        size = f"{m.zip_size / 1e6:.1f} / {m.unzipped_size / 1e6:.1f}"
        rows.append(
            [
                m.layer_name,
                ", ".join(m.architectures),
                b.zip_path.name,
                size + (" S3" if m.needs_s3_upload else ""),
                m.sha256[:12],
            ]
        )
    where = {str(b.zip_path.parent) for b in built}
    ui.table(
        f"built layers in {', '.join(sorted(where))}",
        ["layer", "arch", "zip", "MB zip / unzip", "sha256"],
        rows,
        right=("MB zip / unzip",),
        elastic=("zip", "layer"),
    )


def cmd_build(args: argparse.Namespace, ui: UI) -> int:
    cfg = load_config(args.config)
    version = ReleaseVersion.parse(args.release_version)
    archs = cfg.select_architectures(args.arch)
    built = build_layers(
        cfg,
        version,
        archs,
        Path(args.out),
        args.extension_file,
        ui,
        explicit_archs=bool(args.arch),
        lock_mode=lock_mode(args),
    )
    if args.json:
        ui.emit_json(
            {
                "layers": [
                    {
                        "zip": str(b.zip_path),
                        "manifest": str(b.manifest_path),
                        **asdict(b.manifest),
                        # Wall seconds per phase: install, assemble, zip, verify.
                        "phases": {phase: round(s, 3) for phase, s in b.phases.items()},
                    }
                    for b in built
                ]
            }
        )
    build_table(ui, built)
    for line in phase_lines(built):
        ui.info(line)
    return 0


# ------------------------------------------------------------------------------ verify


def cmd_verify(args: argparse.Namespace, ui: UI) -> int:
    # Every zip is checked and every problem reported (each its own `error:` line), so one
    # run shows everything there is to fix.
    reports: list[VerifyReport] = []
    failures: list[ArtifactError] = []
    entries: list[dict[str, object]] = []
    for z in args.zips:
        try:
            r = verify_zip(Path(z), arch=args.arch)
        except ArtifactError as exc:
            failures.append(exc)
            problems = (
                [{"severity": p.severity.name.lower(), "message": p.message} for p in exc.problems]
                if isinstance(exc, VerifyError)
                else [{"severity": "refused", "message": str(exc)}]
            )
            entries.append({"path": z, "ok": False, "problems": problems})
            continue
        reports.append(r)
        entries.append(
            {
                "path": str(r.path),
                "ok": True,
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
        )
    if args.json:
        ui.emit_json({"ok": not failures, "zips": entries})
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
    if failures:
        raise ArtifactError("\n".join(str(exc) for exc in failures))
    return 0


# ----------------------------------------------------------------------------- publish
