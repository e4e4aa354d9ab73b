"""load_config at the edges mutation testing found unpinned: required keys of a files entry,
the 15-runtime limit at exactly 15, a universal layer's name check (its message and the
empty arch suffix), the extension path, YAML errors without a position, the key of a
choice that is not a string, and UTF-8 reading whatever the locale (see
docs/mutation-testing.md)."""

from __future__ import annotations

import locale
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_builder.config import load_config
from layer_builder.errors import ConfigError
from layer_builder.model import ReleaseVersion
from tests.helpers.configs import VALID, write

UNIVERSAL = VALID.replace("layout: per-arch\n", "").replace(
    '"TestLayer{{ arch_suffix }}"', '"TestLayer"'
)


def refused(path: Path, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  - from: wrapper.py\n    to: python/wrapper.py", "  - to: python/wrapper.py",
         "files[0].from: missing required key"),
        ("  - from: wrapper.py\n    to: python/wrapper.py", "  - from: wrapper.py",
         "files[0].to: missing required key"),
        ("runtime: python", "runtime: 5", "runtime: expected a string, got a number"),
    ],
)  # fmt: skip
def test_missing_file_keys_and_a_runtime_that_is_no_string(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    refused(write(tmp_path, VALID.replace(old, new)), expected)


def test_fifteen_runtimes_pass_the_count_limit(tmp_path: Path) -> None:
    # 15 entries is Lambda's limit itself: the only refusal left is the duplicate.
    runtimes = ", ".join(["python3.12"] * 15)
    path = write(tmp_path, VALID.replace("[python3.12, python3.13]", f"[{runtimes}]"))
    refused(path, "compatible_runtimes: lists a runtime twice")


def test_a_universal_layer_name_is_checked_with_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, UNIVERSAL.replace('"TestLayer"', '"Test.Layer"'))
    refused(path, "name: layer name 'Test.Layer' must match [a-zA-Z0-9-_]+")


def test_a_universal_name_renders_its_arch_suffix_empty(tmp_path: Path) -> None:
    # 140 characters plus an empty suffix is exactly Lambda's limit.
    text = UNIVERSAL.replace('"TestLayer"', '"' + "U" * 140 + '{{ arch_suffix }}"')
    cfg = load_config(write(tmp_path, text))
    assert cfg.layer_name(ReleaseVersion.parse("1.2.3")) == "U" * 140


def test_the_extension_path_is_resolved_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "relay.yml").write_text("x: 1\n")
    cfg = load_config(write(tmp_path, VALID + "extension: ext/relay.yml\n"))
    assert cfg.extension == (tmp_path / "ext" / "relay.yml").resolve()


def test_a_missing_extension_names_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "extension: ext/none.yml\n")
    refused(path, f"extension: {(tmp_path / 'ext' / 'none.yml').resolve()} does not exist")


def test_a_yaml_error_without_a_position_keeps_its_first_line(tmp_path: Path) -> None:
    # The YAML reader refuses control characters with an error that has no problem_mark.
    path = write(tmp_path, VALID.replace("license: MIT", "license: M\x01T"))
    refused(
        path,
        "invalid YAML: unacceptable character #x0001: special characters are not allowed",
    )


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # the locale's encoding is now ASCII
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_a_config_is_read_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale: None) -> None:
    path = write(tmp_path, VALID)
    path.write_bytes(VALID.replace("license: MIT", "license: Café-Licence").encode("utf-8"))
    assert load_config(path).license == "Café-Licence"


def test_a_per_arch_layer_name_without_its_architecture_is_a_programming_error(
    tmp_path: Path,
) -> None:
    cfg = load_config(write(tmp_path, VALID))
    with pytest.raises(AssertionError, match="^a per-arch layer name needs its architecture$"):
        cfg.layer_name(ReleaseVersion.parse("1.2.3"))
