"""The AWS side: which versions hold a zip, which one wins, which permissions to change.

One rule makes racing runs, late commits and re-runs agree without talking to each other:
among the versions that hold the zip, the lowest-numbered one wins. Version numbers only
grow and are never reused, so every run that lists after its own publish sees every lower
version and picks the same winner; the newer duplicates that no registry document records
are deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from layer_builder.aws.clients import LambdaApi, LayerVersionRef, Statement
from layer_builder.publish.plan import MARKER_RE

log = logging.getLogger(__name__)

Check = Callable[[str], None]  # Deadline.check: raise instead of starting a call


@dataclass(frozen=True)
class Holders:
    """Versions found to hold the zip, lowest first, and which of them are verified."""

    versions: tuple[LayerVersionRef, ...]
    verified: frozenset[int]  # CodeSha256 read, or the registry's record for this release

    @property
    def winner(self) -> LayerVersionRef | None:
        return self.versions[0] if self.versions else None


def find_holders(
    api: LambdaApi,
    name: str,
    *,
    marker: str,
    code_sha256: str,
    recorded: int | None,
    arn_of: Callable[[int], str],
    check: Check,
) -> Holders:
    """Versions of ``name`` that hold the zip, anywhere in its history.

    The first page of ``ListLayerVersions`` (newest first, with descriptions) usually
    decides: the registry's recorded version and any version carrying ``marker``. A version
    the registry records for this release is trusted (versions are immutable and their
    numbers never reused). Older pages are read only when nothing was found; a newest
    version without any marker (published before markers) costs one GetLayerVersion.
    """
    check("ListLayerVersions")
    page, next_marker = api.list_versions(name)
    found: dict[int, LayerVersionRef] = {r.version: r for r in page if marker in r.description}
    verified: set[int] = set()
    listed = {r.version: r for r in page}
    if recorded is not None:
        ref = listed.get(recorded)
        if ref is not None and recorded in found:
            verified.add(recorded)
        elif ref is not None or next_marker is not None:
            # Listed without our marker (published before markers), or older than this page.
            check("GetLayerVersion")
            if api.code_sha256(name, recorded) == code_sha256:
                found[recorded] = ref or LayerVersionRef(recorded, arn_of(recorded))
                verified.add(recorded)
        # else: the whole history is listed and the recorded version is gone (deleted).
    if not found and page and not MARKER_RE.search(page[0].description):
        check("GetLayerVersion")
        if api.code_sha256(name, page[0].version) == code_sha256:
            found[page[0].version] = page[0]
            verified.add(page[0].version)
    while not found and next_marker is not None:
        check("ListLayerVersions")
        page, next_marker = api.list_versions(name, next_marker)
        found.update((r.version, r) for r in page if marker in r.description)
    return Holders(tuple(found[v] for v in sorted(found)), frozenset(verified))


def owned(statement_id: str, configured: str) -> bool:
    """Whether a statement id is one this tool writes (and so may remove)."""
    return any(
        statement_id == base or statement_id.startswith(f"{base}-")
        for base in {configured, "public"}
    )


@dataclass(frozen=True)
class PermissionChanges:
    remove: tuple[str, ...]  # statement ids
    add: tuple[Statement, ...]

    @property
    def empty(self) -> bool:
        return not self.remove and not self.add

    def describe(self) -> list[str]:
        out = [f"remove permission {sid}" for sid in self.remove]
        for st in self.add:
            who = st.principal + (f" in {st.organization_id}" if st.organization_id else "")
            out.append(f"add permission {st.statement_id} ({who})")
        return out


def permission_changes(
    present: Sequence[Statement], wanted: Sequence[Statement], configured_id: str
) -> PermissionChanges:
    """What makes a version's policy grant exactly what the config asks for.

    Statements are compared by what they grant (principal, organization id, action), not
    by id: a public ``public`` statement does not satisfy an organization-only config. Our
    statements (by id) that grant something the config no longer asks for are removed;
    statements of others are left alone.
    """
    wanted_grants = {w.grants() for w in wanted}
    keep = [p for p in present if p.grants() in wanted_grants]
    remove = [
        p.statement_id
        for p in present
        if owned(p.statement_id, configured_id) and p.grants() not in wanted_grants
    ]
    have = {p.grants() for p in keep}
    ids_in_use = {p.statement_id for p in present} - set(remove)
    add = []
    for w in wanted:
        if w.grants() in have:
            continue
        if w.statement_id in ids_in_use:
            # Someone else's statement holds our id with other grants: replace it, or the
            # add would conflict forever.
            remove.append(w.statement_id)
        add.append(w)
    return PermissionChanges(tuple(dict.fromkeys(remove)), tuple(add))
