"""``layer-builder verify``: static checks of a built layer zip.

What a release engineer wants to know before publishing 30+ regions: the layout Lambda
expects (``python/`` or ``nodejs/`` at the root), the Python wrapper in place, the extension
launcher executable, every architecture's extension binary present, executable and built for
that architecture, every other ELF file in the layer for an architecture the layer serves, no
ELF file at all under ``python/`` or ``nodejs/`` of a universal layer, sizes within Lambda's
limits, no path that escapes ``/opt``, the markers of a reproducible build, and every
``__pycache__/*.pyc`` matching the source beside it.

Every check runs and every problem is reported, most serious for Lambda first (see
:class:`Severity`), so one run of ``verify`` shows everything there is to fix.
"""

from __future__ import annotations

import enum
import hashlib
import json
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.aws import facts as aws_facts
from layer_builder.build import pyc
from layer_builder.build.launchmap import MACHINE_ARCH, read_launcher
from layer_builder.build.zipcheck import ZipEntryInfo, ZipInspection, inspect_zip
from layer_builder.elf import check_elf, detect_arch, read_elf_header
from layer_builder.errors import ArchitectureError, ArtifactError
from layer_builder.model import PER_ARCH, UNIVERSAL, BuildManifest, sort_architectures
from layer_builder.publish.plan import is_standin

WRAPPER = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"
EXTENSION_DIR = "extensions/"
NODE_SDK = "nodejs/node_modules/@sentry/aws-serverless/"
NODE_PRELOAD = "./awslambda-auto"  # `-r`/`--import @sentry/aws-serverless/awslambda-auto`
EXTENSION_ENTRY = "extensions/sentry-lambda-extension"
SDK_DIRS = ("python/", "nodejs/")
_ALLOWED_MODES = (0o100644, 0o100755, 0o40755)
#: ``/opt/<member>`` in a launcher script: a binary Lambda ends up executing.
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


def _is_extension(name: str) -> bool:
    """A file Lambda starts itself: directly inside ``/opt/extensions/``."""
    return name.startswith(EXTENSION_DIR) and "/" not in name[len(EXTENSION_DIR) :]


def verify_zip(path: Path, *, arch: str | None = None) -> VerifyReport:
    """Check one layer zip; raise :class:`VerifyError` (exit 2) listing every reason it is unfit.

    ``arch``: an architecture the layer must serve. With a build manifest beside the zip the
    served architectures and the layout come from it; without one, a layer whose extension
    binaries are for several machines is taken as universal. A missing file, a directory or
    an unreadable zip stops at once (nothing else can be checked); everything else is
    collected.
    """
    if path.is_dir():
        raise ArtifactError(f"{path}: is a directory, not a layer zip")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    inspection = inspect_zip(path)
    manifest = _manifest_beside(path)
    found = _Findings(path)
    notes: list[str] = []
    archs: tuple[str, ...] = ()
    layout: str | None = None
    if manifest is not None:
        if manifest.sha256 != inspection.sha256:
            found.add(
                Severity.NOT_AS_BUILT,
                f"sha256 {inspection.sha256[:12]}... differs from its build manifest "
                f"({manifest.sha256[:12]}...); the zip changed after it was built",
            )
        archs, layout = manifest.architectures, manifest.layout
        if arch is not None and arch not in archs:
            found.add(Severity.NO_START, f"built for {', '.join(archs)}, not {arch}")

    _check_archive(inspection, found)
    names = {e.name: e for e in inspection.entries}
    family = _check_layout(inspection, manifest, found)

    with zipfile.ZipFile(path) as zf:
        heads = _elf_heads(zf, inspection.entries, found)
        if manifest is None:
            archs, layout = _infer(heads, names, arch, found)
            if not archs:
                notes.append(
                    "no build manifest beside the zip and no --arch: architecture not checked"
                )
        _check_elves(path, zf, heads, names, archs, layout, found)
        if manifest is not None:
            _check_extension_binaries(path, zf, names, manifest, found)
        listed = {e.path for e in manifest.extensions} if manifest is not None else set()
        _check_launchers(zf, names, heads, listed, found)
        _check_bytecode(zf, names, found)

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
    if manifest is not None and is_standin(manifest):
        notes.append(
            "carries the sandbox STAND-IN extension (not Relay): publish refuses it outside "
            "--sandbox"
        )
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


def _preload_targets(exports: object) -> list[str]:
    """The files an ``exports`` entry resolves to, under any condition (types left out)."""
    if isinstance(exports, str):
        return [exports]
    if isinstance(exports, dict):
        return [
            target
            for condition, value in exports.items()
            if condition != "types"
            for target in _preload_targets(value)
        ]
    if isinstance(exports, list):
        return [target for value in exports for target in _preload_targets(value)]
    return []


