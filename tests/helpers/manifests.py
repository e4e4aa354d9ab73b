"""Extension manifests for the extension and launcher tests: a stand-in binary (``ELF``,
``SHA``), a manifest written with or without a launcher template, one served by a FakeServer
(``template_manifest``), and the launcher tests' ``manifest``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from layer_builder.build.extension import (
    load_manifest,
)
from tests.helpers.elf_fixtures import make_elf
from tests.helpers.http_server import FakeServer

ELF = {arch: make_elf(arch, payload=arch.encode()) for arch in ("x86_64", "arm64")}


SHA = {arch: hashlib.sha256(data).hexdigest() for arch, data in ELF.items()}


def write_manifest(tmp_path: Path, text: str, *, launcher: bool = True) -> Path:
    if launcher:
        (tmp_path / "launch.sh.j2").write_text('#!/bin/sh\nexec {{ binary }} run "$@"\n')
    path = tmp_path / "ext.yml"
    path.write_text(text)
    return path


def template_manifest(tmp_path: Path, server: FakeServer, pins: dict[str, str]) -> Path:
    files = "".join(
        f"  {arch}:\n    file: relay-Linux-{'aarch64' if arch == 'arm64' else arch}\n"
        f"    sha256: {sha}   # a comment that stays\n"
        for arch, sha in pins.items()
    )
    return write_manifest(
        tmp_path,
        f"""\
# header comment
name: sentry-lambda-extension
version: "1.0.0"
source:
  url: "{server.base}/relay/{{{{ version }}}}/relay-Linux-{{{{ machine }}}}"
allow_http: true
files:
{files}install_path: relay/relay
launcher:
  template: launch.sh.j2
""",
    )


BASE = """\
name: ext
version: "1.0"
source: {registry: "https://r.example"}
files: {x86_64: {file: f, sha256: NOT-PINNED}}
"""


TEMPLATE = (
    "{% for b in binaries %}{{ b.arch }} {{ b.machine }} {{ b.path }}\n{% endfor %}"
    "{{ architectures|join(',') }} {{ layout }} [{{ arch }}] {{ version }} {{ name }} {{ label }}"
    " {{ mode }}\n"
)


MANIFEST = (
    "name: ext\nversion: '1.0'\nlabel: stand-in\nsource: {}\n"
    "files: {x86_64: {file: f}, arm64: {file: g}}\ninstall_path: relay/relay\n"
    "launcher: {template: launch.sh.j2, vars: {mode: proxy}}\n"
)


def manifest(tmp_path: Path, template: str = TEMPLATE):  # type: ignore[no-untyped-def]
    (tmp_path / "launch.sh.j2").write_text(template)
    return load_manifest(write_manifest(tmp_path, MANIFEST, launcher=False))
