"""Publishing: credentials and regions -> one layer per (region, architecture) -> results.

The CLI calls, in order: :func:`check_credentials` / :func:`resolve_regions` before the
build (both raise exit-2 errors), then :func:`publish_all` with the built manifests. A
result with failed regions is returned, not raised; the CLI exits 3 naming them.
"""

from __future__ import annotations

from layer_builder.publish.fanout import publish_all
from layer_builder.publish.publisher import LayerPlan, RetryPolicy, plan_layers
from layer_builder.publish.regions import (
    check_credentials,
    parse_regions_arg,
    resolve_regions,
    resolve_target,
)

__all__ = [
    "LayerPlan",
    "RetryPolicy",
    "check_credentials",
    "parse_regions_arg",
    "plan_layers",
    "publish_all",
    "resolve_regions",
    "resolve_target",
]
