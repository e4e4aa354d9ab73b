"""The registry checkout as files: the per-root lock, the preflight, stray temp files.

Publishing checks the registry before its first AWS write (:func:`preflight_release`): a
registry that cannot be written is found while nothing is published yet, not after forty
versions went out. :func:`registry_lock` serialises the runs on one machine that share a
registry root, including the run that creates it, and names the holder to the one that
has to give up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from layer_builder.errors import RegistryError
from layer_builder.fsutil import probe_writable
from layer_builder.registry.layout import (
    LATEST_FILE,
    LAYERS_DIR,
    Document,
    collect_index,
    read_json_mapping,
    read_version_document,
)

log = logging.getLogger(__name__)

#: How long a second run waits for the registry lock before it gives up (exit 2).
LOCK_WAIT_SECONDS = 15.0
_LOCK_POLL = 0.1
#: The writer's temporary names: ``.<name>.<12 hex>.tmp`` (see fsutil.temp_beside).
STRAY_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


@dataclass
class RegistryLock:
    """What :func:`registry_lock` yields: proof, for the block, that this run holds the lock
    of ``root``. Code that writes under a lock its caller took is handed this instead of taking
    the lock again (a second take waits for the first, like another process's would)."""

    root: Path
    held: bool = True

    def require(self, root: Path) -> None:
        """Raise unless this is the held lock of ``root``: a write never runs unlocked."""
        if not self.held or lock_path(self.root) != lock_path(root):
            raise RuntimeError(f"{root}: written without holding its registry lock")


@contextlib.contextmanager
def holding(root: Path, lock: RegistryLock | None) -> Iterator[RegistryLock]:
    """The block under ``root``'s lock: ``lock`` if the caller holds it, else taken here."""
    if lock is None:
        with registry_lock(root) as taken:
            yield taken
    else:
        lock.require(root)
        yield lock


def lock_dir() -> Path:
    """The directory of this user's registry locks: one only this user can create entries in.

    ``$XDG_RUNTIME_DIR/layer-builder`` (a per-user directory the login manager makes, mode
    0700), else ``$HOME/.cache/layer-builder/locks``; only without a home directory the shared
    temporary directory, where :func:`_checked_lock_dir` refuses a directory someone else
    created. Never a fixed name in a directory everyone can write to, opened blindly: another
    user could plant the name as a symlink and make a root publish truncate any file.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return Path(runtime) / "layer-builder"
    home = os.environ.get("HOME", "")
    if os.path.isabs(home) and home != "/":
        return Path(home) / ".cache" / "layer-builder" / "locks"
    return Path(tempfile.gettempdir()) / f"layer-builder-locks-{os.geteuid()}"


def lock_path(root: Path) -> Path:
    """Where the lock of ``root`` lives: outside the checkout (nothing for git to see), and
    by the root's absolute path, so it exists before the root does."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return lock_dir() / f"registry-{key}.lock"


def _checked_lock_dir(root: Path, directory: Path) -> None:
    """Create ``directory`` (0700) and make sure nobody else can have planted anything in
    it: a real directory (not a symlink), owned by this user, writable by nobody else."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(directory)
    except OSError as exc:
        raise RegistryError(
            f"{root}: cannot create the lock directory {directory}: {exc}"
        ) from None
    problem = None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory (a symbolic link or a file)"
    elif st.st_uid != os.geteuid():
        problem = f"belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    elif st.st_mode & 0o022:
        problem = f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    if problem:
        raise RegistryError(
            f"{root}: the registry lock directory {directory} {problem}; someone else may "
            "have planted it: remove it (or set XDG_RUNTIME_DIR to a directory of yours) and "
            "run this command again (nothing was published)"
        )


def _open_lock(root: Path, path: Path) -> int:
    """Open (create) the lock file without following a symlink, and check it is a regular
    file of this user's."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise RegistryError(f"{root}: cannot open the registry lock {path}: {exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise RegistryError(
            f"{root}: the registry lock {path} is not a regular file of this user's; remove "
            "it and run this command again (nothing was published)"
        )
    return fd


def _holder_text() -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command[:200]}"


