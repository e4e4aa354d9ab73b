"""Lock files: every package a layer installs, pinned to one version and digest, committed
beside the layer's config and installed with hash checking by ``build``.

Python: one pip requirements file per architecture the config lists,
``<config stem>.lock.<arch>.txt`` (``name==version --hash=sha256:...`` for every wheel,
resolved by pip for that architecture's Lambda platform and the lowest runtime's Python), and
installed with ``pip install --require-hashes --no-deps``. pip here cannot install from a
PEP 751 ``pylock.toml``, hence requirements files.

Node: npm's own ``<config stem>.package-lock.json`` (every package with ``resolved`` and
``integrity``), installed with ``npm ci``.

A lock records the SDK version it was made for; a build of another version stops (exit 2)
with the command that updates the lock, so a lock is never silently ignored.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from layer_builder import proc
from layer_builder.build import sdk
from layer_builder.config import LayerConfig
from layer_builder.errors import ConfigError, InstallError
from layer_builder.fsutil import write_replacing
from layer_builder.model import ReleaseVersion

log = logging.getLogger(__name__)

#: ``auto``: use the lock when the config has one; ``require``: fail without one (the release
#: workflow); ``off``: resolve afresh (``--no-lock``).
LockMode = Literal["auto", "require", "off"]
_HEADER = "# layer-builder-lock:"
_HEADER_RE = re.compile(
    r"^# layer-builder-lock: (?P<req>\S+) python=(?P<py>\S+) arch=(?P<arch>\S+)$"
)


def python_lock_path(cfg: LayerConfig, arch: str) -> Path:
    return cfg.path.with_name(f"{cfg.path.stem}.lock.{arch}.txt")


def node_lock_path(cfg: LayerConfig) -> Path:
    return cfg.path.with_name(f"{cfg.path.stem}.package-lock.json")


def lock_files(cfg: LayerConfig) -> list[Path]:
    """Every lock file ``cfg`` has (or would have)."""
    if cfg.family == "python":
        return [python_lock_path(cfg, arch) for arch in cfg.architectures]
    return [node_lock_path(cfg)]


def update_command(cfg: LayerConfig, sdk_version: str, *, portable: bool = False) -> str:
    """The command that (re)writes ``cfg``'s lock, with the config's path relative to the
    working directory when it is below it. Outside it, the path as given (it works from
    anywhere), or with ``portable`` (a lock's header, committed: it must name no machine's
    directories) only the config's file name."""
    shown = os.path.relpath(cfg.path) if cfg.path.is_absolute() else str(cfg.path)
    if shown.startswith(".."):
        shown = cfg.path.name if portable else os.path.abspath(cfg.path)
    return f"layer-builder lock {shown} --version {sdk_version}"


@dataclass(frozen=True)
class Lock:
    """The lock a build installs from: its files, checked to be for this SDK version."""

    cfg: LayerConfig
    sdk_version: str

    def install(self, arch: str, layer_root: Path) -> None:
        if self.cfg.family == "python":
            sdk.install_python_locked(self.cfg, arch, layer_root, python_lock_path(self.cfg, arch))
        else:
            lock = node_lock_path(self.cfg)
            sdk.install_node_locked(self.cfg, self.sdk_version, arch, layer_root, lock)

    def describe(self) -> str:
        return ", ".join(p.name for p in lock_files(self.cfg))


def for_build(cfg: LayerConfig, version: ReleaseVersion, mode: LockMode) -> Lock | None:
    """The lock ``build`` installs from, or None to resolve afresh; checked before any work.

    ConfigError (exit 2) naming the lock file and the command that updates it when the lock
    is for another SDK version or platform, or (``require``) missing.
    """
    if mode == "off":
        return None
    sdk_version = cfg.sdk_version(version)
    fix = update_command(cfg, version.text)
    if cfg.sdk.source == "path":
        if mode == "require":
            raise ConfigError(
                str(cfg.path), "sdk.source", "a local SDK checkout cannot be locked; --locked "
                "needs an SDK from the package index"
            )  # fmt: skip
        return None
    files = lock_files(cfg)
    missing = [p for p in files if not p.exists()]
    if missing and (mode == "require" or len(missing) < len(files)):
        raise ConfigError(str(missing[0]), None, f"lock file missing; run `{fix}` and commit it")
    if missing:
        log.info("%s: no lock file; dependencies are resolved afresh", cfg.path)
        return None
    for path in files:
        locked = _locked_sdk(cfg, path)
        if locked != sdk_version:
            raise ConfigError(
                str(path), None, f"locks {cfg.sdk.package} {locked}, this build needs "
                f"{sdk_version}; run `{fix}` and commit it (or build with --no-lock)"
            )  # fmt: skip
        if cfg.family == "python":
            _check_python_header(cfg, path, fix)
    return Lock(cfg, sdk_version)


