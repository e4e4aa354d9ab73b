"""The Lambda extension in a layer: manifests, verified binaries, launcher, pin refresh.

An extension manifest (``extensions/*.yml``, format in ``extensions/README.md``) says where
an extension binary comes from, which version, and its pinned sha256 per architecture.
:func:`resolve_binary` fetches and checks one architecture's binary (downloaded and
verified, or a local ``--extension-file``; always an ELF executable for that architecture);
:mod:`layer_builder.build.launcher` turns the binaries of one layer into the files the
assembler writes. :func:`pin` refreshes a manifest's version and pins.
"""

from __future__ import annotations

import difflib
import errno
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import yaml

from layer_builder.aws.facts import ARCHITECTURES, MACHINE_NAME
from layer_builder.download import (
    display_url,
    fetch,
    fetch_json,
    fetch_unpinned,
    normalize_sha256,
    sha256_file,
)
from layer_builder.elf import check_elf, detect_arch, elf_machine
from layer_builder.errors import ArgumentError, ChecksumError, ConfigError, DownloadError
from layer_builder.model import PER_ARCH, ExtensionInfo
from layer_builder.yamlfile import read_yaml

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = "https://release-registry.services.sentry.io"
#: The sha256 placeholder of a manifest whose binary has not been pinned yet.
NOT_PINNED = "NOT-PINNED"
EXTENSIONS_DIR = "extensions"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: An extension version: it goes into URLs, file names and the manifest as one token.
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_VERSION_HINT = "a version such as 25.10.0 (letters, digits, '.', '_', '+', '-'; 64 at most)"
_KEYS = {
    "": ("name", "version", "label", "source", "allow_http", "files", "install_path", "launcher"),
    "source": ("registry", "app", "url"),
    "files.*": ("file", "sha256"),
    "launcher": ("template", "vars"),
}
_BUILTIN_VARS = (
    "name", "version", "arch", "machine", "binary", "label", "binaries", "architectures", "layout"
)  # fmt: skip
_ARCH_ALIASES = {machine: arch for arch, machine in MACHINE_NAME.items()}
#: Builds the ConfigError for a key path of the manifest being loaded.
_Fail = Callable[[str | None, str], ConfigError]


@dataclass(frozen=True)
class ArchFile:
    """One architecture's binary: its file name (in the registry or the URL template)."""

    file: str
    sha256: str | None  # None: not pinned yet


@dataclass(frozen=True)
class ExtensionManifest:
    """A validated extension manifest. Paths in it are resolved against the manifest's folder."""

    path: Path
    name: str
    version: str
    registry: str | None  # release registry base URL, or None with a URL template
    app: str
    url_template: str | None
    allow_http: bool
    files: Mapping[str, ArchFile]
    install_path: str | None  # where the binary goes when a launcher starts it
    launcher_template: Path | None
    launcher_vars: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # replaces the URL in ExtensionInfo.source (e.g. the stand-in)

    @property
    def binary_path(self) -> str:
        """The binary's POSIX path inside a one-architecture (per-arch) layer."""
        return self.install_path or f"{EXTENSIONS_DIR}/{self.name}"

    def binary_path_for(self, arch: str, layout: str) -> str:
        """Where ``arch``'s binary goes: per-arch, :attr:`binary_path`; universal, one file
        per machine beside it (``relay/relay-aarch64``) for the launcher to pick from."""
        if layout == PER_ARCH:
            return self.binary_path
        if self.launcher_template is None:
            raise ConfigError(
                str(self.path),
                "launcher",
                "a universal layer needs a launcher that picks the binary by machine; add "
                "launcher: (see extensions/README.md) or set layout: per-arch in the layer config",
            )
        return f"{self.binary_path}-{MACHINE_NAME[arch]}"


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


