"""What an extension launcher script would exec, read from its text.

A universal layer's launcher (``extensions/relay-launcher.sh.j2``) picks its binary by
``uname -m`` in a ``case`` whose arms assign ``binary=/opt/<path>`` and later execs
``"$binary"``. ``verify`` reads those assignments to check, without running anything and with
or without a build manifest, that each machine's arm names a file that is in the layer,
executable, and built for that machine. The reading is tolerant: arms that are not
``machine) ... binary=/opt/PATH ... ;;`` (a fallback ``*)``, an ``echo``/``exit``) are kept
only for their targets, and a plain ``exec /opt/PATH`` counts as a target too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: ``uname -m`` answers and the Lambda architecture whose binaries run there.
MACHINE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}

# One case arm: a pattern at the start of a line, then its body up to `;;` (or `esac`, which
# may end the last arm).
_ARM_RE = re.compile(
    r"^[ \t]*\(?(?P<pattern>[^\s()#;\"'$]+)\)(?P<body>.*?)(?:;;|^[ \t]*esac\b)", re.M | re.S
)
_ASSIGN_RE = re.compile(r"(?:^|[\s;])binary=([\"']?)/opt/(?P<path>[A-Za-z0-9._/+-]+)\1(?=[\s;]|$)")
_EXEC_RE = re.compile(r"(?:^|[\s;])exec[ \t]+([\"']?)/opt/(?P<path>[A-Za-z0-9._/+-]+)\1(?=[\s;]|$)")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class MachineArm:
    """``machine) binary=/opt/<member>``: on ``machine``, the launcher runs ``member``."""

    machine: str  # as `uname -m` answers, e.g. aarch64
    member: str  # the zip member, without /opt/


@dataclass(frozen=True)
class LauncherMap:
    arms: tuple[MachineArm, ...]  # one per machine name a literal arm matches
    targets: tuple[str, ...]  # every member assigned to `binary` or exec'd, sorted, unique


def read_launcher(script: str) -> LauncherMap:
    """The machine-to-binary arms and every exec target of a launcher script."""
    arms: list[MachineArm] = []
    for m in _ARM_RE.finditer(script):
        assigned = [a["path"] for a in _ASSIGN_RE.finditer(m["body"])]
        if not assigned or _GLOB.search(m["pattern"]):
            continue  # not a machine's arm (a fallback, or no binary chosen there)
        for machine in m["pattern"].split("|"):
            if machine:
                arms.append(MachineArm(machine, assigned[-1]))
    targets = {a["path"] for a in _ASSIGN_RE.finditer(script)}
    targets.update(e["path"] for e in _EXEC_RE.finditer(script))
    return LauncherMap(tuple(arms), tuple(sorted(targets)))