def _node_preload_problem(zip_path: Path, names: set[str]) -> str | None:
    """Why ``-r``/``--import @sentry/aws-serverless/awslambda-auto`` would not load from the
    layer (None: every file the package's ``exports`` names for it is there)."""
    where = NODE_SDK + "package.json"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = zf.getinfo(where)
            if info.file_size > 1 << 20:
                return f"{where} is {info.file_size} bytes; not a package manifest"
            package = json.loads(zf.read(info).decode("utf-8"))
    except (OSError, KeyError, RuntimeError, ValueError, zipfile.BadZipFile) as exc:
        return f"{where} cannot be read ({exc}); the SDK's preload cannot be found"
    exports = package.get("exports") if isinstance(package, dict) else None
    entry = exports.get(NODE_PRELOAD) if isinstance(exports, dict) else None
    targets = _preload_targets(entry)
    if not targets:
        return (
            f"{where} exports no {NODE_PRELOAD}: the SDK's preload "
            "(NODE_OPTIONS -r/--import @sentry/aws-serverless/awslambda-auto) would not load"
        )
    missing = sorted(
        {t for t in targets if posixpath.normpath(posixpath.join(NODE_SDK, t)) not in names}
    )
    if missing:
        return (
            f"the SDK's preload @sentry/aws-serverless/awslambda-auto is missing "
            f"{', '.join(missing)} (named by {where}'s exports)"
        )
    return None


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
    if family == "node" and NODE_SDK + "package.json" in names:
        problem = _node_preload_problem(inspection.path, names)
        if problem:
            found.add(Severity.NO_START, problem)
    for e in inspection.entries:
        if e.mode not in _ALLOWED_MODES:
            found.add(Severity.MODES, f"{e.name} has mode {oct(e.mode)}; expected 0644 or 0755")
        if _is_extension(e.name) and not e.is_dir and e.mode != 0o100755:
            found.add(
                Severity.NO_START,
                f"{e.name} is not executable (it needs mode 0755); Lambda would not start it",
            )
    if manifest is not None and manifest.extensions and EXTENSION_ENTRY not in names:
        found.add(Severity.NO_START, f"{EXTENSION_ENTRY} is missing")
    return family


def _elf_heads(
    zf: zipfile.ZipFile, entries: tuple[ZipEntryInfo, ...], found: _Findings
) -> dict[str, bytes]:
    """The first bytes of every ELF member; an executable extension that is neither an ELF
    file nor a script is a problem."""
    heads: dict[str, bytes] = {}
    for e in entries:
        if e.is_dir or e.size < 20:
            continue
        with zf.open(e.name) as member:
            head = member.read(64)
        if read_elf_header(head) is not None:
            heads[e.name] = head
        elif e.name.startswith(EXTENSION_DIR) and e.mode == 0o100755 and not head.startswith(b"#!"):
            found.add(
                Severity.NO_START,
                f"{e.name} is neither an ELF executable nor a script with a #! line",
            )
    return heads


