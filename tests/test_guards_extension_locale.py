"""Manifests and launcher templates are UTF-8 whatever the locale: under LC_CTYPE=C (an ASCII
locale, as in many minimal containers) a non-ASCII comment or label must still load, render
and survive `extension pin`'s rewrite (mutation testing found the encoding unchecked; see
docs/mutation-testing.md)."""

from __future__ import annotations

import locale
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_builder.build.extension import load_manifest, pins
from layer_builder.build.launcher import render_launcher

MANIFEST = """\
# Relay — the Sentry Lambda extension (pinned by `extension pin`)
name: ext
version: "1.0"
label: Relay für Lambda
source: {url: "https://dl.example/{{ file }}"}
files:
  arm64:
    file: relay-Linux-aarch64
    sha256: OLD
"""


def write_manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ext.yml"
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    if sys.flags.utf8_mode:
        pytest.skip("Python's UTF-8 mode ignores the locale's encoding")
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    assert locale.getencoding().lower() in {"ansi_x3.4-1968", "ascii", "us-ascii"}
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)


@pytest.mark.usefixtures("ascii_locale")
def test_a_manifest_label_outside_ascii_loads(tmp_path: Path) -> None:
    text = MANIFEST.replace("sha256: OLD\n", "")
    manifest = load_manifest(write_manifest(tmp_path, text))
    assert manifest.label == "Relay für Lambda"


@pytest.mark.usefixtures("ascii_locale")
def test_pin_rewrites_a_manifest_with_non_ascii_comments(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, MANIFEST)
    pins._rewrite_manifest(path, "1.1", {"arm64": "NEW"})
    expected = MANIFEST.replace('"1.0"', '"1.1"').replace("OLD", "NEW")
    assert path.read_bytes() == expected.encode("utf-8")


@pytest.mark.usefixtures("ascii_locale")
def test_a_launcher_template_outside_ascii_renders(tmp_path: Path) -> None:
    template = "#!/bin/sh\n# für {{ arch }}\nexec {{ binary }}\n"
    (tmp_path / "launch.sh.j2").write_bytes(template.encode("utf-8"))
    text = (
        "name: ext\nversion: '1'\nsource: {}\nfiles: {arm64: {file: f}}\n"
        "install_path: relay/relay\nlauncher: {template: launch.sh.j2}\n"
    )
    manifest = load_manifest(write_manifest(tmp_path, text))
    assert render_launcher(manifest, "arm64") == (
        "#!/bin/sh\n# für arm64\nexec /opt/relay/relay\n".encode()
    )
