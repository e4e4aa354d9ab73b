"""The launcher template is UTF-8 whatever the machine's locale (a survivor of the mutation
run of build/launcher.py; see docs/mutation-testing.md)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from layer_builder.build.launcher import render_launcher
from tests.helpers.manifests import manifest


def test_a_utf8_template_renders_under_an_ascii_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path, "")
    (tmp_path / "launch.sh.j2").write_bytes("# démarre {{ binary }}\n".encode())
    real = io.text_encoding

    def ascii_locale(encoding: str | None, stacklevel: int = 2) -> str:
        # What open() resolves "no encoding given" to on a machine with an ASCII locale.
        return "ascii" if encoding is None else real(encoding)

    monkeypatch.setattr(io, "text_encoding", ascii_locale)
    assert render_launcher(m, "x86_64") == "# démarre /opt/relay/relay\n".encode()
