"""load_config's own refusals word for word: top-level shape, runtime, architectures, layout,
canonical, templates, the SDK section and compatible runtimes, unreadable files (mutation
testing found the keys and messages unchecked; see docs/mutation-testing.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_config import VALID, write

from layer_builder.config import load_config
from layer_builder.errors import ConfigError

ARCHS = "architectures: [x86_64, arm64]"
RUNTIMES = "compatible_runtimes: [python3.12, python3.13]"
DESCRIPTION = 'description: "Test SDK {{ version }} ({{ arch }})"'
PACKAGE = "  package: sentry-sdk"
KNOWN = "(known: version, major, minor, patch, arch, arch_suffix)"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("runtime: python", "runtime: ruby", "runtime: 'ruby' is not one of python, node"),
        (ARCHS, "architectures: []", "architectures: list at least one architecture"),
        (ARCHS, "architectures: x86_64",
         "architectures: expected a list of strings, got a string"),
        (ARCHS, "architectures: [x86_64, x86_64]", "architectures: lists an architecture twice"),
        (ARCHS, "architectures: [x86_64, true]",
         "architectures[1]: expected a string, got a boolean"),
        (ARCHS, "architectures: [x86_64, ' ']", "architectures[1]: must not be empty"),
        ("layout: per-arch", "layout: mixed", "layout: 'mixed' is not one of universal, per-arch"),
        ('canonical: "aws-layer:python"', 'canonical: "python"',
         "canonical: 'python' should look like 'aws-layer:python'"),
        ('canonical: "aws-layer:python"', "canonical: 5",
         "canonical: expected a string, got a number"),
        (DESCRIPTION, "description: 5", "description: expected a string, got a number"),
        (DESCRIPTION, 'description: "{{ nope }}"',
         f"description: template uses unknown variable 'nope' {KNOWN}"),
        (DESCRIPTION, 'description: "{{ version"', "description: bad template: unexpected end "
         "of template, expected 'end of print statement'."),
        ("license: MIT", "license: ''", "license: must not be empty"),
        ("license: MIT", "license: true", "license: expected a string, got a boolean"),
        ("license: MIT", "license: MIT\nfoo: 1", "foo: unknown key"),
        ("license: MIT", "license: MIT\n1: 1", "1: unknown key"),
        ('name: "TestLayer{{ arch_suffix }}"\n', "", "name: missing required key"),
        (PACKAGE, PACKAGE + "\n  source: path", "sdk.path: required when sdk.source is 'path'"),
        (PACKAGE, PACKAGE + "\n  path: .", "sdk.path: only used with sdk.source: path"),
        (PACKAGE, PACKAGE + "\n  source: git", "sdk.source: 'git' is not one of pypi, path, npm"),
        (PACKAGE, PACKAGE + "\n  version: 7", "sdk.version: expected a string, got a number"),
        ("sdk:\n" + PACKAGE, "sdk: sentry-sdk", "sdk: expected a mapping, got a string"),
        ("sdk:\n" + PACKAGE, "sdk: {}", "sdk.package: missing required key"),
        ("runtime: python", "runtime: node",
         "compatible_runtimes[0]: runtime 'python3.12' cannot load a node layer"),
        (RUNTIMES, "compatible_runtimes: []", "compatible_runtimes: list at least one runtime"),
        (RUNTIMES, "compatible_runtimes: python3.12",
         "compatible_runtimes: expected a list of strings, got a string"),
        (RUNTIMES, "compatible_runtimes: [python3.12, 3]",
         "compatible_runtimes[1]: expected a string, got a number"),
        (RUNTIMES, "compatible_runtimes: [pyton3.12]",
         "compatible_runtimes[0]: unknown Lambda runtime 'pyton3.12'; did you mean 'python3.12'?"),
        (RUNTIMES, "compatible_runtimes: [ruby3.3]",
         "compatible_runtimes[0]: runtime 'ruby3.3' cannot load a python layer"),
    ],
)  # fmt: skip
def test_load_refusals_word_for_word(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_sdk_from_a_missing_local_path(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace(PACKAGE, PACKAGE + "\n  source: path\n  path: nope"))
    with pytest.raises(ConfigError, match="does not exist$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: sdk.path: {tmp_path / 'nope'} does not exist"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping, got a list"),
        ("", "expected a mapping, got nothing (null)"),
        ("just text\n", "expected a mapping, got a string"),
        ("a: [\n", "invalid YAML: line 2, column 1: expected the node content, but found "
         "'<stream end>'"),
    ],
)  # fmt: skip
def test_file_level_refusals(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "layer.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert (str(exc.value), exc.value.key) == (f"{path}: {expected}", None)


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: Is a directory$") as exc:
        load_config(tmp_path)
    assert str(exc.value) == f"{tmp_path}: cannot read: Is a directory"
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text") as exc:
        load_config(latin)
    assert str(exc.value) == (
        f"{latin}: not UTF-8 text: 'utf-8' codec can't decode byte 0xe9 in position 9: "
        "invalid continuation byte"
    )


def test_a_valid_config_keeps_every_value(tmp_path: Path) -> None:
    text = VALID.replace(PACKAGE, PACKAGE + "\n  version: '{{ major }}.x'").replace(
        "license: MIT", "license: Apache-2.0"
    )
    cfg = load_config(write(tmp_path, text))
    assert (cfg.license, cfg.family, cfg.layout) == ("Apache-2.0", "python", "per-arch")
    assert cfg.compatible_runtimes == ("python3.12", "python3.13")
    assert (cfg.sdk.package, cfg.sdk.source, cfg.sdk.path) == ("sentry-sdk", "pypi", None)
    assert cfg.sdk.version.source == "{{ major }}.x"
    assert cfg.extension is None
    universal = load_config(write(tmp_path, VALID.replace("layout: per-arch\n", "").replace(
        '"TestLayer{{ arch_suffix }}"', '"TestLayer"')))  # fmt: skip
    assert universal.layout == "universal"


@pytest.mark.parametrize("layout", ["layout: universal\n", ""])  # universal is the default
def test_a_universal_name_must_not_use_arch(tmp_path: Path, layout: str) -> None:
    text = VALID.replace("layout: per-arch\n", layout).replace("{{ arch_suffix }}", "-{{ arch }}")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="uses {{ arch }}") as exc:
        load_config(path)
    assert str(exc.value) == (
        f"{path}: name: uses {{{{ arch }}}}, but a universal layer has one name for every "
        "architecture (drop it, or set layout: per-arch for one layer per architecture)"
    )
