"""Yank and unyank a release in the registry: take a bad release back without deleting it.

A yanked release keeps its version document (with a ``yanked`` field: ``reason``, ``at``)
and every layer version in AWS: functions that use it keep working, and the record of what
was published stays. What changes is where the links point: ``latest.json``,
``<major>.json`` and ``<major>.<minor>.json`` move back to the newest older release that is
not yanked, so readers of the registry (Sentry's integration through the API server,
``registry latest``, ``function enable``) stop handing it out.

Every step is idempotent and ordered so that an interrupted run is finished by running it
again: the document is marked first, then the links move, then the static index follows.
``unyank`` removes the field and moves the links forward to the release again wherever it
is newer than what they point at (the writer's forward-only rule).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from layer_builder.errors import ArgumentError, RegistryError
from layer_builder.fsutil import fsync_dir
from layer_builder.model import ReleaseVersion
from layer_builder.registry.files import clean_stray_temps, registry_lock
from layer_builder.registry.index import STATIC_INDEX_FILE
from layer_builder.registry.layout import (
    INDEX_SCHEMA,
    LATEST_FILE,
    LAYERS_DIR,
    VERSION_SCHEMA,
    YANKED,
    Document,
    collect_index,
    read_version_document,
    runtime_dirs,
    yank_info,
)
from layer_builder.registry.writer import (
    LinkUpdate,
    check_own,
    link_if_changed,
    link_names,
    linked_version,
    plan_links,
    render_document,
    render_index,
    timestamp,
    write_if_changed,
)
from layer_builder.versions import AUTO, is_prerelease, link_key, scheme_for_runtimes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YankResult:
    """What :func:`set_yanked` did, for the CLI to report."""

    canonical: str
    version: str
    version_file: Path
    yanked: bool  # the state after the run
    document_changed: bool
    links: tuple[LinkUpdate, ...]
    written: tuple[Path, ...]
    removed_links: tuple[Path, ...]

    @property
    def latest_version(self) -> str | None:
        return next((link.current for link in self.links if link.name == LATEST_FILE), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "canonical": self.canonical,
            "version": self.version,
            "version_file": str(self.version_file),
            "yanked": self.yanked,
            "document_changed": self.document_changed,
            "links": [
                {
                    "name": link.name,
                    "previous": link.previous,
                    "current": link.current,
                    "reason": link.reason,
                    "moved": link.moved,
                }
                for link in self.links
            ],
            "latest_version": self.latest_version,
            "written": [str(p) for p in self.written],
            "removed_links": [str(p) for p in self.removed_links],
        }


def find_release(root: Path, canonical: str, version: str) -> tuple[Path, Document]:
    """``<runtime>/<version>.json`` of ``canonical`` under registry ``root``, read and checked.

    RegistryError (exit 2) naming what was looked for when there is none.
    """
    ReleaseVersion.parse(version, what="VERSION")
    if not root.is_dir():
        raise RegistryError(f"{root}: no such registry directory (pass --registry DIR)")
    layers_dir = root / LAYERS_DIR
    for runtime in runtime_dirs(layers_dir):
        docs = _documents(runtime)
        if not any(d["canonical"] == canonical for d in docs.values()):
            continue
        path = runtime / f"{version}.json"
        if path in docs and docs[path]["canonical"] == canonical:
            return path, docs[path]
        known = sorted(
            (p.stem for p, d in docs.items() if d["canonical"] == canonical),
            key=lambda t: link_key(t, AUTO),
        )
        raise RegistryError(
            f"{path}: no release {version} of {canonical} in the registry "
            f"(recorded: {', '.join(known[-6:]) or 'none'})"
        )
    raise RegistryError(f"{layers_dir}: no layer {canonical!r} in the registry")


def set_yanked(
    root: Path,
    canonical: str,
    version: str,
    *,
    reason: str | None,
    now: Callable[[], datetime] | None = None,
) -> YankResult:
    """Mark release ``version`` of ``canonical`` yanked (``reason`` given) or not (None).

    Idempotent: yanking a yanked release keeps its ``at`` (a new reason replaces the old
    one); unyanking a release that is not yanked changes nothing but the links, if an
    interrupted run left them behind.
    """
    if reason is not None and not reason.strip():
        raise ArgumentError("--reason: say why the release is yanked (it is shown to readers)")
    clock = now or (lambda: datetime.now(timezone.utc))
    with registry_lock(root):
        path, doc = find_release(root, canonical, version)
        runtime = path.parent
        layers_dir = runtime.parent
        clean_stray_temps(runtime, layers_dir, root)
        new = {k: v for k, v in doc.items() if k != YANKED}
        if reason is not None:
            old = yank_info(doc)
            new[YANKED] = {
                "reason": reason.strip(),
                "at": old["at"] if old and "at" in old else timestamp(clock()),
            }
        check_own(new, VERSION_SCHEMA, path)
        docs = _documents(runtime)
        docs[path] = new
        this = ReleaseVersion.parse(version, what=str(path))
        plan = _plan(runtime, docs, this, yanking=reason is not None)
        if reason is not None and any(u.name == LATEST_FILE and not u.current for u in plan):
            raise RegistryError(
                f"{path}: no other release of {canonical} that is not yanked is older than "
                f"{version}, so latest.json would point at nothing (the API server would fail "
                "for every layer); publish a fixed release first, then yank this one"
            )
        written: list[Path] = []
        removed: list[Path] = []
        # Order: the document first (a reader following a link sees the field at once),
        # then the links, then the static index that follows the links.
        write_if_changed(path, render_document(new), written)
        document_changed = bool(written)
        for link in plan:
            target = runtime / link.name
            if link.current is None:
                if os.path.lexists(target):
                    target.unlink()
                    fsync_dir(runtime)
                    removed.append(target)
            elif link.moved or not target.is_symlink():
                link_if_changed(target, f"{link.current}.json", written)
        index = collect_index(layers_dir)
        index_path = root / STATIC_INDEX_FILE
        check_own(index, INDEX_SCHEMA, index_path)
        write_if_changed(index_path, render_index(index), written)
    for link in plan:
        log.info("%s/%s -> %s (%s)", runtime.name, link.name, link.current, link.reason)
    return YankResult(
        canonical,
        version,
        path,
        reason is not None,
        document_changed,
        plan,
        tuple(written),
        tuple(removed),
    )


def _documents(runtime: Path) -> dict[Path, Document]:
    """Every version document of one runtime directory (links and base.json left out)."""
    docs: dict[Path, Document] = {}
    for path in sorted(runtime.glob("*.json")):
        if path.is_symlink() or path.name == "base.json" or path.name.startswith("."):
            continue
        try:
            ReleaseVersion.parse(path.stem, what=str(path))
        except ArgumentError:
            continue  # not a version file: someone else's
        docs[path] = read_version_document(path)
    return docs


def _plan(
    runtime: Path, docs: dict[Path, Document], this: ReleaseVersion, *, yanking: bool
) -> tuple[LinkUpdate, ...]:
    # Versions compare by the layer's own scheme (PEP 440 for Python, SemVer for Node), as
    # the writer links them.
    doc = docs.get(runtime / f"{this.text}.json") or {}
    runtimes = doc.get("compatible_runtimes")
    scheme = scheme_for_runtimes(runtimes if isinstance(runtimes, list) else [])
    this_key = link_key(this.text, scheme)
    if not yanking:
        # Unyanked, the release takes its links back by the writer's forward-only rule.
        hold = "prerelease" if is_prerelease(this.text, scheme) else None
        return plan_links(runtime, this, hold, scheme)
    plan = []
    for name in link_names(this):
        linked = linked_version(runtime / name)
        before = linked.text if linked else None
        if before is not None and not _is_yanked(docs, runtime, before):
            plan.append(LinkUpdate(name, before, before, "kept: not yanked"))
            continue
        # Back to the newest older release of the link's group that is not yanked. Newer
        # ones were held back by the writer (partial, prerelease): not ours to link.
        group = _group(name, this)
        candidates = [
            v
            for v in (ReleaseVersion.parse(p.stem, what=str(p)) for p in docs)
            if link_key(v.text, scheme) < this_key
            and not _is_prerelease(v.text, scheme)
            and not _is_yanked(docs, runtime, v.text)
            and _in_group(v, group)
        ]
        best = max(candidates, key=lambda v: link_key(v.text, scheme), default=None)
        if best is None:
            plan.append(LinkUpdate(name, before, None, "removed: no release left to link"))
        else:
            plan.append(LinkUpdate(name, before, best.text, f"moved back: {this.text} yanked"))
    return tuple(plan)


def _is_prerelease(text: str, scheme: str) -> bool:
    """:func:`is_prerelease` under ``scheme``, or under "auto" for a version the scheme cannot
    read (a document left by an older run)."""
    try:
        return is_prerelease(text, scheme)
    except ArgumentError:
        return is_prerelease(text)


def _group(name: str, this: ReleaseVersion) -> tuple[int, ...]:
    if name == LATEST_FILE:
        return ()
    if name == f"{this.major}.json":
        return (this.major,)
    return (this.major, this.minor)


def _in_group(v: ReleaseVersion, group: tuple[int, ...]) -> bool:
    return (v.major, v.minor)[: len(group)] == group


def _is_yanked(docs: dict[Path, Document], runtime: Path, version: str) -> bool:
    doc = docs.get(runtime / f"{version}.json")
    return doc is not None and yank_info(doc) is not None
