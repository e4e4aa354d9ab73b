"""What an extension puts in a layer: its binaries and the launcher Lambda starts.

Lambda starts every executable directly in ``/opt/extensions/``. A per-arch layer carries its
one binary (at the manifest's ``install_path``, or as ``extensions/<name>`` itself when the
manifest has no launcher); a universal layer carries one binary per architecture beside
each other (``relay/relay-x86_64``, ``relay/relay-aarch64``) and a launcher, rendered from the
manifest's Jinja2 template, that picks one by ``uname -m`` at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from layer_builder.aws.facts import MACHINE_NAME
from layer_builder.build.extension import (
    EXTENSIONS_DIR,
    ExtensionManifest,
    LayerFile,
    ResolvedBinary,
    resolve_binary,
)
from layer_builder.errors import ConfigError
from layer_builder.model import PER_ARCH, UNIVERSAL, ExtensionInfo, sort_architectures


@dataclass(frozen=True)
class ResolvedExtension:
    """What the layer assembler adds for the extension, and what the build manifest records."""

    files: tuple[LayerFile, ...]
    infos: tuple[ExtensionInfo, ...]  # one per architecture, x86_64 first

    @property
    def info(self) -> ExtensionInfo:
        return self.infos[0]

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(i.architecture for i in self.infos)


def layer_files(binaries: Iterable[ResolvedBinary], layout: str) -> ResolvedExtension:
    """The files one layer gets: every binary, and the launcher when the manifest has one.

    ``layout`` is ``per-arch`` (exactly one binary, at the manifest's path) or ``universal``
    (one binary per architecture, ``<install_path>-<machine>``, and a launcher that picks by
    machine; a manifest without a launcher cannot serve a universal layer).
    """
    by_arch = {b.arch: b for b in binaries}
    if not by_arch:
        raise ValueError("layer_files needs at least one binary")
    archs = sort_architectures(by_arch)
    manifest = by_arch[archs[0]].manifest
    if layout == PER_ARCH and len(archs) != 1:
        raise ValueError(f"a per-arch layer carries one binary, not {len(archs)}")
    files: list[LayerFile] = []
    infos: list[ExtensionInfo] = []
    for arch in archs:
        b = by_arch[arch]
        path = manifest.binary_path_for(arch, layout)
        files.append(LayerFile(path, b.source, None, 0o755))
        infos.append(dataclasses.replace(b.info, path=path))
    if manifest.launcher_template is not None:
        # The launcher names the version the build manifest records ("unknown" for a local
        # --extension-file), never the manifest's version for a binary it did not fetch.
        versions = sorted({i.version for i in infos})
        version = (
            versions[0]
            if len(versions) == 1
            else ", ".join(f"{i.version} ({i.architecture})" for i in infos)
        )
        script = render_launcher(manifest, archs, layout=layout, version=version)
        files.append(LayerFile(f"{EXTENSIONS_DIR}/{manifest.name}", None, script, 0o755))
    return ResolvedExtension(tuple(files), tuple(infos))


def resolve_extension(
    manifest: ExtensionManifest,
    arch: str,
    *,
    override: Path | None = None,
    cache_dir: Path | None = None,
) -> ResolvedExtension:
    """The files that put ``manifest``'s extension into a one-architecture (per-arch) layer."""
    binary = resolve_binary(manifest, arch, override=override, cache_dir=cache_dir)
    return layer_files([binary], PER_ARCH)


def render_launcher(
    manifest: ExtensionManifest,
    archs: str | Iterable[str],
    *,
    layout: str = PER_ARCH,
    version: str | None = None,
) -> bytes:
    """The launcher script for a layer serving ``archs``, from the manifest's Jinja2 template.

    The template sees ``binaries`` (one ``{arch, machine, path}`` per architecture, ``path``
    absolute under ``/opt``), ``architectures`` and ``layout``; with a single architecture
    also ``arch``, ``machine`` and ``binary`` (that binary's absolute path). ``version`` is
    the binaries' version as the build manifest records it (default: the manifest's).
    """
    assert manifest.launcher_template is not None
    archs = (archs,) if isinstance(archs, str) else sort_architectures(archs)
    template = manifest.launcher_template
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    binaries = [
        {
            "arch": a,
            "machine": MACHINE_NAME[a],
            "path": f"/opt/{manifest.binary_path_for(a, layout)}",
        }
        for a in archs
    ]
    variables: dict[str, Any] = {
        **manifest.launcher_vars,
        "name": manifest.name,
        "version": manifest.version if version is None else version,
        "label": manifest.label,
        "binaries": binaries,
        "architectures": list(archs),
        "layout": layout,
        "arch": ", ".join(archs),
    }
    if len(archs) == 1:
        variables.update(machine=binaries[0]["machine"], binary=binaries[0]["path"])
    try:
        source = template.read_text(encoding="utf-8")
        used = jinja2.meta.find_undeclared_variables(env.parse(source))
        if layout == UNIVERSAL and "binaries" not in used:
            # A launcher that execs one fixed binary would run it on every machine.
            raise ConfigError(
                str(manifest.path),
                "launcher.template",
                f"{template.name} does not use `binaries`; a universal layer's launcher must "
                "pick the binary by machine (see extensions/relay-launcher.sh.j2)",
            )
        text = env.get_template(template.name).render(**variables)
    except jinja2.TemplateError as exc:
        raise ConfigError(str(manifest.path), "launcher", f"{template.name}: {exc}") from None
    return text.encode("utf-8")
