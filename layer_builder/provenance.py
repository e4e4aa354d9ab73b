"""Which commit and workflow run built a layer: read from the CI's standard variables.

GitHub Actions sets ``GITHUB_SHA``, ``GITHUB_REPOSITORY``, ``GITHUB_SERVER_URL`` and
``GITHUB_RUN_ID`` in every job; any other CI can set the same four to get the same record.
``build`` records them in the build manifest, ``publish`` copies them into the registry's
version document (``provenance``), with the URL of the zip's attestation when the release
workflow passes it (``--attestation``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from layer_builder.errors import ArgumentError

_SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def provenance_from_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """``{commit, repository, workflow_run}`` from the GitHub variables, or None outside CI.

    A variable that is set but malformed is an ArgumentError naming it: a wrong record of
    where a layer came from is worse than none.
    """
    sha = env.get("GITHUB_SHA", "").strip().lower()
    repo = env.get("GITHUB_REPOSITORY", "").strip()
    if not sha or not repo:
        return None
    if not _SHA_RE.match(sha):
        raise ArgumentError(f"GITHUB_SHA: {sha!r} is not a commit id")
    if not _REPO_RE.match(repo):
        raise ArgumentError(f"GITHUB_REPOSITORY: {repo!r} is not OWNER/NAME")
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    record = {"commit": sha, "repository": f"{server}/{repo}"}
    run_id = env.get("GITHUB_RUN_ID", "").strip()
    if run_id:
        if not run_id.isdigit():
            raise ArgumentError(f"GITHUB_RUN_ID: {run_id!r} is not a run id")
        record["workflow_run"] = f"{server}/{repo}/actions/runs/{run_id}"
    return record


def with_attestation(record: Mapping[str, str] | None, url: str | None) -> dict[str, str] | None:
    """``record`` plus the attestation URL (``--attestation``, checked by the CLI)."""
    if url is None:
        return dict(record) if record else None
    return {**(record or {}), "attestation": url}
