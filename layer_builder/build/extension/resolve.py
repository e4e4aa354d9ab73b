"""An extension's binary for one architecture: where it is downloaded from, fetched and
verified against its pin (or a local ``--extension-file``), always an ELF executable for that
architecture."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from layer_builder.aws.facts import ARCHITECTURES, MACHINE_NAME
from layer_builder.build.extension.manifest import (
    ARCH_ALIASES,
    DEFAULT_REGISTRY,
    ArchFile,
    ExtensionManifest,
)
from layer_builder.download import display_url, fetch, fetch_json, sha256_file
from layer_builder.elf import check_elf, detect_arch, elf_machine
from layer_builder.errors import ArgumentError, ChecksumError, ConfigError, DownloadError
from layer_builder.model import ExtensionInfo
from layer_builder.validate import did_you_mean

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerFile:
    """One file to place in the layer tree: copied from ``source`` or written from ``content``."""

    path: str
    source: Path | None
    content: bytes | None
    mode: int


@dataclass(frozen=True)
class ResolvedBinary:
    """One architecture's extension binary, verified, on this machine."""

    manifest: ExtensionManifest
    arch: str
    source: Path
    info: ExtensionInfo  # path not yet set: that depends on the layout


# --- manifest ---------------------------------------------------------------------------


def _not_a_file(path: Path) -> str:
    """Why ``path`` (which is not a regular file) cannot be an extension binary."""
    if path.is_dir():
        return "is a directory, not a file"
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as exc:
            return "is a symlink loop" if exc.errno == errno.ELOOP else "is a dangling symlink"
    if os.path.exists(path):
        return "is not a regular file (a device or a pipe)"
    return "no such file"


def file_url(manifest: ExtensionManifest, arch: str, *, version: str | None = None) -> str:
    """The download URL of ``arch``'s binary, via the release registry or the URL template."""
    version = version or manifest.version
    entry = _arch_entry(manifest, arch)
    if manifest.url_template is not None:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        try:
            return env.from_string(manifest.url_template).render(
                version=version, arch=arch, machine=MACHINE_NAME[arch], file=entry.file
            )
        except jinja2.TemplateError as exc:
            raise ConfigError(str(manifest.path), "source.url", f"bad template: {exc}") from None
    doc = registry_doc(manifest, version)
    # `files[<name>].url` is the current shape; older documents only have `file_urls`.
    info = (doc.get("files") or {}).get(entry.file)
    urls = doc.get("file_urls") or {}
    url = info.get("url") if isinstance(info, dict) else urls.get(entry.file)
    if not isinstance(url, str):
        listed = ", ".join(sorted(doc.get("files") or doc.get("file_urls") or {})) or "none"
        raise DownloadError(
            f"{display_url(registry_url(manifest, version))}: lists no file {entry.file!r} "
            f"(files: {listed}); check {manifest.path} files.{arch}.file"
        )
    return url


def has_binary(manifest: ExtensionManifest, arch: str) -> bool:
    """Whether the manifest lists a binary for ``arch`` (Relay has no Linux aarch64 build)."""
    return arch in manifest.files