def _infer(
    heads: dict[str, bytes], names: dict[str, ZipEntryInfo], arch: str | None, found: _Findings
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
            found.add(Severity.NO_START, f"serves {', '.join(machines)}, not {arch}")
        return machines, UNIVERSAL
    return ((arch,), PER_ARCH) if arch is not None else ((), None)


def _launched(zf: zipfile.ZipFile, names: dict[str, ZipEntryInfo]) -> set[str]:
    """Members a launcher script in /opt/extensions/ names as /opt/<member>: Lambda runs them."""
    out: set[str] = set()
    for name, e in names.items():
        if e.is_dir or not _is_extension(name) or e.size > 1 << 16:
            continue
        script = zf.read(name)
        if script.startswith(b"#!"):
            out.update(m.decode() for m in _OPT_PATH.findall(script) if m.decode() in names)
    return out


def _check_launchers(
    zf: zipfile.ZipFile,
    names: dict[str, ZipEntryInfo],
    heads: dict[str, bytes],
    listed: set[str],
    found: _Findings,
) -> None:
    """What each launcher script in /opt/extensions/ would exec: there, executable, and for
    each machine arm (``aarch64) binary=/opt/...``) built for that machine. Needs no manifest:
    the script and the ELF headers say it all. Binaries the manifest ``listed`` were checked
    against it already, and a file already reported is not reported again."""

    def said(member: str) -> bool:
        return any(p.message.startswith(f"{found.path}:{member}:") for p in found.problems)

    for name, e in sorted(names.items()):
        if e.is_dir or not _is_extension(name) or e.size > 1 << 16:
            continue
        script = zf.read(name)
        if not script.startswith(b"#!"):
            continue
        launcher = read_launcher(script.decode("utf-8", errors="replace"))
        for target in launcher.targets:
            if target in listed or said(target):
                continue
            if target not in names or names[target].is_dir:
                found.add(
                    Severity.NO_START,
                    f"execs /opt/{target}, which is not in the layer",
                    member=name,
                )
            elif names[target].mode != 0o100755:
                found.add(
                    Severity.NO_START,
                    f"execs /opt/{target}, which is not executable (it needs mode 0755)",
                    member=name,
                )
        for arm in launcher.arms:
            arch = MACHINE_ARCH.get(arm.machine)
            head = heads.get(arm.member)
            header = read_elf_header(head) if head is not None else None
            if arch is None or header is None:
                continue  # a machine Lambda does not have, or a script: nothing to match
            if header.e_machine != aws_facts.ELF_MACHINE[arch] and not said(arm.member):
                found.add(
                    Severity.NO_START,
                    f"runs /opt/{arm.member} on {arm.machine}, but that file is built for "
                    f"{header.machine_name}; {arch} functions would fail with exec format error",
                    member=name,
                )


def _check_elves(
    path: Path,
    zf: zipfile.ZipFile,
    heads: dict[str, bytes],
    names: dict[str, ZipEntryInfo],
    archs: tuple[str, ...],
    layout: str | None,
    found: _Findings,
) -> None:
    if layout == UNIVERSAL:
        in_sdk = [n for n in sorted(heads) if _in_sdk_dir(n)]
        if in_sdk:
            found.add_error(Severity.NO_LOAD, neutrality_error(str(path), in_sdk))
    if not archs:
        return
    launched = _launched(zf, names)
    machines = {aws_facts.ELF_MACHINE[a]: a for a in archs}
    for name in sorted(heads):
        header = read_elf_header(heads[name])
        assert header is not None
        own = machines.get(header.e_machine)
        runs = _is_extension(name) or name in launched
        if runs or _is_executable(names[name]):
            # Executables must be runnable: full check (class, endianness, machine, and for
            # what Lambda starts, an executable rather than a shared library), against the
            # architecture they are for when the layer serves several.
            try:
                with zf.open(name) as member:
                    check_elf(member, own or archs[0], what=f"{path}:{name}", executable=runs)
            except ArchitectureError as exc:
                found.add_error(Severity.NO_START if runs else Severity.NO_LOAD, exc)
        elif own is None:
            # Shared libraries (.so) must at least be for a machine the layer serves.
            need = " or ".join(aws_facts.MACHINE_NAME[a] for a in archs)
            found.add(
                Severity.NO_LOAD,
                f"is a library built for {header.machine_name}; "
                f"an {', '.join(archs)} layer needs {need}",
                member=name,
            )


def _check_extension_binaries(
    path: Path,
    zf: zipfile.ZipFile,
    names: dict[str, ZipEntryInfo],
    manifest: BuildManifest,
    found: _Findings,
) -> None:
    """Every architecture the manifest claims has its binary, intact, and the launcher
    starts each one."""
    if not manifest.extensions:
        return
    have = {e.architecture for e in manifest.extensions}
    missing = [a for a in manifest.architectures if a not in have]
    if missing:
        found.add(
            Severity.NO_START,
            f"the manifest claims {', '.join(manifest.architectures)} but lists no "
            f"extension binary for {', '.join(missing)}",
        )
    launcher = zf.read(EXTENSION_ENTRY) if EXTENSION_ENTRY in names else b""
    for ext in manifest.extensions:
        if not ext.path:
            continue  # a format-1 manifest: the ELF checks above cover it
        if ext.path not in names:
            found.add(Severity.NO_START, f"the {ext.architecture} extension {ext.path} is missing")
            continue
        if names[ext.path].mode != 0o100755:
            found.add(Severity.NO_START, f"{ext.path} is not executable (it needs mode 0755)")
        data = zf.read(ext.path)
        try:
            check_elf(data, ext.architecture, what=f"{path}:{ext.path}")
        except ArchitectureError as exc:
            if str(exc) not in {p.message for p in found.problems}:  # _check_elves said it
                found.add_error(Severity.NO_START, exc)
        if hashlib.sha256(data).hexdigest() != ext.sha256:
            found.add(
                Severity.NOT_AS_BUILT,
                f"{ext.path} differs from the {ext.architecture} binary the build "
                f"manifest records (sha256 {ext.sha256[:12]}...)",
            )
        if ext.path != EXTENSION_ENTRY and f"/opt/{ext.path}".encode() not in launcher:
            found.add(
                Severity.NO_START,
                f"{EXTENSION_ENTRY} never starts /opt/{ext.path}; the "
                f"{ext.architecture} extension would not run",
            )
    picks = launcher.startswith(b"#!") and b"uname" in launcher
    if manifest.layout == UNIVERSAL and len(manifest.extensions) > 1 and not picks:
        found.add(
            Severity.NO_START,
            f"{EXTENSION_ENTRY} must be a launcher script that picks the binary "
            "by machine (uname -m) in a universal layer",
        )


def _check_bytecode(zf: zipfile.ZipFile, names: dict[str, ZipEntryInfo], found: _Findings) -> None:
    """Every ``__pycache__`` file matches the source beside it (its recorded hash), so no
    bytecode can stand in for a source edited after the build."""
    for name in sorted(names):
        if names[name].is_dir or not name.endswith(".pyc") or pyc.source_of(name) is None:
            continue
        src = pyc.source_of(name)
        assert src is not None
        source = zf.read(src[0]) if src[0] in names and not names[src[0]].is_dir else None
        why = pyc.check(name, zf.read(name), source)
        if why is not None:
            found.add(Severity.NOT_AS_BUILT, why, member=name)
