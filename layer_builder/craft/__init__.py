"""``layer-builder craft``: craft's ``aws-lambda-layer`` target on our publisher and registry.

Reads the ``aws-lambda-layer`` targets of a craft config (``.craft.yml``) with craft's keys
(``includeNames``, ``layerName`` with ``{{{major}}}``-style templates, ``compatibleRuntimes``,
``compatibleArchitectures``, ``license``, ``linkPrereleases``), picks the one artifact each
target's ``includeNames`` matches, and plans one release per registry runtime
(:func:`plan_releases`), which :func:`layer_builder.publish.release.run_release` publishes
(the command line is :mod:`layer_builder.cli.craft`). The registry gets what craft writes
(runtime directory and canonical ``aws-layer:<name>`` from ``compatibleRuntimes[].name``,
``sdk_version``, the rendered ``layerName``, per-region versions as strings) plus our fields
(``compatible_runtimes`` from ``versions``, per-architecture ``layers``). Unlike craft, a
failed region is not dropped: the command exits 3 naming it, and a re-run finishes the job.
"""

from __future__ import annotations

from layer_builder.craft.releases import (
    CraftArtifact,
    CraftRelease,
    find_artifact,
    plan_releases,
    read_artifact,
    skipped_as_prerelease,
)
from layer_builder.craft.targets import (
    CANONICAL_PREFIX,
    TARGET_NAME,
    CraftLayerTarget,
    CraftRuntime,
    load_craft_config,
    select_targets,
)

__all__ = [
    "CANONICAL_PREFIX",
    "TARGET_NAME",
    "CraftArtifact",
    "CraftLayerTarget",
    "CraftRelease",
    "CraftRuntime",
    "find_artifact",
    "load_craft_config",
    "plan_releases",
    "read_artifact",
    "select_targets",
    "skipped_as_prerelease",
]