def _locked_sdk(cfg: LayerConfig, path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the lock file: {exc}") from None
    if cfg.family == "python":
        wanted = _normalise(cfg.sdk.package)
        for line in text.splitlines():
            name, sep, version = line.split(" ", 1)[0].partition("==")
            if sep and _normalise(name) == wanted:
                return version
        return None
    try:
        data = json.loads(text)
        deps = data["packages"][""]["dependencies"]
        return str(deps[cfg.sdk.package])
    except (ValueError, KeyError, TypeError):
        return None


def _check_python_header(cfg: LayerConfig, path: Path, fix: str) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[1:2]
    m = _HEADER_RE.match(first[0]) if first else None
    python = sdk.python_version_for(cfg.compatible_runtimes)
    if m is None:
        raise ConfigError(str(path), None, f"not a layer-builder lock file; run `{fix}`")
    if m["py"] != python:
        raise ConfigError(
            str(path), None, f"is for Python {m['py']}, the config's lowest runtime is {python}; "
            f"run `{fix}` and commit it"
        )  # fmt: skip


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- writing a lock ------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenLock:
    path: Path
    packages: tuple[tuple[str, str], ...]  # (name, version), sorted
    changed: bool


def write_locks(cfg: LayerConfig, version: ReleaseVersion) -> list[WrittenLock]:
    """Resolve the SDK and every dependency for each platform the layer needs and write the
    lock files beside the config (atomically; unchanged files are left alone)."""
    if cfg.sdk.source == "path":
        raise ConfigError(
            str(cfg.path), "sdk.source", "a local SDK checkout cannot be locked (lock the "
            "packages of an SDK from the package index)"
        )  # fmt: skip
    sdk_version = cfg.sdk_version(version)
    header = f"# Written by `{update_command(cfg, version.text, portable=True)}`; do not edit.\n"
    written = []
    with tempfile.TemporaryDirectory(prefix="layer-builder-lock-") as tmp:
        work = Path(tmp)
        if cfg.family == "python":
            python = sdk.python_version_for(cfg.compatible_runtimes)
            for arch in cfg.architectures:
                report = work / f"report-{arch}.json"
                requirement = f"{cfg.sdk.package}=={sdk_version}"
                proc.run(
                    sdk.pip_resolve_command(requirement, work / arch, arch, python, report),
                    what=f"resolving {requirement} for {arch}",
                )
                pins = _pins(json.loads(report.read_text(encoding="utf-8")), report)
                text = header + f"{_HEADER} {requirement} python={python} arch={arch}\n"
                text += "".join(f"{n}=={v} \\\n    --hash=sha256:{h}\n" for n, v, h in pins)
                path = python_lock_path(cfg, arch)
                changed = _write(path, text)
                written.append(WrittenLock(path, tuple((n, v) for n, v, _ in pins), changed))
        else:
            target = work / "nodejs"
            target.mkdir()
            sdk.write_node_package_json(cfg, sdk_version, target)
            sdk.run_npm("lock", cfg, sdk_version, cfg.architectures[0], target)
            data = json.loads((target / "package-lock.json").read_text(encoding="utf-8"))
            packages = _npm_packages(data, target / "package-lock.json")
            path = node_lock_path(cfg)
            changed = _write(path, json.dumps(data, indent=2) + "\n")
            written.append(WrittenLock(path, packages, changed))
    return written


def _pins(report: Mapping[str, Any], where: Path) -> list[tuple[str, str, str]]:
    pins = []
    for item in report.get("install", []):
        meta = item.get("metadata") or {}
        archive = (item.get("download_info") or {}).get("archive_info") or {}
        digest = (archive.get("hashes") or {}).get("sha256")
        if not digest and str(archive.get("hash", "")).startswith("sha256="):
            digest = archive["hash"].split("=", 1)[1]
        if not digest:
            raise InstallError(
                f"{meta.get('name')} {meta.get('version')}: the package index gives no sha256 "
                "for its wheel, so it cannot be locked"
            )
        pins.append((_normalise(meta["name"]), str(meta["version"]), str(digest)))
    if not pins:
        raise InstallError(f"{where}: pip resolved nothing to install")
    return sorted(pins)


def _npm_packages(data: Mapping[str, Any], where: Path) -> tuple[tuple[str, str], ...]:
    found = set()
    for path, entry in (data.get("packages") or {}).items():
        if not path:
            continue
        if not entry.get("integrity") and not entry.get("link"):
            raise InstallError(f"{where}: {path} has no integrity digest, so it cannot be locked")
        found.add((entry.get("name") or path.rpartition("node_modules/")[2], entry["version"]))
    return tuple(sorted(found))


def _write(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_replacing(path, text)
    return True
