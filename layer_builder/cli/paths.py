"""Directory and file arguments checked before any work: one ``error:`` line, nothing written.

A build that runs for minutes and then fails with ``PermissionError`` (or writes half its
output) is the worst way to learn that ``--out`` is a file. These checks name the argument and
the cause; they probe writability by creating and removing a temporary file, because
permission bits say nothing about read-only mounts (and nothing at all for root).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from layer_builder.errors import ArgumentError
from layer_builder.fsutil import probe_writable

#: The registry checkout written and read when --registry is not given.
DEFAULT_REGISTRY = "registry"
#: Where --sandbox writes its registry instead.
SANDBOX_REGISTRY = "sandbox/registry"


def _first_existing(path: Path) -> tuple[Path, Path | None]:
    """The nearest ancestor-or-self that exists, and the child below it (None if ``path``)."""
    below: Path | None = None
    current = path
    while not os.path.lexists(current):
        parent = current.parent
        if parent == current:
            break
        below, current = current, parent
    return current, below


def _probe_writable(directory: Path) -> str | None:
    """None if a file can be created in ``directory``, else the reason it cannot."""
    exc = probe_writable(directory)
    if exc is None:
        return None
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def _link_problem(path: Path) -> str | None:
    """Why the symlink ``path`` leads to no directory (a loop, dangling), or None."""
    if not path.is_symlink():
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"is a dangling symlink (-> {os.readlink(path)})"
        return f"cannot be followed: {exc.strerror}"
    return None


def check_not_a_broken_link(path: Path, arg: str) -> None:
    """``path`` (or the nearest part of it that exists) is no symlink loop or dangling link;
    else :class:`ArgumentError` for ``arg``. For a directory read later (a dry run's registry),
    where resolving the path would fail with a ``RuntimeError`` instead of a clear line."""
    existing, below = _first_existing(path.absolute())
    problem = _link_problem(existing)
    if problem is not None:
        shown = "" if below is None else f"{existing} "
        raise ArgumentError(f"{arg} {path}: {shown}{problem}")


def check_output_dir(path: Path, arg: str) -> None:
    """``path`` is, or can become, a writable directory; else :class:`ArgumentError` for ``arg``.

    Nothing is created: the caller creates the directory only once it has something to put in.
    """
    where = f"{arg} {path}"
    existing, below = _first_existing(path.absolute())
    problem = _link_problem(existing)
    if problem is not None:
        shown = "" if below is None else f"{existing} "
        raise ArgumentError(f"{where}: {shown}{problem}")
    if below is None:
        if not existing.is_dir():
            raise ArgumentError(f"{where}: is a file, not a directory")
        reason = _probe_writable(existing)
        if reason is not None:
            raise ArgumentError(f"{where}: cannot write into it: {reason}")
        return
    if not existing.is_dir():
        raise ArgumentError(f"{where}: {existing} is a file, so no directory can be made inside it")
    reason = _probe_writable(existing)
    if reason is not None:
        raise ArgumentError(f"{where}: cannot create it: {existing} is not writable ({reason})")


def check_input_dir(path: Path, arg: str) -> None:
    """``path`` is an existing directory; else :class:`ArgumentError` naming ``arg``."""
    where = f"{arg} {path}"
    if path.is_dir():
        return
    problem = _link_problem(path)
    if problem is not None:
        raise ArgumentError(f"{where}: {problem}")
    if os.path.lexists(path):
        raise ArgumentError(f"{where}: is a file, not a directory")
    raise ArgumentError(f"{where}: no such directory")


@contextlib.contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    """Create ``path`` (and missing parents) for the block; if the block fails, remove the
    directories it created, so a failed command leaves no empty ``dist/`` behind."""
    existing, below = _first_existing(path.absolute())
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if below is not None:
            # From the deepest created directory up to the first one that existed before.
            current = path.absolute()
            while current != existing:
                try:
                    current.rmdir()
                except OSError:
                    break  # not empty (someone else wrote there): leave it
                current = current.parent
        raise
