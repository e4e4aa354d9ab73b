"""Whole-file writes and writability probes, one way for the whole package.

A file is never written in place: the new bytes go to a temporary file beside it (a dot
name, ``.<name>.<12 hex>.tmp``, in the same directory so the rename is a same-filesystem
one) and replace it in one ``os.replace``: a reader sees the old file or the new one, never
half of one. Durability is the caller's choice: ``sync_file`` flushes the bytes to disk
before the rename, ``sync_dir`` makes the rename itself durable (the registry does both, a
zip the first). A symlink is replaced the same way. Writability is probed by creating a
file, not with ``os.access``, which says yes to root on a read-only or immutable tree.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: The prefix of :func:`probe_writable`'s probe files.
PROBE_PREFIX = ".layer-builder-probe-"


def temp_beside(path: Path) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<12 hex>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


@contextlib.contextmanager
def replacing(
    path: Path, *, sync_file: bool = False, sync_dir: bool = False, mode: int | None = None
) -> Iterator[BinaryIO]:
    """A new file (binary, opened exclusively) that replaces ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    ``mode`` is set before the rename (else the new file's mode follows the umask).
    """
    tmp = temp_beside(path)
    try:
        with open(tmp, "xb") as fh:  # "x" never clobbers
            yield fh
            if sync_file:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_replacing(
    path: Path, data: bytes | str, *, sync_file: bool = False, sync_dir: bool = False
) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one rename."""
    with replacing(path, sync_file=sync_file, sync_dir=sync_dir) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def replace_symlink(link: Path, target: str, *, sync_dir: bool = False) -> None:
    """Point ``link`` at ``target`` (kept as given: relative stays relative) in one rename."""
    tmp = temp_beside(link)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(link.parent)


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable; a no-op where a directory cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def probe_writable(directory: Path) -> OSError | None:
    """None if a file can be created in ``directory`` (one is created and removed), else
    the error that refused it."""
    probe = directory / f"{PROBE_PREFIX}{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None
