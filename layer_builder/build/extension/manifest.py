"""Extension manifests (``extensions/*.yml``): read and validated into an
:class:`ExtensionManifest`; every problem is one :class:`ConfigError` naming the file and key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from layer_builder.aws.facts import ARCHITECTURES, MACHINE_NAME
from layer_builder.download import normalize_sha256
from layer_builder.errors import ConfigError
from layer_builder.model import PER_ARCH
from layer_builder.validate import Reader, did_you_mean, read_yaml

DEFAULT_REGISTRY = "https://release-registry.services.sentry.io"
#: The sha256 placeholder of a manifest whose binary has not been pinned yet.
NOT_PINNED = "NOT-PINNED"
EXTENSIONS_DIR = "extensions"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: An extension version: it goes into URLs, file names and the manifest as one token.
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
VERSION_HINT = "a version such as 25.10.0 (letters, digits, '.', '_', '+', '-'; 64 at most)"
_KEYS = {
    "": ("name", "version", "label", "source", "allow_http", "files", "install_path", "launcher"),
    "source": ("registry", "app", "url"),
    "files.*": ("file", "sha256"),
    "launcher": ("template", "vars"),
}
_BUILTIN_VARS = (
    "name", "version", "arch", "machine", "binary", "label", "binaries", "architectures", "layout"
)  # fmt: skip
#: ``aarch64`` (what ``uname -m`` says) for ``arm64`` (what Lambda calls it).
ARCH_ALIASES = {machine: arch for arch, machine in MACHINE_NAME.items()}


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


def load_manifest(path: Path) -> ExtensionManifest:
    """Read and validate an extension manifest; :class:`ConfigError` names the file and key."""
    raw = read_yaml(path, "extension manifest")
    r = Reader(path)
    if raw is None:
        raise r.fail(None, "is empty; an extension manifest is a mapping (name, version, files)")
    top = _section(r, raw, "")
    name = r.field(top, "name")
    if not _NAME_RE.fullmatch(name):
        raise r.fail("name", f"{name!r} is not a file name (letters, digits, '.', '_', '-')")
    version = r.field(top, "version")
    if not VERSION_RE.fullmatch(version):
        raise r.fail("version", f"{version!r} is not {VERSION_HINT}")
    allow_http = top.get("allow_http", False)
    if not isinstance(allow_http, bool):
        raise r.fail("allow_http", "must be true or false")
    registry, app, url_template = _source(r, top.get("source"))
    files = _files(r, top.get("files"))
    template, launcher_vars = _launcher(r, top.get("launcher"))
    return ExtensionManifest(
        path=path,
        name=name,
        version=version,
        registry=registry,
        app=app,
        url_template=url_template,
        allow_http=allow_http,
        files=files,
        install_path=_install_path(r, top, name, launcher=template is not None),
        launcher_template=template,
        launcher_vars=launcher_vars,
        label=r.field(top, "label") if "label" in top else None,
    )


def _section(r: Reader, value: Any, key: str, schema: str = "") -> dict[str, Any]:
    """A mapping of the manifest, its keys checked against ``_KEYS[schema or key]``."""
    data = r.section(value, key)
    r.check_keys(data, key, _KEYS[schema or key], listing=True)
    return data


def _source(r: Reader, value: Any) -> tuple[str | None, str, str | None]:
    """``source``: (registry, app, url template); a template or a registry, never both."""
    source = _section(r, value, "source")
    registry = url_template = None
    if "url" in source:
        if source.keys() & {"registry", "app"}:
            raise r.fail("source", "set either `url` (a template) or `registry`/`app`, not both")
        url_template = r.field(source, "url", prefix="source.")
    else:
        registry = (
            r.field(source, "registry", prefix="source.")
            if "registry" in source
            else DEFAULT_REGISTRY
        )
    app = r.field(source, "app", prefix="source.") if "app" in source else "relay"
    return registry, app, url_template


def _files(r: Reader, value: Any) -> dict[str, ArchFile]:
    """``files.<arch>``: each architecture's file name and sha256 pin."""
    files: dict[str, ArchFile] = {}
    for arch, entry in r.section(value, "files").items():
        key = f"files.{arch}"
        if arch not in ARCHITECTURES:
            hint = did_you_mean(ARCH_ALIASES.get(str(arch), str(arch)), ARCHITECTURES)
            raise r.fail(key, f"unknown architecture{hint} (expected x86_64 or arm64)")
        entry = _section(r, entry, key, schema="files.*")
        pin = str(entry.get("sha256") or NOT_PINNED)
        digest = None if pin == NOT_PINNED else normalize_sha256(pin)
        if pin != NOT_PINNED and digest is None:
            raise r.fail(f"{key}.sha256", f"{pin!r} is not a sha256 hex digest (or {NOT_PINNED})")
        files[arch] = ArchFile(r.field(entry, "file", prefix=f"{key}."), digest)
    if not files:
        raise r.fail("files", "lists no architecture")
    return files


def _launcher(r: Reader, value: Any) -> tuple[Path | None, dict[str, Any]]:
    """``launcher``: the template (beside the manifest) and its extra variables."""
    if value is None:
        return None, {}
    launcher = _section(r, value, "launcher")
    template = r.path.parent / r.field(launcher, "template", prefix="launcher.")
    if not template.is_file():
        raise r.fail("launcher.template", f"{template} not found")
    launcher_vars = dict(r.section(launcher.get("vars", {}), "launcher.vars"))
    for var in launcher_vars:
        if var in _BUILTIN_VARS:
            raise r.fail(f"launcher.vars.{var}", "is set by layer-builder; pick another name")
    return template, launcher_vars


def _install_path(r: Reader, top: Mapping[str, Any], name: str, *, launcher: bool) -> str | None:
    """``install_path``: where a launcher's binary goes; required with one, refused without."""
    if top.get("install_path") is None:
        if launcher:
            raise r.fail("install_path", "required with a launcher (e.g. relay/relay)")
        return None
    value = r.field(top, "install_path")
    posix = PurePosixPath(value)
    if posix.is_absolute() or ".." in posix.parts or "\\" in value or not posix.parts:
        raise r.fail("install_path", f"{value!r} must be a relative path inside the layer")
    if not launcher:
        raise r.fail(
            "install_path",
            f"only used with a launcher; without one the binary is {EXTENSIONS_DIR}/{name}",
        )
    if posix.parts[0] == EXTENSIONS_DIR:
        raise r.fail(
            "install_path",
            f"must be outside {EXTENSIONS_DIR}/: Lambda would start "
            "the binary there directly, without the launcher's arguments",
        )
    return str(posix)
