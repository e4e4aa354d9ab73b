"""The AWS side: which versions hold a zip, which one wins, which permissions to change.

One rule makes racing runs, late commits and re-runs agree without talking to each other:
among the versions that hold the zip **with the metadata the run would publish**
(compatible runtimes, architectures, license), the lowest-numbered one wins. Version numbers
only grow and are never reused, so every run that lists the whole history after its own
publish sees every lower version and picks the same winner; the newer duplicates that no
registry document records are deleted. A version that holds the zip with other metadata
(published by hand, or by another config) is never adopted, shared or deleted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from layer_builder.aws.clients import LambdaApi, LayerVersionRef, Statement
from layer_builder.publish.markers import Marker, parse_marker
from layer_builder.publish.plan import LayerPlan
from layer_builder.publish.records import LayerRecord

log = logging.getLogger(__name__)

Check = Callable[[str], None]  # Deadline.check: raise instead of starting a call


def list_history(api: LambdaApi, name: str, check: Check) -> tuple[LayerVersionRef, ...]:
    """Every version of ``name``, newest first: all pages of ``ListLayerVersions`` (one
    page of 50 for most layers). The lowest holder may be anywhere in the history."""
    check("ListLayerVersions")
    page, next_marker = api.list_versions(name)
    refs = list(page)
    while next_marker is not None:
        check("ListLayerVersions")
        page, next_marker = api.list_versions(name, next_marker)
        refs.extend(page)
    by_version: dict[int, LayerVersionRef] = {}
    for ref in refs:  # a publish between two pages shifts them: keep one of each
        by_version.setdefault(ref.version, ref)
    return tuple(by_version[v] for v in sorted(by_version, reverse=True))


@dataclass(frozen=True)
class Holders:
    """Versions found to hold the zip, lowest first, and which of them are verified."""

    versions: tuple[LayerVersionRef, ...]  # the zip and our metadata: may be reused
    verified: frozenset[int]  # CodeSha256 read, or the registry's record for this release
    # The zip (by marker, record or CodeSha256) with other metadata: never reused or deleted.
    other_metadata: tuple[LayerVersionRef, ...] = ()

    @property
    def winner(self) -> LayerVersionRef | None:
        return self.versions[0] if self.versions else None


def conflicts(
    listing: Sequence[LayerVersionRef], plan: LayerPlan
) -> list[tuple[LayerVersionRef, Marker]]:
    """Versions whose marker claims this release (layer and version) with another zip."""
    out = []
    for ref in listing:
        marker = parse_marker(ref.description)
        if (
            marker is not None
            and marker.claims(plan.canonical, plan.release.text)
            and not marker.holds(plan.sha256)
        ):
            out.append((ref, marker))
    return out


def find_holders(
    api: LambdaApi,
    listing: Sequence[LayerVersionRef],
    plan: LayerPlan,
    *,
    recorded: int | None,
    check: Check,
) -> Holders:
    """Versions in ``listing`` (the whole history, newest first) that hold the plan's zip.

    A version holds it when its marker names the zip, when the registry records it for this
    release (versions are immutable and their numbers never reused; one listed without our
    marker costs a GetLayerVersion), or, for the newest version when it carries no marker at
    all (published by hand, or before markers), when its CodeSha256 says so (one
    GetLayerVersion). Of those, only the ones with the plan's metadata may be reused.
    """
    name = plan.layer_name
    found: dict[int, LayerVersionRef] = {}
    verified: set[int] = set()
    listed = {r.version: r for r in listing}
    for ref in listing:
        marker = parse_marker(ref.description)
        if marker is not None and marker.holds(plan.sha256):
            found[ref.version] = ref
    if recorded is not None and recorded in listed:
        if recorded in found:
            verified.add(recorded)
        else:
            check("GetLayerVersion")
            if api.code_sha256(name, recorded) == plan.code_sha256:
                found[recorded] = listed[recorded]
                verified.add(recorded)
    # else: the whole history is listed and the recorded version is gone (deleted).
    if not found and listing and parse_marker(listing[0].description) is None:
        check("GetLayerVersion")
        if api.code_sha256(name, listing[0].version) == plan.code_sha256:
            found[listing[0].version] = listing[0]
            verified.add(listing[0].version)
    wanted = plan.metadata()
    ordered = [found[v] for v in sorted(found)]
    return Holders(
        tuple(r for r in ordered if r.metadata() == wanted),
        frozenset(verified),
        tuple(r for r in ordered if r.metadata() != wanted),
    )


def describe_metadata(ref: LayerVersionRef) -> str:
    """A version's listed metadata, for the line that says why it is not reused."""
    runtimes = ", ".join(sorted(ref.runtimes or ())) or "none"
    archs = ", ".join(sorted(ref.architectures or ())) or "none"
    return f"runtimes {runtimes}; architectures {archs}; license {ref.license_info or 'none'}"


def _hex_of(code_sha256: str) -> str | None:
    try:
        raw = base64.b64decode(code_sha256, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def recorded_duplicates(
    listing: Sequence[LayerVersionRef], record: LayerRecord, region: str, plan: LayerPlan
) -> list[tuple[LayerVersionRef, str]]:
    """(version, code_sha256) of unrecorded newer duplicates of zips the registry records
    for this layer in ``region`` (other releases', or an earlier zip's): versions carrying
    our marker for that zip and the recorded version's metadata, numbered above it, that no
    document records. The caller reads each one's CodeSha256 before deleting it."""
    listed = {r.version: r for r in listing}
    out = []
    for code, regions in sorted(record.contents.items()):
        kept = regions.get(region)
        sha = _hex_of(code)
        if code == plan.code_sha256 or kept is None or kept not in listed or sha is None:
            continue
        metadata = listed[kept].metadata()
        for ref in sorted(listing, key=lambda r: r.version):
            marker = parse_marker(ref.description)
            if (
                ref.version > kept
                and marker is not None
                and marker.holds(sha)
                and ref.metadata() == metadata
                and not record.is_protected(region, ref.version)
            ):
                out.append((ref, code))
    return out


_ACCOUNT_SUFFIX_RE = re.compile(r"-\d{12}")


def owned(statement_id: str, configured: str, *, public_is_ours: bool = False) -> bool:
    """Whether a statement id is one this tool writes (and so may remove): exactly the
    configured id and ``<configured>-<account>`` (one per configured account), plus
    ``public`` and ``public-<account>`` on a version we published (``public_is_ours``: the
    default id, which an earlier config may have written). ``public-partner`` is never ours.
    """
    bases = {configured, "public"} if public_is_ours else {configured}
    return any(
        statement_id == base
        or (statement_id.startswith(f"{base}-")
            and _ACCOUNT_SUFFIX_RE.fullmatch(statement_id[len(base):]) is not None)
        for base in bases
    )  # fmt: skip


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
    present: Sequence[Statement],
    wanted: Sequence[Statement],
    configured_id: str,
    *,
    public_is_ours: bool = False,
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
        if owned(p.statement_id, configured_id, public_is_ours=public_is_ours)
        and p.grants() not in wanted_grants
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
