"""``layer-builder smoke``: run a built layer the way Lambda runs it, before it ships.

``api`` (the Extensions and Runtime APIs), ``environment`` (the layer at /opt, processes,
leftovers), ``runtimes`` (awslambdaric, the Node loop, the sample functions), ``sentry`` (a
fake Sentry), ``lifecycle`` (init, invoke, shutdown with Lambda's limits), ``runner`` (one zip,
every architecture, the bare baseline) and ``report``.
"""

from __future__ import annotations

from layer_builder.smoke.report import SmokeFailed, ZipReport
from layer_builder.smoke.runner import SmokeOptions, smoke_zip

__all__ = ["SmokeFailed", "SmokeOptions", "ZipReport", "smoke_zip"]
