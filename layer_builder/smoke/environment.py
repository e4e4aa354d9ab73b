"""The execution environment's file system and processes: the layer at ``/opt``.

Lambda extracts layers into ``/opt``, and launchers and wrappers bake that path in, so the
smoke test mounts the unpacked layer there, read-only, in a private mount namespace that
only the processes of this run enter (``unshare --mount``, then ``nsenter`` per process);
the host's ``/opt`` is untouched. Without the privilege for that (not root, and no user
namespaces), the layer stays where it was unpacked and ``/opt/`` in its launcher scripts is
rewritten to that place: the run says so, since a path baked anywhere else is not exercised.

Each run plays one machine: every ELF file in the layer built for another machine is
replaced by a script failing with "exec format error", as Lambda fails it, so a launcher that
picks the wrong binary cannot pass on the host's native binary or on qemu's; the originals
are put back before the next run of the same tree.

Every process started here carries a marker in its environment, so that whatever it leaves
behind (a daemon that left its process group, too) is found and killed at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layer_builder.aws.facts import ELF_MACHINE, MACHINE_NAME
from layer_builder.build.zipcheck import ZipInspection, inspect_zip
from layer_builder.elf import read_elf_header
from layer_builder.errors import ArtifactError, UserError

if TYPE_CHECKING:
    from layer_builder.smoke.runtimes import Foreign

log = logging.getLogger(__name__)

MARKER_VAR = "LAYER_BUILDER_SMOKE_RUN"
_LIBC = ctypes.CDLL(None, use_errno=True)  # looked up here, not in the forked child
LAMBDA_OPT = "/opt"


def check_before_unpack(zip_path: Path) -> ZipInspection:
    """Refuse a zip that unpacking could turn against this machine, before reading any member.

    The same archive checks ``verify`` makes (:func:`~layer_builder.build.zipcheck.inspect_zip`
    reads it, CRCs included, and refuses encrypted members), plus what only matters when the
    zip is unpacked: names, symlinks and member types that could write outside the directory,
    and Lambda's unzipped size limit (a zip bomb stops here, not on a full disk).
    """
    inspection = inspect_zip(zip_path)
    problems = inspection.unpack_problems()
    if problems:
        raise ArtifactError(f"{zip_path}: refused before unpacking: {'; '.join(problems)}")
    return inspection


def unpack_layer(zip_path: Path, dest: Path) -> None:
    """Extract ``zip_path`` into ``dest`` keeping the exec bits and symlinks Lambda keeps.

    The zip is checked first (:func:`check_before_unpack`); then every member is created
    relative to a descriptor of its directory, never following a symlink (``O_NOFOLLOW``) and
    never replacing anything (``O_EXCL``), and symlinks are made last, so no member is written
    through one even if a check above missed it.
    """
    inspection = check_before_unpack(zip_path)
    dest.mkdir(parents=True, exist_ok=True)
    links = dict(inspection.links)
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    dirs: dict[str, int] = {"": root}  # open directories by member path, for *at() calls
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                if info.filename in links:
                    continue
                parts = [p for p in info.filename.split("/") if p not in ("", ".")]
                if info.is_dir():
                    _open_dir(dirs, parts, zip_path)
                    continue
                parent = _open_dir(dirs, parts[:-1], zip_path)
                mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                fd = _at(zip_path, info.filename, os.open, parts[-1], flags, mode, dir_fd=parent)
                with zf.open(info) as src, open(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
            for name, target in links.items():
                parts = [p for p in name.rstrip("/").split("/") if p not in ("", ".")]
                parent = _open_dir(dirs, parts[:-1], zip_path)
                _at(zip_path, name, os.symlink, target, parts[-1], dir_fd=parent)
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"{zip_path}: not a zip file: {exc}") from None
    finally:
        for fd in dirs.values():
            os.close(fd)


def _at(zip_path: Path, member: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        raise ArtifactError(
            f"{zip_path}: {member}: cannot unpack ({exc.strerror}); nothing is written "
            "through a symlink or over another member"
        ) from None


def _open_dir(dirs: dict[str, int], parts: list[str], zip_path: Path) -> int:
    """A descriptor of the directory ``parts`` under the root, made as needed, no symlinks."""
    key = "/".join(parts)
    if key in dirs:
        return dirs[key]
    # The deepest directory already open, then down from there (no recursion: a zip may
    # nest thousands of directories).
    depth = len(parts)
    while depth > 0 and "/".join(parts[:depth]) not in dirs:
        depth -= 1
    fd = dirs["/".join(parts[:depth])]
    for i in range(depth, len(parts)):
        with contextlib.suppress(FileExistsError):  # a file there: the open below says so
            os.mkdir(parts[i], 0o755, dir_fd=fd)
        sub = "/".join(parts[: i + 1])
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        fd = _at(zip_path, sub + "/", os.open, parts[i], flags, dir_fd=fd)
        if len(dirs) > 256:  # a Node layer has thousands of directories: keep few open
            for k in [k for k in dirs if k and not sub.startswith(k + "/")]:
                os.close(dirs.pop(k))
        dirs[sub] = fd
    return fd


def _rewrite_opt_paths(root: Path) -> int:
    """Fallback: point ``/opt/`` in the layer's scripts at ``root``; return files changed."""
    changed = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        head = path.read_bytes()[:4096]
        in_extensions = path.parent == root / "extensions"
        if b"\0" in head or not (in_extensions or head.startswith(b"#!")):
            continue  # binaries and library code are left alone
        data = path.read_bytes()
        new = data.replace(b"/opt/", str(root).encode() + b"/")
        if new != data:
            path.write_bytes(new)
        if str(root).encode() + b"/" in new:  # counted again by a later run on the same tree
            changed += 1
    return changed


