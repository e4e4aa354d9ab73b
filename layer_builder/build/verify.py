"""``layer-builder verify``: static checks of a built layer zip.

What a release engineer wants to know before publishing 30+ regions: the layout Lambda
expects (``python/`` or ``nodejs/`` at the root), the Python wrapper in place, the extension
launcher executable, every architecture's extension binary present, executable and built for
that architecture, every other ELF file in the layer for an architecture the layer serves, no
ELF file at all under ``python/`` or ``nodejs/`` of a universal layer, sizes within Lambda's
limits, no path that escapes ``/opt``, and the markers of a reproducible build.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build.zipcheck import ZipEntryInfo, inspect_zip
from layer_builder.elf import check_elf, detect_arch, read_elf_header
from layer_builder.errors import ArchitectureError, ArtifactError
from layer_builder.model import PER_ARCH, UNIVERSAL, BuildManifest, sort_architectures

WRAPPER = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"
EXTENSION_DIR = "extensions/"
EXTENSION_ENTRY = "extensions/sentry-lambda-extension"
SDK_DIRS = ("python/", "nodejs/")
_ALLOWED_MODES = (0o100644, 0o100755, 0o40755)


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    architectures: tuple[str, ...]  # the architectures checked; empty: unchecked
    layout: str | None  # None: no manifest and nothing to tell it by
    family: str
    file_count: int
    zip_size: int
    unzipped_size: int
    sha256: str
    code_sha256: str
    elf_files: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def architecture(self) -> str | None:
        """The one architecture of a per-arch layer (None for a universal or unchecked one)."""
        return self.architectures[0] if len(self.architectures) == 1 else None

    @property
    def room_left(self) -> int:
        return aws_facts.MAX_UNZIPPED_BYTES - self.unzipped_size

    @property
    def needs_s3_upload(self) -> bool:
        return self.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES


def _manifest_beside(path: Path) -> BuildManifest | None:
    mpath = path.with_name(path.name + ".json")
    return BuildManifest.load(mpath) if mpath.exists() else None


def neutrality_error(where: str, elves: list[str]) -> ArchitectureError:
    """Why a universal layer cannot hold ``elves`` (ELF files under python/ or nodejs/)."""
    shown = ", ".join(elves[:3]) + (f" and {len(elves) - 3} more" if len(elves) > 3 else "")
    return ArchitectureError(
        f"{where}: holds architecture-specific (ELF) files: {shown}; a universal layer serves "
        "every architecture from one python/ or nodejs/ tree, so an SDK with native code needs "
        "`layout: per-arch` in the layer config (one layer per architecture)"
    )


def _in_sdk_dir(name: str) -> bool:
    return name.startswith(SDK_DIRS)


def _is_executable(e: ZipEntryInfo) -> bool:
    return e.name.startswith(EXTENSION_DIR) or e.mode == 0o100755


def verify_zip(path: Path, *, arch: str | None = None) -> VerifyReport:
    """Check one layer zip; raise ArtifactError (exit 2) with the first reason it is unfit.

    ``arch``: an architecture the layer must serve. With a build manifest beside the zip the
    served architectures and the layout come from it; without one, a layer whose extension
    binaries are for several machines is taken as universal.
    """
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    inspection = inspect_zip(path)
    manifest = _manifest_beside(path)
    notes: list[str] = []
    archs: tuple[str, ...] = ()
    layout: str | None = None
    if manifest is not None:
        if manifest.sha256 != inspection.sha256:
            raise ArtifactError(
                f"{path}: sha256 {inspection.sha256[:12]}... differs from its build manifest "
                f"({manifest.sha256[:12]}...); the zip changed after it was built"
            )
        archs, layout = manifest.architectures, manifest.layout
        if arch is not None and arch not in archs:
            raise ArtifactError(f"{path}: built for {', '.join(archs)}, not {arch}")

    problems = inspection.problems()
    if problems:
        raise ArtifactError(f"{path}: {'; '.join(problems)}")

    names = {e.name: e for e in inspection.entries}
    roots = {n.split("/", 1)[0] for n in names}
    if "python" in roots:
        family = "python"
    elif "nodejs" in roots:
        family = "node"
    else:
        raise ArtifactError(
            f"{path}: neither python/ nor nodejs/ at the root; Lambda would not find the SDK"
        )
    has_sentry_sdk = any(n.startswith("python/sentry_sdk/") for n in names)
    if family == "python" and has_sentry_sdk and WRAPPER not in names:
        raise ArtifactError(f"{path}: the handler wrapper {WRAPPER} is missing")

    for e in inspection.entries:
        if e.mode not in _ALLOWED_MODES:
            raise ArtifactError(f"{path}: {e.name} has mode {oct(e.mode)}; expected 0644 or 0755")
        top_level_extension = (
            e.name.startswith(EXTENSION_DIR) and "/" not in e.name[len(EXTENSION_DIR) :]
        )
        if top_level_extension and not e.is_dir and e.mode != 0o100755:
            raise ArtifactError(
                f"{path}: {e.name} is not executable (mode 0755); Lambda would not start it"
            )
    if manifest is not None and manifest.extensions and EXTENSION_ENTRY not in names:
        raise ArtifactError(f"{path}: {EXTENSION_ENTRY} is missing")

    with zipfile.ZipFile(path) as zf:
        heads = _elf_heads(path, zf, inspection.entries)
        if manifest is None:
            archs, layout = _infer(path, heads, names, arch)
            if not archs:
                notes.append(
                    "no build manifest beside the zip and no --arch: architecture not checked"
                )
        _check_elves(path, heads, names, archs, layout)
        if manifest is not None:
            _check_extension_binaries(path, zf, names, manifest)

    if inspection.unzipped_size > aws_facts.MAX_UNZIPPED_BYTES:
        raise ArtifactError(
            f"{path}: {inspection.unzipped_size:,} bytes unzipped; Lambda allows "
            f"{aws_facts.MAX_UNZIPPED_BYTES:,} for a function and its layers"
        )
    if inspection.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES:
        notes.append("over the 50 MB direct-upload limit: publishing goes through S3")
    return VerifyReport(
        path=path,
        architectures=archs,
        layout=layout,
        family=family,
        file_count=sum(1 for e in inspection.entries if not e.is_dir),
        zip_size=inspection.zip_size,
        unzipped_size=inspection.unzipped_size,
        sha256=inspection.sha256,
        code_sha256=inspection.code_sha256,
        elf_files=tuple(sorted(heads)),
        notes=tuple(notes),
    )


def _elf_heads(
    path: Path, zf: zipfile.ZipFile, entries: tuple[ZipEntryInfo, ...]
) -> dict[str, bytes]:
    """The first bytes of every ELF member; refuses an executable extension that is neither
    an ELF file nor a script."""
    heads: dict[str, bytes] = {}
    for e in entries:
        if e.is_dir or e.size < 20:
            continue
        with zf.open(e.name) as member:
            head = member.read(64)
        if read_elf_header(head) is not None:
            heads[e.name] = head
        elif e.name.startswith(EXTENSION_DIR) and e.mode == 0o100755 and not head.startswith(b"#!"):
            raise ArtifactError(f"{path}: {e.name} is neither an ELF executable nor a script")
    return heads


def _infer(
    path: Path, heads: dict[str, bytes], names: dict[str, ZipEntryInfo], arch: str | None
) -> tuple[tuple[str, ...], str | None]:
    """Without a manifest: the machines of the extension's executables tell the layout."""
    machines = sort_architectures(
        a
        for n, head in heads.items()
        if not _in_sdk_dir(n) and _is_executable(names[n])
        for a in [detect_arch(head)]
        if a is not None
    )
    if len(machines) > 1:
        if arch is not None and arch not in machines:
            raise ArtifactError(f"{path}: serves {', '.join(machines)}, not {arch}")
        return machines, UNIVERSAL
    return ((arch,), PER_ARCH) if arch is not None else ((), None)


