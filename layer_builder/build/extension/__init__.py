"""The Lambda extension in a layer: manifests, verified binaries, pin refresh.

An extension manifest (``extensions/*.yml``, format in ``extensions/README.md``) says where
an extension binary comes from, which version, and its pinned sha256 per architecture.

- :mod:`.manifest`: :func:`load_manifest` reads and validates a manifest into an
  :class:`ExtensionManifest`;
- :mod:`.resolve`: :func:`resolve_binary` fetches and checks one architecture's binary
  (downloaded and verified, or a local ``--extension-file``; always an ELF executable for that
  architecture); :func:`file_url` says where it comes from;
- :mod:`.pins`: :func:`pin` refreshes a manifest's version and sha256 pins.

:mod:`layer_builder.build.launcher` turns the binaries of one layer into the files the
assembler writes. The names below are the package's interface; import them from here.
"""

from __future__ import annotations

from layer_builder.build.extension.manifest import (
    DEFAULT_REGISTRY,
    EXTENSIONS_DIR,
    NOT_PINNED,
    ArchFile,
    ExtensionManifest,
    load_manifest,
)
from layer_builder.build.extension.pins import pin
from layer_builder.build.extension.resolve import (
    LayerFile,
    ResolvedBinary,
    file_url,
    has_binary,
    parse_extension_file_args,
    resolve_binary,
)

__all__ = [
    "DEFAULT_REGISTRY",
    "EXTENSIONS_DIR",
    "NOT_PINNED",
    "ArchFile",
    "ExtensionManifest",
    "LayerFile",
    "ResolvedBinary",
    "file_url",
    "has_binary",
    "load_manifest",
    "parse_extension_file_args",
    "pin",
    "resolve_binary",
]