#: How the original of a file replaced for one run is kept beside it (``.<name><suffix>``).
_QEMU_TARGET = ".qemu-target"
_OTHER_MACHINE = ".other-machine"
_STUB = """#!/bin/sh
# layer-builder smoke: this environment plays an {played} machine, and this file is an ELF
# file for {other}. Lambda cannot execute or load it there either ("exec format error").
echo "$0: exec format error: an {other} binary cannot run on this {played} machine" >&2
exit 126
"""


#: Source and data files an SDK tree holds thousands of: never ELF, so not opened.
_NOT_ELF_SUFFIXES = (".js", ".mjs", ".cjs", ".json", ".ts", ".map", ".md", ".py", ".pyi", ".txt")


def _elf_files(root: Path) -> list[tuple[Path, int]]:
    """Every regular ELF file under ``root`` (symlinks not followed) and its machine, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(_NOT_ELF_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb", opener=_no_follow) as f:
                    header = read_elf_header(f.read(64))
            except OSError:
                continue  # a symlink (O_NOFOLLOW), or unreadable
            if header is not None:
                found.append((Path(path), header.e_machine))
    return sorted(found)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def restore_replaced(root: Path) -> int:
    """Put back every original an earlier run moved aside (qemu shims, stubs); return how many.

    The runs of one zip share its unpacked tree, so each starts from the files as unpacked.
    """
    count = 0
    for hidden in sorted(root.rglob(".*")):
        for suffix in (_QEMU_TARGET, _OTHER_MACHINE):
            if hidden.name.endswith(suffix) and hidden.is_file():
                os.replace(hidden, hidden.with_name(hidden.name[1 : -len(suffix)]))
                count += 1
    return count


def stub_other_machines(root: Path, played: int, played_name: str) -> list[str]:
    """Replace every ELF file in ``root`` built for another machine than ``played`` with a
    script that fails with "exec format error"; return their paths relative to ``root``.

    On Lambda such a file cannot run (an x86_64 binary on arm64) nor load (a library).
    Here it could: the host runs its own machine's binaries natively and qemu-user or
    binfmt_misc runs the other's, so a launcher that picks the wrong binary would pass.
    """
    replaced = []
    for path, machine in _elf_files(root):
        if machine == played or path.name.endswith((_QEMU_TARGET, _OTHER_MACHINE)):
            continue  # this machine's, or an original moved aside
        arch = next((a for a, m in ELF_MACHINE.items() if m == machine), None)
        other = MACHINE_NAME[arch] if arch else f"e_machine {machine}"
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        path.rename(path.with_name(f".{path.name}{_OTHER_MACHINE}"))
        path.write_text(_STUB.format(played=played_name, other=other))
        path.chmod(mode)
        replaced.append(path.relative_to(root).as_posix())
    return replaced


def _shim_foreign_binaries(root: Path, e_machine: int, qemu: str) -> int:
    """Put a shim that runs ``qemu`` in place of every executable ELF file for ``e_machine``.

    Without binfmt_misc the kernel cannot run them; the shim keeps their path (a launcher's
    ``exec /opt/relay/relay`` still works) and the original moves beside it, hidden.
    """
    count = 0
    if not qemu:
        return 0  # binfmt_misc runs them as they are
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or not os.access(path, os.X_OK):
            continue
        with open(path, "rb") as f:
            header = read_elf_header(f.read(64))
        if header is None or header.e_machine != e_machine:
            continue
        original = path.with_name(f".{path.name}{_QEMU_TARGET}")
        path.rename(original)
        path.write_text(f'#!/bin/sh\nexec {qemu} "$(dirname "$0")/{original.name}" "$@"\n')
        path.chmod(0o755)
        count += 1
    return count


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when layer-builder dies (killed, not cleaned up).

    Otherwise a ``kill`` of the smoke test would leave the namespace holder and the layer's
    processes running; PR_SET_PDEATHSIG survives the exec of nsenter, unshare and what they run.
    """
    # Nothing here may import or allocate much: other threads (the API servers) exist at fork.
    _LIBC.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _ns_link(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


@dataclass
class Environment:
    """Where the layer is, how processes are started inside, and how they are cleaned up."""

    layer_dir: Path  # the unpacked layer on the host
    opt: str  # the path processes see the layer at: /opt, or layer_dir in the fallback
    mount: str  # how /opt was provided, for the report
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    path_prefix: str = ""  # put before PATH (the foreign machine's `uname`)
    _holder: subprocess.Popen[bytes] | None = None
    _enter: tuple[str, ...] = ()
    _ns: str | None = None

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as started inside the environment (through nsenter when mounted)."""
        return [*self._enter, *argv]

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> subprocess.Popen[bytes]:
        """Start a process in its own session with the run's marker; output to ``log_path``."""
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                self.command(argv),
                env={**env, MARKER_VAR: self.marker},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def leftovers(self) -> list[tuple[int, str]]:
        """Processes of this run still alive: inside its mount namespace or carrying its marker."""
        found = []
        needle = f"{MARKER_VAR}={self.marker}".encode()
        skip = {os.getpid(), self._holder.pid if self._holder else -1}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in skip:
                continue
            try:
                ours = (self._ns is not None and _ns_link(entry) == self._ns) or needle in Path(
                    f"/proc/{entry}/environ"
                ).read_bytes().split(b"\0")
                if ours:
                    comm = Path(f"/proc/{entry}/comm").read_text().strip()
                    state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()[0]
                    if state != "Z":  # a zombie is dead already; its parent reaps it
                        found.append((int(entry), comm))
            except OSError:
                continue  # gone meanwhile, or not ours to read
        return found

    def kill_leftovers(self) -> list[tuple[int, str]]:
        left = self.leftovers()
        for pid, _ in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return left

    def close(self) -> None:
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            self._holder = None


#: Where the layer's processes may write, each an empty private tmpfs (Lambda's /tmp).
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
NSINIT = Path(__file__).with_name("nsinit.py")
_READY_S = 10.0


def _hidden() -> list[str]:
    """Directories covered by an empty tmpfs: home directories (credentials live there) and
    the host's temporary directory; what a run needs from them is bound back."""
    homes = {"/root", "/home", str(Path.home()), tempfile.gettempdir()}
    return sorted(h for h in homes if h not in ("/", *SCRATCH))


def _kept(work: Path, tools: Sequence[str]) -> list[str]:
    """Directories the run's processes need: the work directory (function, runtime client),
    this package, the interpreter's and each tool's prefix, every directory on sys.path."""
    paths = {str(work.resolve()), str(Path(__file__).resolve().parents[1])}
    paths.update(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix))
    on_path = {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    if os.geteuid() == 0:
        # The layer's processes run as nobody: a directory on sys.path it cannot enter (a
        # checkout under `mktemp -d`, mode 0700) is of no use to them, and bound back as it is
        # it would hide what is kept below it (the venv, this package) behind its mode.
        on_path = {p for p in on_path if os.stat(p).st_mode & 0o001}
    paths.update(on_path)
    for tool in tools:
        where = shutil.which(tool) if not os.path.isabs(tool) else tool
        if where:
            paths.add(os.path.dirname(os.path.dirname(os.path.realpath(where))))
            paths.add(os.path.dirname(os.path.dirname(os.path.abspath(where))))
    ordered = sorted(paths)
    return [p for p in ordered if not any(p.startswith(q.rstrip("/") + "/") for q in ordered)]


def sandbox_ids() -> tuple[int, int]:
    """The unprivileged user and group the layer's processes run as when this runs as root."""
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _start_namespace(
    layer_dir: Path, user_ns: bool, keep: Sequence[str]
) -> tuple[Environment | None, str]:
    """A private mount namespace as :mod:`nsinit` sets it up; (env, "") or (None, why)."""
    unshare = ["unshare", "--mount", "--propagation", "private"]
    enter = ["nsenter", "--mount"]
    if user_ns:
        unshare[1:1] = ["--user", "--map-root-user"]
        enter[1:1] = ["--user", "--preserve-credentials"]
    spec = {
        "layer": str(layer_dir.resolve()),
        "opt": LAMBDA_OPT,
        "keep": list(keep),
        "hide": _hidden(),
        "scratch": list(SCRATCH),
    }
    try:
        holder = subprocess.Popen(
            [*unshare, "--", sys.executable, "-I", "-S", str(NSINIT), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError:
        return None, "unshare is not installed"
    assert holder.stdout is not None and holder.stderr is not None
    ready, _, _ = select.select([holder.stdout], [], [], _READY_S)
    line = holder.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        holder.kill()
        holder.wait()
        err = holder.stderr.read().decode(errors="replace").strip().splitlines()
        return None, f"unshare failed: {err[-1] if err else holder.returncode}"
    who = ""
    enter += ["--target", str(holder.pid)]
    if not user_ns and os.geteuid() == 0:
        uid, gid = sandbox_ids()
        enter += ["--setuid", str(uid), "--setgid", str(gid)]
        who = f", processes as uid {uid}"
    enter.append("--")
    env = Environment(
        layer_dir,
        LAMBDA_OPT,
        "mounted at /opt (read-only, private mount namespace"
        + (", user namespace" if user_ns else "")
        + f"{who}; only /tmp writable)",
    )
    env._holder, env._enter, env._ns = holder, tuple(enter), _ns_link(holder.pid)
    return env, ""


def _namespace_blocker(tools: Sequence[str]) -> str | None:
    """Why a mount at /opt cannot be used here, or None."""
    if not Path(LAMBDA_OPT).is_dir():
        return f"{LAMBDA_OPT} does not exist on this machine"
    for tool in tools:
        where = shutil.which(tool) if not os.path.isabs(tool) else tool
        if where and os.path.realpath(where).startswith(LAMBDA_OPT + "/"):
            return f"{where} lives under {LAMBDA_OPT}, which the mount would hide"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def prepare(
    layer_src: Path | None,
    work: Path,
    tools: Sequence[str],
    foreign: Foreign | None = None,
) -> Environment:
    """Provide the unpacked layer ``layer_src`` at /opt (None: an empty /opt, the bare function).

    With ``foreign``, the environment plays that machine: its executables run through qemu,
    and ``uname -m`` (which a universal layer's launcher asks) answers its name.
    """
    if layer_src is None:
        layer_dir = work / "opt"
        layer_dir.mkdir(parents=True)
    else:
        layer_dir = layer_src
        restore_replaced(layer_dir)
    env = _provide(layer_dir, work, [*tools, *([foreign.qemu] if foreign and foreign.qemu else [])])
    played = _played_machine(foreign)
    if layer_src is not None and played is not None:
        # Whatever the launcher picks, a binary for another machine fails as on Lambda.
        stubbed = stub_other_machines(layer_dir, *played)
        if stubbed:
            env.mount += (
                f"; {len(stubbed)} ELF file(s) for another machine fail with exec format error"
            )
    if foreign is not None:
        shimmed = _shim_foreign_binaries(layer_dir, foreign.e_machine, foreign.qemu or "")
        bin_dir = work / "machine-bin"
        bin_dir.mkdir()
        real = shutil.which("uname") or "/bin/uname"
        (bin_dir / "uname").write_text(
            f"#!/bin/sh\n# layer-builder smoke: this environment plays an {foreign.machine} "
            f'machine\nif [ "$*" = "-m" ]; then echo {foreign.machine}; else exec {real} "$@"; fi\n'
        )
        (bin_dir / "uname").chmod(0o755)
        env.path_prefix = f"{bin_dir}:"
        env.mount += f"; playing {foreign.machine}: `uname -m` says so, " + (
            f"{shimmed} executable(s) run through {foreign.qemu}" if foreign.qemu
            else f"its executables run through {foreign.label}"
        )  # fmt: skip
    return env


def _played_machine(foreign: Foreign | None) -> tuple[int, str] | None:
    """The ELF machine and ``uname -m`` name of the machine a run plays (None: unknown)."""
    if foreign is not None:
        return foreign.e_machine, foreign.machine
    machine = os.uname().machine
    arch = next((a for a, m in MACHINE_NAME.items() if m == machine), None)
    return (ELF_MACHINE[arch], machine) if arch in ELF_MACHINE else None


#: Set to 1 to let ``smoke`` run a layer as root without isolation (no namespaces here).
UNISOLATED_VAR = "LAYER_BUILDER_SMOKE_UNISOLATED"


def _provide(layer_dir: Path, work: Path, tools: Sequence[str]) -> Environment:
    reasons = []
    blocker = _namespace_blocker([sys.executable, *tools])
    if blocker is None:
        keep = _kept(work, [sys.executable, *tools])
        for user_ns in (False, True) if os.geteuid() == 0 else (True,):
            env, why = _start_namespace(layer_dir, user_ns, keep)
            if env is not None:
                return env
            reasons.append(why)
    else:
        reasons.append(blocker)
    why = "; ".join(reasons)
    if os.geteuid() == 0 and os.environ.get(UNISOLATED_VAR) != "1":
        raise UserError(
            f"smoke: cannot isolate the layer's processes here ({why}); refusing to run a "
            f"layer as root without it: run smoke as an unprivileged user, or set "
            f"{UNISOLATED_VAR}=1 to accept the risk"
        )
    changed = _rewrite_opt_paths(layer_dir)
    log.info("no private /opt mount (%s): rewrote /opt/ in %d file(s)", why, changed)
    return Environment(
        layer_dir,
        str(layer_dir),
        f"NOT mounted at /opt ({why}): layer at {layer_dir}, /opt/ rewritten in {changed} "
        "script(s); paths baked elsewhere are not exercised; NOT isolated",
    )
