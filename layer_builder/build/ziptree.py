"""The layer tree as the zip writer sees it: members in one global byte order.

Split out of :mod:`layer_builder.build.zipper`, whose docstring gives the rules (symlinks
followed inside the tree, modes from the exec bit, directories as ``name/``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from layer_builder.errors import ArtifactError

FILE_MODE = 0o100644
EXEC_MODE = 0o100755
DIR_MODE = 0o040755

_KINDS = {
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


@dataclass(frozen=True)
class Entry:
    """One archive member as found in the tree."""

    name: str  #: POSIX path relative to the root; directories end with ``/``
    source: str  #: what to read (the resolved target for a followed symlink)
    mode: int  #: Unix mode stored in the archive
    size: int  #: size when the tree was walked (0 for directories)

    @property
    def is_dir(self) -> bool:
        """True for a directory entry."""
        return self.name.endswith("/")


def collect_tree(root: Path) -> list[Entry]:
    """Walk ``root`` and return its members sorted by the UTF-8 bytes of their names.

    Raises :class:`ArtifactError` for symlinks leaving the tree, dangling or looping, for
    fifos, sockets and devices, and for names that are not valid UTF-8.
    """
    return list(iter_tree(root))


def iter_tree(root: Path) -> Iterator[Entry]:
    """Yield the members of ``root`` one by one, already in the order of :func:`collect_tree`.

    Depth first, each directory's children sorted by their UTF-8 bytes with a directory
    counted as ``name/``: that is exactly the global byte order of the full names (``a-b``
    before ``a/`` before ``a/z``, since ``-`` < ``/``), so the zip writer can start
    compressing the first members while the rest of the tree is still being listed.
    """
    try:
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ArtifactError(f"{root}: cannot read the layer tree: {exc}") from exc
    if not real_root.is_dir():
        raise ArtifactError(f"{root}: the layer tree is not a directory")
    top = str(real_root)
    # An explicit stack, not recursion: a deep tree must not meet the recursion limit.
    ancestors: tuple[str, ...] = (top,)  # real paths of the open directories: loop check
    stack = [(iter(_children(root, top, real_root, "")), ancestors)]
    while stack:
        children, ancestors = stack[-1]
        entry = next(children, None)
        if entry is None:
            stack.pop()
        elif entry.is_dir:
            if entry.source in ancestors:
                raise ArtifactError(
                    f"{root / entry.name}: symlink loop (points to its ancestor {entry.source})"
                )
            yield entry
            listing = _children(root, entry.source, real_root, entry.name)
            stack.append((iter(listing), (*ancestors, entry.source)))
        else:
            yield entry


def _children(root: Path, real_dir: str, real_root: Path, prefix: str) -> list[Entry]:
    """The members directly in ``real_dir``, sorted by name bytes (directories as ``name/``)."""
    # Plain strings, not Path objects: building a Path per member cost more than the
    # lstat itself on a tree of 7,000 small files. ``root / rel`` is made only for messages.
    try:
        with os.scandir(real_dir) as it:
            listing = list(it)
    except OSError as exc:
        raise ArtifactError(f"{root / prefix}: cannot list directory: {exc.strerror}") from exc
    found: list[tuple[bytes, Entry]] = []
    for child in listing:
        rel = prefix + child.name
        try:
            key = rel.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ArtifactError(f"{root / rel}: file name is not valid UTF-8") from exc
        source = child.path
        try:
            st = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                source = _resolve_link(root / rel, child.path, real_root)
                st = os.stat(source)
        except OSError as exc:
            raise ArtifactError(f"{root / rel}: cannot stat: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode):
            found.append((key + b"/", Entry(rel + "/", source, DIR_MODE, 0)))
        elif stat.S_ISREG(st.st_mode):
            mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
            found.append((key, Entry(rel, source, mode, st.st_size)))
        else:
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), f"mode {st.st_mode:o}")
            raise ArtifactError(
                f"{root / rel}: unsupported file type ({kind}); a layer may hold only "
                "regular files, directories and symlinks to them"
            )
    found.sort(key=lambda pair: pair[0])
    return [entry for _, entry in found]


def _resolve_link(shown: Path, link: str, real_root: Path) -> str:
    try:
        target_text = os.readlink(link)
    except OSError:
        target_text = "?"
    try:
        target = Path(link).resolve(strict=True)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{shown}: dangling symlink (-> {target_text})") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: loop, before Python 3.13
        raise ArtifactError(f"{shown}: cannot resolve symlink (-> {target_text}): {exc}") from exc
    if not target.is_relative_to(real_root):
        raise ArtifactError(
            f"{shown}: symlink points outside the layer tree (-> {target_text}); "
            "copy the file into the tree instead"
        )
    return str(target)
