"""load_config's own refusals word for word: top-level shape, runtime, architectures, layout,
canonical, templates, the SDK section and compatible runtimes, unreadable files (mutation
testing found the keys and messages unchecked; see docs/mutation-testing.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from layer_builder.config import load_config
from layer_builder.errors import ConfigError
from tests.helpers.configs import VALID, write

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


UNIVERSAL = VALID.replace("layout: per-arch\n", "").replace(
    '"TestLayer{{ arch_suffix }}"', '"TestLayer"'
)
NODE = (
    VALID.replace("runtime: python", "runtime: node")
    .replace("[python3.12, python3.13]", "[nodejs20.x]")
    .replace('"aws-layer:python"', '"aws-layer:node"')
)


@pytest.mark.parametrize(
    ("base", "old", "new", "expected"),
    [
        (UNIVERSAL, "  regions: all", "  regions: all\n  s3_bucket: 'b-{{ region }}-{{ arch }}'",
         "publish.s3_bucket: uses {{ arch }}, which a universal layer does not have (one "
         "bucket per region serves it)"),
        (UNIVERSAL, "  regions: all",
         "  regions: all\n  s3_bucket: 'b-{{ region }}{{ arch_suffix }}'",
         "publish.s3_bucket: uses {{ arch_suffix }}, which a universal layer does not have "
         "(one bucket per region serves it)"),
        (VALID, "  regions: all", "  regions: all\n  s3_bucket: 5",
         "publish.s3_bucket: expected a string, got a number"),
        (VALID, 'publish:\n  regions: all\n  permission:\n    principal: "*"\n', "publish: [1]\n",
         "publish: expected a mapping, got a list"),
        (VALID, "    to: python/wrapper.py", "    to: 5",
         "files[0].to: expected a string, got a number"),
        (VALID, "  - from: wrapper.py", "  - from: 5",
         "files[0].from: expected a string, got a number"),
        (VALID, PACKAGE, "  package: 5", "sdk.package: expected a string, got a number"),
        (VALID, "  runtime_dir: python", "  runtime_dir: 5",
         "registry.runtime_dir: expected a string, got a number"),
        (VALID, '  principal: "*"', '  accounts: "123456789012"',
         "publish.permission.accounts: expected a list of strings, got a string"),
        (NODE, PACKAGE, PACKAGE + "\n  source: pypi",
         "sdk.source: a node layer installs its SDK from npm"),
    ],
)  # fmt: skip
def test_more_refusals_word_for_word(
    tmp_path: Path, base: str, old: str, new: str, expected: str
) -> None:
    assert old in base
    path = write(tmp_path, base.replace(old, new))
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_sdk_sources_and_the_smallest_numbers(tmp_path: Path) -> None:
    node = load_config(write(tmp_path, NODE))
    assert (node.family, node.sdk.source) == ("node", "npm")
    local = load_config(
        write(tmp_path, VALID.replace(PACKAGE, PACKAGE + "\n  source: path\n  path: ."))
    )
    assert (local.sdk.source, local.sdk.path) == ("path", tmp_path)
    one = load_config(
        write(
            tmp_path,
            VALID.replace("  regions: all", "  regions: all\n  max_workers: 1\n  attempts: 1"),
        )
    )
    assert (one.publish.max_workers, one.publish.attempts) == (1, 1)


def test_layer_names_are_checked_when_rendered(tmp_path: Path) -> None:
    from layer_builder.model import ReleaseVersion

    cfg = load_config(
        write(
            tmp_path,
            VALID.replace("TestLayer{{ arch_suffix }}", "L" * 130 + "{{ major }}{{ arch_suffix }}"),
        )
    )
    long = ReleaseVersion.parse("12345678901.0.0")  # 141 characters
    with pytest.raises(ConfigError, match="the limit is 140") as exc:
        cfg.layer_name(long, "x86_64")
    assert exc.value.key == "name"
    assert str(exc.value).startswith(f"{cfg.path}: name: layer name 'LLLL")
    with pytest.raises(AssertionError, match="a per-arch layer name needs its architecture"):
        cfg.layer_name(long)
