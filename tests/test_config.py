"""Config validation: every invalid config exits 2 with one line naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from layer_builder.cli import main
from layer_builder.config import load_config
from layer_builder.errors import ConfigError
from layer_builder.model import ReleaseVersion

VALID = """\
name: "TestLayer{{ arch_suffix }}"
description: "Test SDK {{ version }} ({{ arch }})"
license: MIT
canonical: "aws-layer:python"
runtime: python
compatible_runtimes: [python3.12, python3.13]
architectures: [x86_64, arm64]
sdk:
  package: sentry-sdk
files:
  - from: wrapper.py
    to: python/wrapper.py
publish:
  regions: all
  permission:
    principal: "*"
registry:
  runtime_dir: python
layout: per-arch
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "wrapper.py").write_text("# wrapper\n")
    path = tmp_path / "layer.yml"
    path.write_text(text)
    return path


def test_valid_config_loads_into_typed_objects(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    v = ReleaseVersion.parse("2.75.0")
    assert cfg.layer_name(v, "x86_64") == "TestLayer"
    assert cfg.layer_name(v, "arm64") == "TestLayer-arm64"
    assert cfg.description.render(v, "arm64") == "Test SDK 2.75.0 (arm64)"
    assert cfg.sdk_version(v) == "2.75.0"
    assert cfg.sdk.source == "pypi"
    assert cfg.publish.regions is None and cfg.publish.permission.statement_id == "public"
    assert (
        cfg.files[0].dest == "python/wrapper.py" and cfg.files[0].source == tmp_path / "wrapper.py"
    )
    with pytest.raises(AttributeError, match="cannot assign to field 'license'"):
        cfg.license = "other"  # type: ignore[misc]


def test_reference_configs_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    v = ReleaseVersion.parse("10.5.0")
    py = load_config(root / "configs/sentry-python.yml")
    node = load_config(root / "configs/sentry-node.yml")
    # Both are universal: one layer name per release, whatever the architecture.
    assert py.layout == node.layout == "universal"
    assert py.layer_name(v) == py.layer_name(v, "arm64") == "SentryPythonServerlessSDK"
    assert node.layer_name(v) == node.layer_name(v, "arm64") == "SentryNodeServerlessSDKv10"
    assert py.canonical == "aws-layer:python" and node.canonical == "aws-layer:node"
    assert py.architectures == node.architectures == ("x86_64", "arm64")


CASES = [
    # (replace this, with this, expected message after "error: <file>: ")
    ("license: MIT", "licence: MIT", "licence: unknown key; did you mean 'license'?"),
    (
        "python3.13]",
        "python3.13, python3.99]",
        "compatible_runtimes[2]: unknown Lambda runtime 'python3.99'; did you mean 'python3.9'?",
    ),
    (
        "python3.13]",
        "python3.13, nodejs22.x]",
        "compatible_runtimes[2]: runtime 'nodejs22.x' cannot load a python layer",
    ),
    (
        "[x86_64, arm64]",
        "[x86_64, arm65]",
        "architectures[1]: 'arm65' is not one of x86_64, arm64; did you mean 'arm64'?",
    ),
    (
        "{{ arch_suffix }}",
        "{{ arch_sufix }}",
        "name: template uses unknown variable 'arch_sufix'; did you mean 'arch_suffix'? "
        "(known: version, major, minor, patch, arch, arch_suffix)",
    ),
    (
        '"TestLayer{{ arch_suffix }}"',
        '"Test Layer{{ arch_suffix }}"',
        "name: layer name 'Test Layer' must match [a-zA-Z0-9-_]+",
    ),
    (
        '"TestLayer{{ arch_suffix }}"',
        '"' + "L" * 141 + '{{ arch_suffix }}"',
        f"name: layer name '{'L' * 141}' is 141 characters; the limit is 140",
    ),
    (
        '"TestLayer{{ arch_suffix }}"',
        '"TestLayer"',
        "name: renders to the same layer name for every architecture; with layout: per-arch "
        "each architecture needs its own layer (use {{ arch_suffix }} or {{ arch }})",
    ),
    (
        '  principal: "*"',
        '  principal: "*"\n    organisation_id: o-abc',
        "publish.permission.organisation_id: unknown key; did you mean 'organization_id'?",
    ),
    (
        "regions: all",
        "regions: all\n  max_workers: lots",
        "publish.max_workers: expected a whole number, got a string",
    ),
    (
        "regions: all",
        "regions: [us-east-1, Mars]",
        "publish.regions[1]: 'Mars' is not a region name",
    ),
    (
        "  package: sentry-sdk",
        "  package: sentry-sdk\n  source: npm",
        "sdk.source: a python layer installs its SDK from pypi or a local path",
    ),
    (
        "registry:\n  runtime_dir: python\n",
        "registry: {}\n",
        "registry.runtime_dir: missing required key",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize:\n  bytecode: sometimes",
        "optimize.bytecode: 'sometimes' is not one of all, cold-path",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize: {single_sdk_copy: true}",
        "optimize.single_sdk_copy: only a node layer has the SDK's handler shim",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize: {bytcode: false}",
        "optimize.bytcode: unknown key; did you mean 'bytecode'?",
    ),
    (
        "license: MIT",
        "license: [MIT",
        "invalid YAML: line 4, column 10: expected ',' or ']', but got ':'",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_invalid_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    code = main(["build", str(path), "--version", "1.2.3", "--out", str(tmp_path / "dist")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: {path}: {message}\n"
    assert not (tmp_path / "dist").exists()  # nothing built


def test_more_than_15_runtimes_is_refused(tmp_path: Path) -> None:
    runtimes = ", ".join(["python3.12"] * 16)
    path = write(tmp_path, VALID.replace("[python3.12, python3.13]", f"[{runtimes}]"))
    with pytest.raises(
        ConfigError, match=r"compatible_runtimes: lists 16 runtimes; Lambda allows at most 15"
    ):
        load_config(path)


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["build", str(tmp_path / "nope.yml"), "--version", "1.0.0"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yml'}: config file not found\n"


@pytest.mark.parametrize("bad", ["1.2", "v1.2.3", "latest", "1.2.3.4.x y"])
def test_bad_release_version_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    path = write(tmp_path, VALID)
    assert main(["build", str(path), "--version", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --version: {bad!r} is not a release version")
    assert err.count("\n") == 1


def test_release_versions_parse() -> None:
    assert ReleaseVersion.parse("2.75.0").sort_key() > ReleaseVersion.parse("2.75.0rc1").sort_key()
    v = ReleaseVersion.parse("8.0.0-beta.1")
    assert (v.major, v.minor, v.patch, v.is_prerelease) == (8, 0, 0, True)
    assert not ReleaseVersion.parse("10.75.2").is_prerelease


def test_unknown_arch_argument_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID.replace("[x86_64, arm64]", "[x86_64]"))
    assert main(["build", str(path), "--version", "1.0.0", "--arch", "arm64"]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --arch arm64: not an architecture of {path} (configured: x86_64)\n"
    )
    # A parse error is returned like every user error (main() does not exit).
    assert main(["build", str(path), "--version", "1.0.0", "--arch", "mips"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: layer-builder build: argument --arch: invalid choice: 'mips'")
    assert err.count("\n") == 1
