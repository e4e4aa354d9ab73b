"""`extension pin` rewrites a manifest line by line: a line inside a multi-line quoted value
that looks like a key is not one. A tab-led line (YAML indents with spaces only, so it can
only be value text) was read as a top-level key and rewritten, and the re-read of the
broken result raised a raw yaml ParserError (a traceback); a column-0 one is refused with
the usual hand-edit message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from layer_builder.build.extension.pins import _rewrite_manifest
from layer_builder.errors import ConfigError

DIGEST = "a" * 64


def _manifest(tmp_path: Path, continuation: str) -> Path:
    path = tmp_path / "relay.yml"
    path.write_text(
        'name: relay\ndescription: "first\n'
        f'{continuation}version: 1"\nversion: "25.1.0"\n'
        'files:\n  x86_64:\n    url: "https://x/y"\n    sha256: NOT-PINNED\n',
        encoding="utf-8",
    )
    return path


def test_a_tab_led_line_inside_a_quoted_value_is_left_alone(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "\t")
    _rewrite_manifest(path, "25.2.0", {"x86_64": DIGEST})
    assert path.read_text(encoding="utf-8") == (
        'name: relay\ndescription: "first\n\tversion: 1"\nversion: "25.2.0"\n'
        f'files:\n  x86_64:\n    url: "https://x/y"\n    sha256: {DIGEST}\n'
    )
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["description"] == "first version: 1"


def test_a_key_like_line_at_column_0_inside_a_value_is_refused_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = _manifest(tmp_path, "")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot update the pins in place") as info:
        _rewrite_manifest(path, "25.2.0", {"x86_64": DIGEST})
    assert str(info.value) == (
        f"{path}: cannot update the pins in place; edit them by hand: files.x86_64.sha256: {DIGEST}"
    )
    assert path.read_text(encoding="utf-8") == before
