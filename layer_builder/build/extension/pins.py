"""``extension pin``: download every architecture's binary of a version, check it, and rewrite
the manifest's ``version`` and sha256 pins in place (comments kept)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from layer_builder.build.extension.manifest import (
    VERSION_HINT,
    VERSION_RE,
    ExtensionManifest,
    load_manifest,
)
from layer_builder.build.extension.resolve import file_url, registry_doc, registry_url
from layer_builder.download import display_url, fetch_unpinned, normalize_sha256
from layer_builder.elf import check_elf
from layer_builder.errors import ArgumentError, ChecksumError, ConfigError, DownloadError
from layer_builder.fsutil import replacing
from layer_builder.validate import parse_yaml

log = logging.getLogger(__name__)


def pin(
    manifest_path: Path, version: str | None = None, *, cache_dir: Path | None = None
) -> dict[str, str]:
    """Download every architecture's binary for ``version`` (default: the registry's latest,
    or the manifest's version with a URL template), check it, and rewrite the manifest's
    ``version`` and sha256 pins. Returns ``{arch: sha256}``."""
    if version is not None and not VERSION_RE.fullmatch(version):
        raise ArgumentError(f"--version: {version!r} is not {VERSION_HINT}")
    manifest = load_manifest(manifest_path)
    if version is None:
        if manifest.registry is not None:
            latest = registry_doc(manifest, "latest").get("version")
            where = display_url(registry_url(manifest, "latest"))
            if not isinstance(latest, str):
                raise DownloadError(f"{where}: no version in the registry document")
            if not VERSION_RE.fullmatch(latest):
                raise DownloadError(f"{where}: version {latest[:70]!r} is not {VERSION_HINT}")
            version = latest
        else:
            version = manifest.version
    pins: dict[str, str] = {}
    for arch, entry in manifest.files.items():
        url = file_url(manifest, arch, version=version)
        path, digest = fetch_unpinned(url, allow_http=manifest.allow_http, cache_dir=cache_dir)
        check_elf(path, arch, what=display_url(url))
        published = _published_sha256(manifest, version, entry.file)
        if published is not None and published != digest:
            raise ChecksumError(
                f"{display_url(url)}: sha256 {digest} differs from the "
                f"registry's checksum {published}"
            )
        pins[arch] = digest
    _rewrite_manifest(manifest_path, version, pins)
    log.info("pinned %s %s: %s", manifest.name, version, pins)
    return pins


def _published_sha256(manifest: ExtensionManifest, version: str, file: str) -> str | None:
    # Newer registry entries may carry `checksums: {"sha256-hex": ...}`; older ones carry none.
    if manifest.registry is None:
        return None
    info = (registry_doc(manifest, version).get("files") or {}).get(file)
    checksums = info.get("checksums") if isinstance(info, dict) else None
    value = checksums.get("sha256-hex") if isinstance(checksums, dict) else None
    return normalize_sha256(value) if isinstance(value, str) else None


def _rewrite_manifest(path: Path, version: str, pins: Mapping[str, str]) -> None:
    """Update ``version`` and ``files.<arch>.sha256`` line by line, keeping comments."""
    out: list[str] = []
    in_files, arch, arch_indent = False, "", -1
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        # Any leading whitespace indents: a tab-led line is inside a multi-line value, never
        # a top-level key (YAML indents with spaces only).
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        key = stripped.split(":", 1)[0].strip() if ":" in stripped else None
        eol = "\n" if line.endswith("\n") else ""
        if key is None or stripped.startswith("#"):
            out.append(line)
            continue
        if indent == 0:
            in_files, arch, arch_indent = key == "files", "", -1
            if key == "version":
                line = f"version: {_yaml_scalar(version)}{eol}"
        elif in_files:
            if arch_indent < 0 or indent <= arch_indent:
                arch, arch_indent = key, indent
            elif key == "sha256" and arch in pins:
                line = f"{' ' * indent}sha256: {pins[arch]}{eol}"
        out.append(line)
    text = "".join(out)
    # Never write a manifest that does not say what we mean: re-read the result first.
    try:  # the reader every manifest goes through (duplicate keys refused, as at load)
        check = parse_yaml(text, str(path))
    except ConfigError:  # a key-like line inside a multi-line value was rewritten
        check = None
    if (
        not isinstance(check, dict)
        or check.get("version") != version
        or any(check["files"][a].get("sha256") != d for a, d in pins.items())
    ):
        raise ConfigError(
            str(path),
            None,
            "cannot update the pins in place; edit them by hand: "
            + ", ".join(f"files.{a}.sha256: {d}" for a, d in pins.items()),
        )
    with replacing(path, mode=path.stat().st_mode & 0o777) as fh:
        fh.write(text.encode("utf-8"))


def _yaml_scalar(value: str) -> str:
    # Always quoted: a bare 25.10 would read back as the float 25.1.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
