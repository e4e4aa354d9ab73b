"""Where the aggregated index lives, and the one an older layer-builder left behind.

``aws-lambda-layers/`` holds nothing but runtime directories: the release registry's API
server opens ``<entry>/latest.json`` for every entry there, and a file breaks its scan. So
the aggregated ``{canonical: latest document}`` (for static hosting) is written beside it,
as ``aws-lambda-layers.json`` at the registry root, and an ``aws-lambda-layers/index.json``
written by older versions is removed by the writer. Readers of a checkout read neither:
they follow each runtime's ``latest.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from layer_builder.registry.layout import (
    INDEX_SCHEMA,
    LAYERS_DIR,
    LEGACY_INDEX_FILE,
    STATIC_INDEX_FILE,
    schema_error,
)

__all__ = ["STATIC_INDEX_FILE", "legacy_index"]

log = logging.getLogger(__name__)


def legacy_index(layers_dir: Path) -> Path | None:
    """``aws-lambda-layers/index.json`` if it is the index an older layer-builder wrote.

    It breaks the API server's scan of runtime directories, so the writer removes it; a
    file of any other shape is someone else's and is only warned about.
    """
    path = layers_dir / LEGACY_INDEX_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if isinstance(data, dict) and schema_error(data, INDEX_SCHEMA) is None:
        return path
    log.warning(
        "%s: not written by layer-builder, left in place; it breaks the release registry's "
        "API server, which takes every entry of %s/ for a runtime directory",
        path,
        LAYERS_DIR,
    )
    return None
