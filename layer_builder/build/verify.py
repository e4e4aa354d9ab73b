"""``layer-builder verify``: static checks of a built layer zip.

What a release engineer wants to know before publishing 30+ regions: the layout Lambda
expects (``python/`` or ``nodejs/`` at the root), the Python wrapper in place, every extension
executable and built for the layer's architecture, every ELF file in the layer for that
architecture, sizes within Lambda's limits, no path that escapes ``/opt``, and the markers of
a reproducible build.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.elf import check_elf, read_elf_header
from layer_builder.errors import ArchitectureError, ArtifactError
from layer_builder.model import BuildManifest

WRAPPER = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"
EXTENSION_DIR = "extensions/"
EXTENSION_ENTRY = "extensions/sentry-lambda-extension"
_ALLOWED_MODES = (0o100644, 0o100755, 0o40755)


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    architecture: str | None
    family: str
    file_count: int
    zip_size: int
    unzipped_size: int
    sha256: str
    code_sha256: str
    elf_files: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def room_left(self) -> int:
        return aws_facts.MAX_UNZIPPED_BYTES - self.unzipped_size

    @property
    def needs_s3_upload(self) -> bool:
        return self.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES


def _manifest_beside(path: Path) -> BuildManifest | None:
    mpath = path.with_name(path.name + ".json")
    return BuildManifest.load(mpath) if mpath.exists() else None


def verify_zip(path: Path, *, arch: str | None = None) -> VerifyReport:
    """Check one layer zip; raise ArtifactError (exit 2) with the first reason it is unfit."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    inspection = inspect_zip(path)
    manifest = _manifest_beside(path)
    notes: list[str] = []
    if manifest is not None:
        if manifest.sha256 != inspection.sha256:
            raise ArtifactError(
                f"{path}: sha256 {inspection.sha256[:12]}... differs from its build manifest "
                f"({manifest.sha256[:12]}...); the zip changed after it was built"
            )
        if arch is not None and arch != manifest.architecture:
            raise ArtifactError(f"{path}: built for {manifest.architecture}, not {arch}")
        arch = manifest.architecture
    elif arch is None:
        notes.append("no build manifest beside the zip and no --arch: architecture not checked")

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
    if manifest is not None and manifest.extension is not None and EXTENSION_ENTRY not in names:
        raise ArtifactError(f"{path}: {EXTENSION_ENTRY} is missing")

    elf_files = []
    with zipfile.ZipFile(path) as zf:
        for e in inspection.entries:
            if e.is_dir or e.size < 20:
                continue
            with zf.open(e.name) as member:
                head = member.read(64)
            header = read_elf_header(head)
            if header is None:
                if (
                    e.name.startswith(EXTENSION_DIR)
                    and not e.is_dir
                    and e.mode == 0o100755
                    and not head.startswith(b"#!")
                ):
                    raise ArtifactError(
                        f"{path}: {e.name} is neither an ELF executable nor a script"
                    )
                continue
            elf_files.append(e.name)
            if arch is None:
                continue
            if e.name.startswith(EXTENSION_DIR) or e.mode == 0o100755:
                # Executables must be runnable: full check (class, endianness, type, machine).
                check_elf(head, arch, what=f"{path}:{e.name}")
            elif header.e_machine != aws_facts.ELF_MACHINE[arch]:
                # Shared libraries (.so) must at least be for the same machine.
                raise ArchitectureError(
                    f"{path}:{e.name}: is a library built for {header.machine_name}; "
                    f"an {arch} layer needs {aws_facts.MACHINE_NAME[arch]}"
                )

    if inspection.unzipped_size > aws_facts.MAX_UNZIPPED_BYTES:
        raise ArtifactError(
            f"{path}: {inspection.unzipped_size:,} bytes unzipped; Lambda allows "
            f"{aws_facts.MAX_UNZIPPED_BYTES:,} for a function and its layers"
        )
    if inspection.zip_size > aws_facts.MAX_DIRECT_UPLOAD_ZIP_BYTES:
        notes.append("over the 50 MB direct-upload limit: publishing goes through S3")
    return VerifyReport(
        path=path,
        architecture=arch,
        family=family,
        file_count=sum(1 for e in inspection.entries if not e.is_dir),
        zip_size=inspection.zip_size,
        unzipped_size=inspection.unzipped_size,
        sha256=inspection.sha256,
        code_sha256=inspection.code_sha256,
        elf_files=tuple(elf_files),
        notes=tuple(notes),
    )