@contextlib.contextmanager
def registry_lock(
    root: Path,
    *,
    wait: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[RegistryLock]:
    """Hold the lock of registry ``root``; yields the :class:`RegistryLock` to pass on.

    Waits up to ``wait`` seconds (default :data:`LOCK_WAIT_SECONDS`) for another run, then
    raises RegistryError naming the holder (exit 2, nothing published). Not re-entrant: a
    second take, in this process too, waits for the first like another run's would (flock
    excludes per open file), so code under a lock is handed the held lock instead.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; releases there run one at a time
        yield from _held_for(root)
        return
    path = lock_path(root)
    _checked_lock_dir(root, path.parent)
    fd = _open_lock(root, path)
    try:
        end = clock() + (LOCK_WAIT_SECONDS if wait is None else wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= end:
                    holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                    raise RegistryError(
                        f"{root}: another layer-builder run holds the registry lock "
                        f"({holder or 'holder unknown'}); wait for it to finish, then run "
                        "this command again (nothing was published)"
                    ) from None
                sleep(_LOCK_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_holder_text() + "\n").encode(), 0)
        try:
            yield from _held_for(root)
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the flock


def _held_for(root: Path) -> Iterator[RegistryLock]:
    lock = RegistryLock(root)
    try:
        yield lock
    finally:
        lock.held = False


@dataclass
class RegistryState:
    """What the registry holds for one release, read before publishing."""

    root: Path
    version_path: Path
    document: Document | None  # this release's own version document, if it exists
    # Every version document of the runtime that could be read: path -> document.
    others: dict[Path, Document] = field(default_factory=dict)
    unreadable: list[Path] = field(default_factory=list)


def preflight_release(
    root: Path, runtime_dir: str, version_text: str, *, writable: bool = True
) -> RegistryState:
    """Check that the release can be recorded under ``root``, before anything is published.

    The root exists or can be created, is a directory and is writable; every file the write
    will read (``base.json``, this version's document first, the links, each runtime's
    ``latest.json`` for the index) parses. Raises RegistryError naming the file.
    """
    if os.path.lexists(root) and not root.is_dir():
        raise RegistryError(f"{root}: the registry root is not a directory")
    runtime = root / LAYERS_DIR / runtime_dir
    version_path = runtime / f"{version_text}.json"
    # The release's own document first: a rebuilt zip for a recorded version is refused
    # by what it says, whatever else is wrong.
    document = read_version_document(version_path) if os.path.lexists(version_path) else None
    for path in (runtime, root / LAYERS_DIR, root):
        if os.path.lexists(path) and not path.is_dir():
            raise RegistryError(f"{path}: expected a directory")
    if writable:  # a dry run writes nothing
        _check_writable(runtime)
    base = runtime / "base.json"
    if os.path.lexists(base):
        read_json_mapping(base)
    for name in _link_names(runtime):
        link = runtime / name
        if os.path.lexists(link) and not link.exists():
            raise RegistryError(f"{link}: links to {os.readlink(link)}, which is missing")
    if (root / LAYERS_DIR).is_dir():
        collect_index(root / LAYERS_DIR)  # every runtime's latest.json must parse
    state = RegistryState(root, version_path, document)
    if runtime.is_dir():
        for path in sorted(runtime.glob("*.json")):
            if path.is_symlink() or path.name == "base.json" or path.name.startswith("."):
                continue
            try:
                state.others[path] = read_version_document(path)
            except RegistryError as exc:
                # Another version's broken file is not this release's business, except that
                # the versions it may record cannot be told apart from strays.
                log.warning("%s", exc)
                state.unreadable.append(path)
    return state


def _link_names(runtime: Path) -> list[str]:
    if not runtime.is_dir():
        return []
    return [LATEST_FILE] + [p.name for p in runtime.iterdir() if p.is_symlink()]


def _check_writable(directory: Path) -> None:
    """Create and remove a probe file in the deepest part of ``directory`` that exists.

    A real write, not os.access: that says yes to root on a read-only or immutable tree.
    """
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise RegistryError(f"{existing}: expected a directory")
    refused = probe_writable(existing)
    if refused is not None:
        raise RegistryError(
            f"{existing}: the registry is not writable ({refused.strerror}); fix its "
            "permissions or pass another --registry (nothing was published)"
        )


def clean_stray_temps(*directories: Path) -> list[Path]:
    """Remove temporary files an interrupted write left behind (call with the lock held)."""
    removed = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if STRAY_TEMP_RE.match(path.name) and (path.is_symlink() or path.is_file()):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    if removed:
        log.info("removed stray temporary files: %s", ", ".join(map(str, removed)))
    return removed


def same_json(path: Path, text: str) -> bool:
    """Whether ``path`` already holds the JSON ``text`` holds, however it is formatted: a
    no-op write must keep hand-written formatting byte for byte."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")) == json.loads(text))
    except (OSError, ValueError):
        return False