def resolve_binary(
    manifest: ExtensionManifest,
    arch: str,
    *,
    override: Path | None = None,
    cache_dir: Path | None = None,
) -> ResolvedBinary:
    """``manifest``'s binary for ``arch``, downloaded and verified, or ``override``.

    Downloads the pinned binary (verifying its sha256) unless ``override`` names a local
    binary (``--extension-file``), which is not pinned but gets the same ELF check. Raises
    :class:`ConfigError` for an unpinned manifest, :class:`ChecksumError` for a mismatch and
    :class:`ArchitectureError` for a binary that ``arch`` cannot execute.
    """
    if arch not in ARCHITECTURES:
        raise ArgumentError(f"--arch {arch}: unknown architecture (expected x86_64 or arm64)")
    if override is not None:
        if not override.is_file():
            raise ArgumentError(f"--extension-file {override}: {_not_a_file(override)}")
        check_elf(override, arch, what=f"--extension-file {override}")
        binary = override
        # A local binary's version is whatever it was built from; do not claim the manifest's.
        info = ExtensionInfo(
            manifest.name, "unknown", sha256_file(override), str(override), architecture=arch
        )
    else:
        entry = _arch_entry(manifest, arch)
        if entry.sha256 is None:
            raise ConfigError(
                str(manifest.path),
                f"files.{arch}.sha256",
                f"not pinned; run `layer-builder extension pin {manifest.path}`",
            )
        url = file_url(manifest, arch)
        try:
            binary = fetch(url, entry.sha256, allow_http=manifest.allow_http, cache_dir=cache_dir)
        except ChecksumError as exc:
            raise ChecksumError(
                f"{exc} (pinned in {manifest.path} files.{arch}.sha256; if the new file is "
                f"expected, re-pin with `layer-builder extension pin {manifest.path}`)"
            ) from None
        check_elf(binary, arch, what=display_url(url))
        info = ExtensionInfo(
            manifest.name,
            manifest.version,
            entry.sha256,
            manifest.label or display_url(url),
            architecture=arch,
        )
    log.info("extension %s %s for %s from %s", info.name, info.version, arch, info.source)
    return ResolvedBinary(manifest, arch, binary, info)


def parse_extension_file_args(values: Iterable[str], archs: Iterable[str]) -> dict[str, Path]:
    """``--extension-file [ARCH=]PATH`` values to ``{arch: path}``.

    Without ``ARCH=`` the architecture is read from the file's ELF header. ``aarch64`` is
    accepted for ``arm64``. Raises :class:`ArgumentError` naming the argument.
    """
    building = tuple(archs)
    out: dict[str, Path] = {}
    for value in values:
        arg = f"--extension-file {value}"
        prefix, sep, rest = value.partition("=")
        if sep and prefix and "/" not in prefix and "." not in prefix:
            arch = ARCH_ALIASES.get(prefix, prefix)
            if arch not in ARCHITECTURES:
                hint = did_you_mean(prefix, ARCHITECTURES)
                raise ArgumentError(
                    f"{arg}: unknown architecture {prefix!r} (expected x86_64 or arm64{hint})"
                )
            given = rest
        else:
            arch, given = "", value
        path = Path(given)
        if not given.strip():
            raise ArgumentError(f"{arg}: no path given (expected [ARCH=]PATH)")
        if not path.is_file():
            raise ArgumentError(f"{arg}: {_not_a_file(path)}")
        if not arch:
            detected = detect_arch(path)
            if detected is None:
                what = elf_machine(path)
                kind = f"an ELF file for {what}" if what else "not an ELF executable"
                raise ArgumentError(
                    f"{arg}: {kind}; cannot tell its architecture, "
                    "write ARCH=PATH (x86_64 or arm64)"
                )
            arch = detected
        if arch not in building:
            raise ArgumentError(
                f"{arg}: is for {arch}, which this build does not include "
                f"(--arch {' --arch '.join(building)})"
            )
        if arch in out:
            raise ArgumentError(f"{arg}: a second file for {arch} (first: {out[arch]})")
        out[arch] = path
    return out


def _arch_entry(manifest: ExtensionManifest, arch: str) -> ArchFile:
    entry = manifest.files.get(arch)
    if entry is None:
        raise ConfigError(
            str(manifest.path),
            f"files.{arch}",
            f"no {arch} binary is configured; add files.{arch} or pass "
            f"--extension-file {arch}=PATH",
        )
    return entry


def registry_url(manifest: ExtensionManifest, version: str) -> str:
    # The registry service routes /apps/<app>/<version> and appends ".json" itself.
    return f"{(manifest.registry or DEFAULT_REGISTRY).rstrip('/')}/apps/{manifest.app}/{version}"


def registry_doc(manifest: ExtensionManifest, version: str) -> dict[str, Any]:
    url = registry_url(manifest, version)
    doc = fetch_json(url, allow_http=manifest.allow_http)
    if not isinstance(doc, dict):
        raise DownloadError(f"{display_url(url)}: not a release registry document")
    return doc
