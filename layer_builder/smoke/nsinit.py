"""The holder of a smoke run's private mount namespace: sets up what the layer's processes see.

Run by :mod:`layer_builder.smoke.environment` as ``unshare --mount ... -- python -I -S
nsinit.py SPEC`` (SPEC a JSON object), before any of the layer's code runs. Inside the new
mount namespace it:

1. opens every directory the run needs (the work directory, the interpreter's prefix, ...)
   and the unpacked layer, while they are still reachable;
2. covers ``hide`` (home directories) with empty read-only tmpfs and ``scratch`` (``/tmp``,
   ``/var/tmp``, ``/dev/shm``) with empty writable tmpfs, as Lambda gives a function an
   empty ``/tmp``;
3. binds the kept directories back at their own paths, and the layer at ``/opt``;
4. makes every other mount read-only (``/proc``, ``/sys`` and ``/dev`` aside, which need
   privileges to write anyway);

then prints ``ready`` and waits until its standard input closes (the run is over, or
layer-builder died). Only the standard library: it runs with ``-I -S``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
#: statvfs flags that are the same bits as mount flags and must be kept on a remount
#: (a user namespace may not drop them from a mount it inherited).
_KEEP_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 64 | 1024 | 2048 | 4096
_PRIVILEGED = ("/proc", "/sys", "/dev")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            raw = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash as octal
            points.append(raw.encode("latin-1", "surrogateescape").decode("unicode_escape"))
    return points


def setup(spec: dict[str, object]) -> None:
    hide = [p for p in spec["hide"] if os.path.isdir(p)]  # type: ignore[attr-defined]
    scratch = [p for p in spec["scratch"] if os.path.isdir(p)]  # type: ignore[attr-defined]
    covered = hide + scratch
    keep = [p for p in spec["keep"] if _under(p, covered) and os.path.isdir(p)]  # type: ignore[attr-defined]
    fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in [*keep, str(spec["layer"])]}
    for root in hide:
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for root in scratch:
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=512m")
    for path in keep:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fds[path]}", path, None, MS_BIND | MS_REC)
    opt = str(spec["opt"])
    _mount(f"/proc/self/fd/{fds[str(spec['layer'])]}", opt, None, MS_BIND | MS_REC)
    for fd in fds.values():
        os.close(fd)
    for point in _mount_points():
        if point in scratch or (_under(point, list(_PRIVILEGED)) and point not in (opt,)):
            continue
        try:
            flags = os.statvfs(point).f_flag & _KEEP_FLAGS
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError:
            if point in ("/", opt):
                raise  # the host's files and the layer must not be writable
            # a mount hidden under another one, or one the kernel will not remount:
            # what is under it is out of reach or not ours to protect


def main() -> int:
    try:
        setup(json.loads(sys.argv[1]))
    except OSError as exc:
        print(f"isolation failed: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    sys.stdin.read()  # until layer-builder closes it, or dies
    return 0


if __name__ == "__main__":
    sys.exit(main())
