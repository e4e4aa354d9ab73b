"""Bad layer configs, each through ``build`` and ``publish``: exit 2, one ``error:`` line naming
the file and the key (or the line), nothing written. Every case is one a user or an adversary
can write; none may end in a traceback or be silently accepted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layer_builder.config import load_config
from layer_builder.model import ReleaseVersion
from tests.helpers.bad_input import VALID, BadInput


def _sub(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


#: case -> (config text, what the error line must name)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "duplicate key": (VALID + "license: Apache-2.0\n", ("duplicate key 'license'", "lines 3 and")),
    "duplicate nested key": (
        _sub("  package: sentry-sdk\n", "  package: sentry-sdk\n  package: other\n"),
        ("duplicate key 'package'",),
    ),
    "20,000 levels deep": ("a: " + "[" * 20000 + "]" * 20000 + "\n", ("nested deeper than",)),
    "deep block mapping": (
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)),
        ("nested deeper than",),
    ),
    "region_timeout .nan": (_sub("region_timeout: 600", "region_timeout: .nan"), (".nan",)),
    "region_timeout .inf": (_sub("region_timeout: 600", "region_timeout: .inf"), (".inf",)),
    "region_timeout 1.0e+999": (
        _sub("region_timeout: 600", "region_timeout: 1.0e+999"),
        ("1.0e+999", "not a finite number"),
    ),
    "max_workers 0": (_sub("max_workers: 64", "max_workers: 0"), ("publish.max_workers",)),
    "max_workers -5": (_sub("max_workers: 64", "max_workers: -5"), ("publish.max_workers",)),
    "license over 512": (_sub("license: MIT", "license: " + "x" * 513), ("license:", "512")),
    "description over 256": (
        _sub("Sentry Python SDK {{ version }}", "d" * 300),
        ("description:", "256"),
    ),
    "layer name over 140": (
        _sub('name: "SentryPythonServerlessSDK"', f'name: "{"N" * 141}"'),
        ("name:", "140"),
    ),
    "layer name with a space": (
        _sub('name: "SentryPythonServerlessSDK"', 'name: "Sentry SDK"'),
        ("name:", "[a-zA-Z0-9-_]+"),
    ),
    "canonical colon only": (_sub('"aws-layer:python"', '":"'), ("canonical:",)),
    "canonical without a runtime": (_sub('"aws-layer:python"', '"aws-layer:"'), ("canonical:",)),
    "sdk.package an option": (
        _sub("package: sentry-sdk", "package: --index-url=https://evil.example/simple"),
        ("sdk.package:",),
    ),
    "sdk.package shell syntax": (
        _sub("package: sentry-sdk", 'package: "sentry-sdk; rm -rf ~"'),
        ("sdk.package:",),
    ),
    "sdk.package with a specifier": (
        _sub("package: sentry-sdk", 'package: "sentry-sdk==2.0"'),
        ("sdk.package:",),
    ),
    "sdk.package a URL": (
        _sub("package: sentry-sdk", "package: https://evil.example/x.whl"),
        ("sdk.package:",),
    ),
    "sdk.version with an option": (
        _sub('version: "{{ version }}"', 'version: "{{ version }} --pre"'),
        ("sdk.version:",),
    ),
    "template attribute of a string": (
        _sub("Sentry Python SDK {{ version }}", "SDK {{ version.major }}"),
        ("description:", "fails"),
    ),
    "template division by zero": (
        _sub('name: "SentryPythonServerlessSDK"', 'name: "S{{ major // 0 }}"'),
        ("name:", "fails"),
    ),
    "template reaching into Python": (
        _sub("Sentry Python SDK {{ version }}", "{{ version.__class__.__mro__ }}"),
        ("description:", "unsafe"),
    ),
    "template repeating a string 10**10 times": (
        _sub("Sentry Python SDK {{ version }}", "{{ 'x' * 10**10 }}"),
        ("description:", "more than 10,000 items"),
    ),
    "template with a huge exponent": (
        _sub("Sentry Python SDK {{ version }}", "{{ 2 ** 100000 }}"),
        ("description:", "exponent"),
    ),
    "template recursing": (
        _sub("Sentry Python SDK {{ version }}", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"),
        ("description:", "recursion"),
    ),
    "template counting to a billion": (
        _sub("Sentry Python SDK {{ version }}", "{% for i in range(10**9) %}x{% endfor %}"),
        ("description:", "fails"),
    ),
    "max_workers huge": (
        _sub("max_workers: 64", "max_workers: 99999999999999999999"),
        ("publish.max_workers:", "1,024"),
    ),
    "region_timeout over a day": (
        _sub("region_timeout: 600", "region_timeout: 1000000"),
        ("publish.region_timeout:",),
    ),
    "statement_id with a space": (
        _sub("  max_workers: 64\n", "  max_workers: 64\n  permission: {statement_id: 'a b'}\n"),
        ("publish.permission.statement_id:",),
    ),
    "runtime_dir with a NUL": (
        _sub("runtime_dir: python", 'runtime_dir: "py\\0thon"'),
        ("registry.runtime_dir:",),
    ),
    "template syntax error": (
        _sub("Sentry Python SDK {{ version }}", "SDK {{ version"),
        ("description:", "bad template"),
    ),
    "template unknown variable": (
        _sub("Sentry Python SDK {{ version }}", "SDK {{ relase }}"),
        ("description:", "relase"),
    ),
    "files[0].to a directory": (
        VALID + "files:\n  - from: layer.yml\n    to: python/\n",
        ("files[0].to:", "not a directory"),
    ),
    "files[0].to dot": (
        VALID + "files:\n  - from: layer.yml\n    to: ./x.py\n",
        ("files[0].to:",),
    ),
    "files[0].to escaping": (
        VALID + "files:\n  - from: layer.yml\n    to: ../x.py\n",
        ("files[0].to:", "relative path inside the layer"),
    ),
    "publish.regions empty": (_sub("regions: [us-east-1]", "regions: []"), ("publish.regions:",)),
    "publish.regions mixed partitions": (
        _sub("regions: [us-east-1]", "regions: [us-east-1, cn-north-1]"),
        ("publish.regions:", "mixes partitions"),
    ),
    "publish.regions a word": (
        _sub("regions: [us-east-1]", "regions: everywhere"),
        ("publish.regions:", "'everywhere'"),
    ),
    "publish.regions a typo'd name": (
        _sub("regions: [us-east-1]", "regions: [us_east_1]"),
        ("publish.regions[0]:",),
    ),
    "an alias": (VALID + "x: &a [1]\ny: *a\n", ("alias *a",)),
    "empty file": ("", ("expected a mapping",)),
    "a list": ("- name: x\n", ("expected a mapping",)),
    "unknown key": (VALID + "licence: MIT\n", ("licence:", "did you mean 'license'")),
    "an architecture twice": (
        _sub("architectures: [x86_64]", "architectures: [x86_64, x86_64]"),
        ("architectures:",),
    ),
    "YAML syntax error": (VALID + "sdk: [\n", ("invalid YAML: line",)),
    "a tab in indentation": (VALID + "registry:\n\truntime_dir: python\n", ("invalid YAML",)),
    "NUL byte": (VALID + "x: \0\n", ("invalid YAML",)),
}


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "layer.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_the_valid_config_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, VALID))
    version = ReleaseVersion.parse("2.75.0")
    assert cfg.layer_name(version) == "SentryPythonServerlessSDK"
    assert cfg.description_for(version, ("x86_64",)) == "Sentry Python SDK 2.75.0"


COMMANDS = {
    "build": lambda cfg, tmp: ["build", str(cfg), "--version", "2.75.0", "--out", str(tmp / "d")],
    "publish": lambda cfg, tmp: ["publish", str(cfg), "--version", "2.75.0", "--dry-run"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_is_one_line_naming_file_and_key(
    case: str, command: str, tmp_path: Path, bad_input: BadInput
) -> None:
    text, names = CASES[case]
    cfg = _write(tmp_path, text)
    bad_input(COMMANDS[command](cfg, tmp_path), str(cfg), *names)


def test_a_latin1_config_is_one_line(tmp_path: Path, bad_input: BadInput) -> None:
    cfg = _write(tmp_path, VALID.replace("MIT", "Lizenz f\xfcr alle").encode("latin-1"))
    bad_input(["build", str(cfg), "--version", "2.75.0"], str(cfg), "not UTF-8")


def test_a_config_that_is_a_symlink_loop(tmp_path: Path, bad_input: BadInput) -> None:
    loop = tmp_path / "loop.yml"
    os.symlink(loop, loop)
    bad_input(["build", str(loop), "--version", "2.75.0"], str(loop), "cannot read")


def test_a_config_that_is_a_directory_or_missing(tmp_path: Path, bad_input: BadInput) -> None:
    bad_input(["build", str(tmp_path), "--version", "2.75.0"], str(tmp_path), "cannot read")
    missing = tmp_path / "nope.yml"
    bad_input(["build", str(missing), "--version", "2.75.0"], str(missing), "not found")


def test_a_config_without_end(tmp_path: Path, bad_input: BadInput) -> None:
    # /dev/zero is a readable file: reading it whole would take the memory.
    bad_input(["build", "/dev/zero", "--version", "2.75.0"], "/dev/zero", "over 1,048,576 bytes")
