"""Node layer: one copy of the SDK on the cold path when the preload is CommonJS (``-r``).

``@sentry/aws-serverless``'s preload redirects ``_HANDLER`` to its handler shim
``build/npm/run-lambda-handler.mjs``, an ES module that imports ``@sentry/core`` and
``@sentry/node``. After ``NODE_OPTIONS=-r @sentry/aws-serverless/awslambda-auto`` the SDK is
already loaded as CommonJS (766 modules for 10.75.2), and those static imports load its ES
build a second time: measured here, 345-659 ms more before the first invocation, about as much
as the preload itself. (With ``--import`` the preload loads the ES build and the shim reuses
it.)

The build rewrites the shim's static imports of ``@sentry/*`` packages into loads of the copy
the preload already loaded: when the CommonJS build of any of them is in ``require.cache`` (a
``-r`` preload), ``require`` for all of them; else ``import()`` exactly as before. The shim's
own code is unchanged; under ``--import`` it imports what it imported before. A shim that does
not look as expected is left as it is, and the build says so. ``optimize: {single_sdk_copy:
false}`` keeps the npm tree as is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from layer_builder.fsutil import write_replacing

SHIM = "nodejs/node_modules/@sentry/aws-serverless/build/npm/run-lambda-handler.mjs"
#: ``import { a, b as c } from '@sentry/pkg';`` on one line, as the SDK's bundler writes them.
_IMPORT = re.compile(r"^import \{ ([\w$, ]+) \} from '(@sentry/[\w./-]+)';$", re.M)
MARKER = "// layer-builder: single SDK copy"
_PRELUDE = """{marker}: after a CommonJS preload (`-r`), load the SDK's packages
// as CommonJS too, the copy already loaded, instead of a second, ES copy; otherwise import them.
import {{ createRequire as __layerCreateRequire }} from 'node:module';
const __layerRequire = __layerCreateRequire(import.meta.url);
const __layerCjs = {ids}.some((id) => {{
  try {{
    return Boolean(__layerRequire.cache[__layerRequire.resolve(id)]);
  }} catch {{
    return false;
  }}
}});
const __layerLoad = (id) => (__layerCjs ? __layerRequire(id) : import(id));
"""


def _destructure(names: str) -> str:
    """``a, b as c`` (import syntax) -> ``a, b: c`` (destructuring syntax)."""
    parts = [n.strip() for n in names.split(",") if n.strip()]
    return ", ".join(p.replace(" as ", ": ") for p in parts)


def rewrite(source: str) -> tuple[str, int]:
    """The shim's text with its ``@sentry/*`` imports loading the preloaded copy; and how
    many imports were rewritten (0: the text is returned unchanged)."""
    if MARKER in source:
        return source, 0
    count = 0

    def one(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"const {{ {_destructure(m.group(1))} }} = await __layerLoad('{m.group(2)}');"

    body = _IMPORT.sub(one, source)
    if not count:
        return source, 0
    ids = sorted({m.group(2) for m in _IMPORT.finditer(source)})
    return _PRELUDE.format(marker=MARKER, ids=json.dumps(ids)) + body, count


def apply(root: Path) -> tuple[str, bool]:
    """Rewrite the layer's handler shim in place; return the line the build prints and
    whether the shim is now ours (the SBOM lists it as a file layer-builder wrote)."""
    shim = root / SHIM
    if not shim.is_file():
        return f"single SDK copy: no {SHIM} in this SDK version; left as npm installed it", False
    text = shim.read_text(encoding="utf-8")
    if MARKER in text:
        return "single SDK copy: the handler shim already reuses the preloaded SDK", True
    new, count = rewrite(text)
    if not count:
        return f"single SDK copy: {SHIM} has no import of @sentry/* to reuse; left as it was", False
    # A new file, not a write through: the tree may share this file by hard link with
    # another architecture's tree or the install it was copied from.
    write_replacing(shim, new)
    return (
        f"single SDK copy: the handler shim reuses the preloaded SDK ({count} imports of "
        "@sentry/* packages)",
        True,
    )