def load_manifest(path: Path) -> ExtensionManifest:
    """Read and validate an extension manifest; :class:`ConfigError` names the file and key."""
    where = str(path)
    raw = read_yaml(path, "extension manifest")

    def fail(key: str | None, message: str) -> ConfigError:
        return ConfigError(where, key, message)

    top = _mapping(raw, "", fail)
    _check_keys(top, "", fail)
    name = _string(top, "name", fail)
    if not _NAME_RE.fullmatch(name):
        raise fail("name", f"{name!r} is not a file name (letters, digits, '.', '_', '-')")
    version = _string(top, "version", fail)
    if not _VERSION_RE.fullmatch(version):
        raise fail("version", f"{version!r} is not {_VERSION_HINT}")
    allow_http = top.get("allow_http", False)
    if not isinstance(allow_http, bool):
        raise fail("allow_http", "must be true or false")

    source = _mapping(top.get("source"), "source", fail)
    _check_keys(source, "source", fail)
    url_template = registry = None
    if "url" in source:
        if source.keys() & {"registry", "app"}:
            raise fail("source", "set either `url` (a template) or `registry`/`app`, not both")
        url_template = _string(source, "url", fail, prefix="source.")
    else:
        registry = (
            _string(source, "registry", fail, prefix="source.")
            if "registry" in source
            else DEFAULT_REGISTRY
        )
    app = _string(source, "app", fail, prefix="source.") if "app" in source else "relay"

    files: dict[str, ArchFile] = {}
    for arch, entry in _mapping(top.get("files"), "files", fail).items():
        key = f"files.{arch}"
        if arch not in ARCHITECTURES:
            hint = _ARCH_ALIASES.get(str(arch)) or _suggest(str(arch), ARCHITECTURES)
            raise fail(key, f"unknown architecture{_did_you_mean(hint)} (expected x86_64 or arm64)")
        entry = _mapping(entry, key, fail)
        _check_keys(entry, key, fail, schema="files.*")
        pin = str(entry.get("sha256") or NOT_PINNED)
        digest = None if pin == NOT_PINNED else normalize_sha256(pin)
        if pin != NOT_PINNED and digest is None:
            raise fail(f"{key}.sha256", f"{pin!r} is not a sha256 hex digest (or {NOT_PINNED})")
        files[arch] = ArchFile(_string(entry, "file", fail, prefix=f"{key}."), digest)
    if not files:
        raise fail("files", "lists no architecture")

    launcher = top.get("launcher")
    template: Path | None = None
    launcher_vars: dict[str, Any] = {}
    if launcher is not None:
        launcher = _mapping(launcher, "launcher", fail)
        _check_keys(launcher, "launcher", fail)
        template = path.parent / _string(launcher, "template", fail, prefix="launcher.")
        if not template.is_file():
            raise fail("launcher.template", f"{template} not found")
        launcher_vars = dict(_mapping(launcher.get("vars", {}), "launcher.vars", fail))
        for var in launcher_vars:
            if var in _BUILTIN_VARS:
                raise fail(f"launcher.vars.{var}", "is set by layer-builder; pick another name")
    install_path = top.get("install_path")
    if install_path is not None:
        install_path = _layer_path(_string(top, "install_path", fail), fail)
        if template is None:
            raise fail(
                "install_path",
                f"only used with a launcher; without one the binary is {EXTENSIONS_DIR}/{name}",
            )
        if PurePosixPath(install_path).parts[0] == EXTENSIONS_DIR:
            raise fail(
                "install_path",
                f"must be outside {EXTENSIONS_DIR}/: Lambda would start "
                "the binary there directly, without the launcher's arguments",
            )
    elif template is not None:
        raise fail("install_path", "required with a launcher (e.g. relay/relay)")

    return ExtensionManifest(
        path=path,
        name=name,
        version=version,
        registry=registry,
        app=app,
        url_template=url_template,
        allow_http=allow_http,
        files=files,
        install_path=install_path,
        launcher_template=template,
        launcher_vars=launcher_vars,
        label=_string(top, "label", fail) if "label" in top else None,
    )


