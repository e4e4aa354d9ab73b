"""The closed sets of words the package passes around, as ``Literal`` types, defined once.

Every module that names an architecture, a layer layout or an SDK family imports it from here,
so a type checker catches a misspelt word and a new member is added in one line.
"""

from __future__ import annotations

from typing import Literal

#: A Lambda architecture, in Lambda's spelling (``uname -m`` says aarch64 for arm64).
Architecture = Literal["x86_64", "arm64"]
#: How a release's architectures map to layers: one universal layer, or one layer per architecture.
Layout = Literal["universal", "per-arch"]
#: The SDK ecosystem of a layer or a function's runtime.
Family = Literal["python", "node"]
