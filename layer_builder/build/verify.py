"""``layer-builder verify``: static checks of a built layer zip.

What a release engineer wants to know before publishing 30+ regions: the layout Lambda
expects (``python/`` or ``nodejs/`` at the root), the Python wrapper in place, every extension
executable and built for the layer's architecture, every ELF file in the layer for that
architecture, sizes within Lambda's limits, no path that escapes ``/opt``, and the markers of
a reproducible build.

Every check runs and every problem is reported, most serious for Lambda first (see
:class:`Severity`), so one run of ``verify`` shows everything there is to fix.
"""

from __future__ import annotations

import enum
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build.zipcheck import ZipInspection, inspect_zip
from layer_builder.elf import check_elf, read_elf_header
from layer_builder.errors import ArchitectureError, ArtifactError
from layer_builder.model import BuildManifest

WRAPPER = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"
EXTENSION_DIR = "extensions/"
EXTENSION_ENTRY = "extensions/sentry-lambda-extension"
_ALLOWED_MODES = (0o100644, 0o100755, 0o40755)
#: ``/opt/<member>`` in a launcher script: the binary Lambda ends up executing.
_OPT_PATH = re.compile(rb"/opt/([A-Za-z0-9._/+-]+)")


class Severity(enum.IntEnum):
    """How much a problem matters to Lambda; problems are reported in this order."""

    REFUSED = 0  #: Lambda refuses the layer, or it would not land in /opt as built
    NO_START = 1  #: an extension or the function would fail to start
    NO_LOAD = 2  #: code would fail when loaded (e.g. a library for another machine)
    NOT_AS_BUILT = 3  #: the zip is not what its build manifest describes
    MODES = 4  #: file modes Lambda does not need but a reproducible build would not have
    NOT_REPRODUCIBLE = 5  #: runs, but another build would not give the same bytes


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str  #: starts with the zip's path (and member), like every error line


class VerifyError(ArtifactError):
    """A layer zip failed verification; ``problems`` holds every reason, most serious first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.severity)
        super().__init__("\n".join(p.message for p in self.problems))


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


class _Findings:
    """Collects problems for one zip, each prefixed with the zip's path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def add(self, severity: Severity, message: str, *, member: str | None = None) -> None:
        where = f"{self.path}:{member}" if member else str(self.path)
        self.problems.append(Problem(severity, f"{where}: {message}"))

    def add_error(self, severity: Severity, exc: ArtifactError) -> None:
        # Errors raised by shared checks (check_elf) already name the zip and member.
        self.problems.append(Problem(severity, str(exc)))


def _manifest_beside(path: Path) -> BuildManifest | None:
    mpath = path.with_name(path.name + ".json")
    return BuildManifest.load(mpath) if mpath.exists() else None


def verify_zip(path: Path, *, arch: str | None = None) -> VerifyReport:
    """Check one layer zip; raise :class:`VerifyError` (exit 2) listing every reason it is unfit.

    A missing file, a directory or an unreadable zip stops at once (nothing else can be
    checked); everything else is collected.
    """
    if path.is_dir():
        raise ArtifactError(f"{path}: is a directory, not a layer zip")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    inspection = inspect_zip(path)
    manifest = _manifest_beside(path)
    found = _Findings(path)
    notes: list[str] = []
    if manifest is not None:
        if manifest.sha256 != inspection.sha256:
            found.add(
                Severity.NOT_AS_BUILT,
                f"sha256 {inspection.sha256[:12]}... differs from its build manifest "
                f"({manifest.sha256[:12]}...); the zip changed after it was built",
            )
        if arch is not None and arch != manifest.architecture:
            found.add(Severity.NO_START, f"built for {manifest.architecture}, not {arch}")
        else:
            arch = manifest.architecture
    elif arch is None:
        notes.append("no build manifest beside the zip and no --arch: architecture not checked")

    _check_archive(inspection, found)
    family = _check_layout(inspection, manifest, found)
    elf_files = _check_elves(path, inspection, arch, found)

    if inspection.unzipped_size > aws_facts.MAX_UNZIPPED_BYTES:
        found.add(
            Severity.REFUSED,
            f"{inspection.unzipped_size:,} bytes unzipped; Lambda allows "
            f"{aws_facts.MAX_UNZIPPED_BYTES:,} for a function and its layers",
        )
    if found.problems:
        raise VerifyError(found.problems)
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