def _mapping(value: Any, key: str, fail: _Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        if value is None and not key:
            raise fail(None, "is empty; an extension manifest is a mapping (name, version, files)")
        raise fail(key or None, "must be a mapping" if value is not None else "is required")
    return value


def _string(data: Mapping[str, Any], key: str, fail: _Fail, *, prefix: str = "") -> str:
    value = data.get(key)
    if value is None or value == "":
        raise fail(prefix + key, "is required")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads 25.10 as the number 25.1; quoting keeps what the author wrote.
        raise fail(prefix + key, f'must be a string; quote it: "{value}"')
    if not isinstance(value, str):
        raise fail(prefix + key, "must be a string")
    return value


def _check_keys(data: Mapping[str, Any], where: str, fail: _Fail, *, schema: str = "") -> None:
    allowed = _KEYS[schema or where]
    for key in data:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            hint = _suggest(str(key), allowed)
            raise fail(path, f"unknown key{_did_you_mean(hint)} (allowed: {', '.join(allowed)})")


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(hint: str | None) -> str:
    return f"; did you mean {hint!r}?" if hint else ""


def _layer_path(value: str, fail: _Fail) -> str:
    posix = PurePosixPath(value)
    if posix.is_absolute() or ".." in posix.parts or "\\" in value or not posix.parts:
        raise fail("install_path", f"{value!r} must be a relative path inside the layer")
    return str(posix)


# --- resolution -------------------------------------------------------------------------


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
    doc = _registry_doc(manifest, version)
    # `files[<name>].url` is the current shape; older documents only have `file_urls`.
    info = (doc.get("files") or {}).get(entry.file)
    urls = doc.get("file_urls") or {}
    url = info.get("url") if isinstance(info, dict) else urls.get(entry.file)
    if not isinstance(url, str):
        listed = ", ".join(sorted(doc.get("files") or doc.get("file_urls") or {})) or "none"
        raise DownloadError(
            f"{display_url(_registry_url(manifest, version))}: lists no file {entry.file!r} "
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
            arch = _ARCH_ALIASES.get(prefix, prefix)
            if arch not in ARCHITECTURES:
                hint = _did_you_mean(_suggest(prefix, ARCHITECTURES))
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


def _registry_url(manifest: ExtensionManifest, version: str) -> str:
    # The registry service routes /apps/<app>/<version> and appends ".json" itself.
    return f"{(manifest.registry or DEFAULT_REGISTRY).rstrip('/')}/apps/{manifest.app}/{version}"


def _registry_doc(manifest: ExtensionManifest, version: str) -> dict[str, Any]:
    url = _registry_url(manifest, version)
    doc = fetch_json(url, allow_http=manifest.allow_http)
    if not isinstance(doc, dict):
        raise DownloadError(f"{display_url(url)}: not a release registry document")
    return doc


# --- pin --------------------------------------------------------------------------------


def pin(
    manifest_path: Path, version: str | None = None, *, cache_dir: Path | None = None
) -> dict[str, str]:
    """Download every architecture's binary for ``version`` (default: the registry's latest,
    or the manifest's version with a URL template), check it, and rewrite the manifest's
    ``version`` and sha256 pins. Returns ``{arch: sha256}``."""
    if version is not None and not _VERSION_RE.fullmatch(version):
        raise ArgumentError(f"--version: {version!r} is not {_VERSION_HINT}")
    manifest = load_manifest(manifest_path)
    if version is None:
        if manifest.registry is not None:
            latest = _registry_doc(manifest, "latest").get("version")
            where = display_url(_registry_url(manifest, "latest"))
            if not isinstance(latest, str):
                raise DownloadError(f"{where}: no version in the registry document")
            if not _VERSION_RE.fullmatch(latest):
                raise DownloadError(f"{where}: version {latest[:70]!r} is not {_VERSION_HINT}")
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
    info = (_registry_doc(manifest, version).get("files") or {}).get(file)
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
    try:
        check = yaml.safe_load(text)
    except yaml.YAMLError:  # a key-like line inside a multi-line value was rewritten
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)


def _yaml_scalar(value: str) -> str:
    # Always quoted: a bare 25.10 would read back as the float 25.1.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