def _check_elves(
    path: Path,
    heads: dict[str, bytes],
    names: dict[str, ZipEntryInfo],
    archs: tuple[str, ...],
    layout: str | None,
) -> None:
    if layout == UNIVERSAL:
        in_sdk = [n for n in sorted(heads) if _in_sdk_dir(n)]
        if in_sdk:
            raise neutrality_error(str(path), in_sdk)
    if not archs:
        return
    machines = {aws_facts.ELF_MACHINE[a]: a for a in archs}
    for name in sorted(heads):
        head = heads[name]
        header = read_elf_header(head)
        assert header is not None
        own = machines.get(header.e_machine)
        if _is_executable(names[name]):
            # Executables must be runnable: full check (class, endianness, type, machine),
            # against the architecture they are for when the layer serves several.
            check_elf(head, own or archs[0], what=f"{path}:{name}")
        elif own is None:
            # Shared libraries (.so) must at least be for a machine the layer serves.
            need = " or ".join(aws_facts.MACHINE_NAME[a] for a in archs)
            raise ArchitectureError(
                f"{path}:{name}: is a library built for {header.machine_name}; "
                f"an {', '.join(archs)} layer needs {need}"
            )


def _check_extension_binaries(
    path: Path, zf: zipfile.ZipFile, names: dict[str, ZipEntryInfo], manifest: BuildManifest
) -> None:
    """Every architecture the manifest claims has its binary, intact, and the launcher
    starts each one."""
    if not manifest.extensions:
        return
    have = {e.architecture for e in manifest.extensions}
    missing = [a for a in manifest.architectures if a not in have]
    if missing:
        raise ArtifactError(
            f"{path}: the manifest claims {', '.join(manifest.architectures)} but lists no "
            f"extension binary for {', '.join(missing)}"
        )
    launcher = zf.read(EXTENSION_ENTRY) if EXTENSION_ENTRY in names else b""
    for ext in manifest.extensions:
        if not ext.path:
            continue  # a format-1 manifest: the ELF checks above cover it
        if ext.path not in names:
            raise ArtifactError(f"{path}: the {ext.architecture} extension {ext.path} is missing")
        if names[ext.path].mode != 0o100755:
            raise ArtifactError(f"{path}: {ext.path} is not executable (mode 0755)")
        data = zf.read(ext.path)
        check_elf(data[:64], ext.architecture, what=f"{path}:{ext.path}")
        if hashlib.sha256(data).hexdigest() != ext.sha256:
            raise ArtifactError(
                f"{path}: {ext.path} differs from the {ext.architecture} binary the build "
                f"manifest records (sha256 {ext.sha256[:12]}...)"
            )
        if ext.path != EXTENSION_ENTRY and f"/opt/{ext.path}".encode() not in launcher:
            raise ArtifactError(
                f"{path}: {EXTENSION_ENTRY} never starts /opt/{ext.path}; the "
                f"{ext.architecture} extension would not run"
            )
    picks = launcher.startswith(b"#!") and b"uname" in launcher
    if manifest.layout == UNIVERSAL and len(manifest.extensions) > 1 and not picks:
        raise ArtifactError(
            f"{path}: {EXTENSION_ENTRY} must be a launcher script that picks the binary "
            "by machine (uname -m) in a universal layer"
        )
