"""Publishing: credentials and regions -> one layer per (region, architecture) -> results.

The CLI calls, in order: :func:`check_credentials` / :func:`resolve_regions` before the
build (both raise exit-2 errors), then :func:`plan_publish` with the built manifests and
:func:`publish_all` with those plans (:mod:`layer_builder.publish.release` does it all). A
result with failed regions is returned, not raised; the CLI exits 3 naming them.
"""

from __future__ import annotations

from layer_builder.publish.fanout import Seams, plan_publish, publish_all
from layer_builder.publish.plan import LayerPlan, plan_layers
from layer_builder.publish.publisher import RetryPolicy
from layer_builder.publish.regions import (
    check_credentials,
    parse_regions_arg,
    resolve_regions,
    resolve_target,
)

__all__ = [
    "LayerPlan",
    "RetryPolicy",
    "Seams",
    "check_credentials",
    "parse_regions_arg",
    "plan_layers",
    "plan_publish",
    "publish_all",
    "resolve_regions",
    "resolve_target",
]