def _check_archive(inspection: ZipInspection, found: _Findings) -> None:
    """Paths that escape /opt or collide, then the markers of a reproducible zip."""
    if inspection.unsafe_names:
        found.add(Severity.REFUSED, f"unsafe member names: {', '.join(inspection.unsafe_names)}")
    if inspection.duplicate_names:
        found.add(
            Severity.REFUSED, f"duplicate member names: {', '.join(inspection.duplicate_names)}"
        )
    for problem in inspection.determinism_problems():
        found.add(Severity.NOT_REPRODUCIBLE, problem)


def _check_layout(
    inspection: ZipInspection, manifest: BuildManifest | None, found: _Findings
) -> str:
    """The SDK root, the wrapper, the extension entry and file modes; returns the family."""
    names = {e.name for e in inspection.entries}
    roots = {n.split("/", 1)[0] for n in names}
    family = "python" if "python" in roots else "node" if "nodejs" in roots else "unknown"
    if family == "unknown":
        found.add(
            Severity.REFUSED,
            "neither python/ nor nodejs/ at the root; Lambda would not find the SDK",
        )
    has_sentry_sdk = any(n.startswith("python/sentry_sdk/") for n in names)
    if family == "python" and has_sentry_sdk and WRAPPER not in names:
        found.add(Severity.NO_START, f"the handler wrapper {WRAPPER} is missing")
    for e in inspection.entries:
        if e.mode not in _ALLOWED_MODES:
            found.add(Severity.MODES, f"{e.name} has mode {oct(e.mode)}; expected 0644 or 0755")
        if _is_extension(e.name) and not e.is_dir and e.mode != 0o100755:
            found.add(
                Severity.NO_START,
                f"{e.name} is not executable (mode 0755); Lambda would not start it",
            )
    if manifest is not None and manifest.extension is not None and EXTENSION_ENTRY not in names:
        found.add(Severity.NO_START, f"{EXTENSION_ENTRY} is missing")
    return family


def _is_extension(name: str) -> bool:
    """A file Lambda starts itself: directly inside ``/opt/extensions/``."""
    return name.startswith(EXTENSION_DIR) and "/" not in name[len(EXTENSION_DIR) :]


def _check_elves(
    path: Path, inspection: ZipInspection, arch: str | None, found: _Findings
) -> list[str]:
    """Every extension runnable, every ELF file for ``arch``; returns the ELF members."""
    names = {e.name for e in inspection.entries}
    elf_files: list[str] = []
    launched: set[str] = set()  # binaries a launcher script execs: checked as executables
    with zipfile.ZipFile(path) as zf:
        for e in inspection.entries:
            if e.is_dir or not _is_extension(e.name):
                continue
            head = zf.read(e.name) if e.size <= 1 << 16 else b""
            if head.startswith(b"#!"):
                launched.update(m.decode() for m in _OPT_PATH.findall(head) if m.decode() in names)
        for e in inspection.entries:
            if e.is_dir or e.size < 20:
                continue
            with zf.open(e.name) as member:
                head = member.read(64)
            header = read_elf_header(head)
            runs = _is_extension(e.name) or e.name in launched
            if header is None:
                if _is_extension(e.name) and e.mode == 0o100755 and not head.startswith(b"#!"):
                    found.add(
                        Severity.NO_START,
                        f"{e.name} is neither an ELF executable nor a script with a #! line",
                    )
                continue
            elf_files.append(e.name)
            if arch is None:
                continue
            try:
                if runs or e.name.startswith(EXTENSION_DIR) or e.mode == 0o100755:
                    # What Lambda executes must be an executable (not a shared library) of
                    # the right class and machine; other 0755 ELF files may be libraries.
                    with zf.open(e.name) as member:
                        check_elf(member, arch, what=f"{path}:{e.name}", executable=runs)
                elif header.e_machine != aws_facts.ELF_MACHINE[arch]:
                    # Shared libraries (.so) must at least be for the same machine.
                    found.add(
                        Severity.NO_LOAD,
                        f"is a library built for {header.machine_name}; "
                        f"an {arch} layer needs {aws_facts.MACHINE_NAME[arch]}",
                        member=e.name,
                    )
            except ArchitectureError as exc:
                found.add_error(Severity.NO_START if runs else Severity.NO_LOAD, exc)
    return elf_files
