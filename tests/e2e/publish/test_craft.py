"""``layer-builder craft``: craft's aws-lambda-layer config keys, artifact selection, and an
end-to-end publish against moto's server that checks the registry document craft would write.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import textwrap
import zipfile
from pathlib import Path

import pytest

from layer_builder import craft
from layer_builder.errors import ArtifactError, ConfigError
from layer_builder.model import BuildManifest, ReleaseVersion
from tests.helpers.cli import run_cli
from tests.helpers.elf_fixtures import make_elf
from tests.helpers.paths import REPO

V = ReleaseVersion.parse("10.2.3")


def write_config(tmp_path: Path, targets: str, name: str = ".craft.yml") -> Path:
    path = tmp_path / name
    path.write_text(
        "minVersion: 2.0.0\ntargets:\n  - name: github\n"
        + textwrap.indent(textwrap.dedent(targets), "  "),
        encoding="utf-8",
    )
    return path


PYTHON_TARGET = """\
- name: aws-lambda-layer
  includeNames: /^layer-.*\\.zip$/
  layerName: {layer_name}
  compatibleRuntimes:
    - name: python
      versions: [python3.12, python3.13]
  license: MIT
"""


def python_config(tmp_path: Path, layer_name: str = "TestLayer", extra: str = "") -> Path:
    return write_config(tmp_path, PYTHON_TARGET.format(layer_name=layer_name) + extra)


def make_zip(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A small layer zip made with the stdlib (no manifest beside it)."""
    files = files or {"python/lbtest/__init__.py": b"X = 1\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if name.startswith("extensions/") else 0o100644) << 16
            zf.writestr(info, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def write_manifest(
    zip_path: Path, arch: str | tuple[str, ...], version: ReleaseVersion = V
) -> Path:
    """The build manifest `layer-builder build` would write beside ``zip_path`` (a tuple of
    architectures: a universal layer)."""
    archs = (arch,) if isinstance(arch, str) else arch
    data = zip_path.read_bytes()
    digest = hashlib.sha256(data)
    manifest = BuildManifest(
        layer_name="BuiltName",
        canonical="aws-layer:python",
        version=version.text,
        architectures=archs,
        layout="per-arch" if isinstance(arch, str) else "universal",
        compatible_runtimes=("python3.12",),
        description="built",
        license="MIT",
        zip_file=zip_path.name,
        sha256=digest.hexdigest(),
        code_sha256=base64.b64encode(digest.digest()).decode(),
        zip_size=len(data),
        unzipped_size=6,
        file_count=1,
        sdk_name="sentry-sdk",
        sdk_version=version.text,
        extensions=(),
        source_date_epoch=315532800,
    )
    path = zip_path.with_name(zip_path.name + ".json")
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- config


def test_example_configs_parse() -> None:
    for name, canonical in (
        ("craft-python.yml", "aws-layer:python"),
        ("craft-node.yml", "aws-layer:node"),
    ):
        targets = craft.load_craft_config(REPO / "configs" / name)
        assert [t.id for t in targets] == ["universal"]
        canonicals = {craft.CANONICAL_PREFIX + rt.name for t in targets for rt in t.runtimes}
        assert canonicals == {canonical}
        assert [t.architectures for t in targets] == [("x86_64", "arm64")]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("SentryNodeServerlessSDKv{{{major}}}", "SentryNodeServerlessSDKv10"),
        ("L{{{major}}}_{{{minor}}}_{{{patch}}}", "L10_2_3"),
        ("L{{ major }}-{{minor}}", "L10-2"),  # mustache's double braces mean the same here
        ("Plain", "Plain"),
    ],
)
def test_layer_name_template(tmp_path: Path, template: str, expected: str) -> None:
    (target,) = craft.load_craft_config(python_config(tmp_path, template))
    assert target.layer_name.render(V) == expected


@pytest.mark.parametrize(
    ("layer_name", "message"),
    [
        (
            "L{{{majr}}}",
            "targets[1].layerName: unknown template variable 'majr'; did you mean 'major'?",
        ),
        ("L{{{version}}}", "targets[1].layerName: renders to 'L10.20.30'"),
        ("L{{{major}}", "targets[1].layerName: 'L{{{major}}': unbalanced braces"),
        ("L{% if x %}", "targets[1].layerName: 'L{% if x %}': unbalanced braces"),
    ],
)
def test_layer_name_errors(tmp_path: Path, layer_name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        craft.load_craft_config(python_config(tmp_path, layer_name))
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (
            PYTHON_TARGET.format(layer_name="L").replace("layerName", "layerNmae"),
            "targets[1].layerNmae: unknown key; did you mean 'layerName'?",
        ),
        (
            PYTHON_TARGET.format(layer_name="L").replace("  license: MIT\n", ""),
            "targets[1].license: missing required key",
        ),
        (
            PYTHON_TARGET.format(layer_name="L").replace("/^layer-.*\\.zip$/", "layer.zip"),
            "targets[1].includeNames: 'layer.zip' is not a /regex/",
        ),
        (
            PYTHON_TARGET.format(layer_name="L").replace("/^layer-.*\\.zip$/", "/a(/"),
            "targets[1].includeNames: '/a(/' is not a valid regex",
        ),
        (
            PYTHON_TARGET.format(layer_name="L").replace("python3.13", "python3.99"),
            "compatibleRuntimes[0].versions[1]: unknown Lambda runtime 'python3.99'",
        ),
        (
            PYTHON_TARGET.format(layer_name="L").replace("python3.13", "nodejs22.x"),
            "compatibleRuntimes[0].versions: layer-builder publishes Python or Node.js layers",
        ),
        (
            PYTHON_TARGET.format(layer_name="L") + "  compatibleArchitectures: [amd64]\n",
            "compatibleArchitectures[0]: 'amd64' is not one of x86_64, arm64",
        ),
        (
            PYTHON_TARGET.format(layer_name="L") + "  linkPrereleases: 'yes'\n",
            "targets[1].linkPrereleases: expected true or false",
        ),
        ("- name: pypi\n", "targets: no target with name: aws-lambda-layer"),
    ],
)
def test_config_errors(tmp_path: Path, targets: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        craft.load_craft_config(write_config(tmp_path, targets))
    assert message in str(exc.value)
    assert str(tmp_path / ".craft.yml") in str(exc.value)


def test_missing_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys,
        "craft",
        "check",
        "--config",
        str(tmp_path / "nope.yml"),
        "--version",
        "1.0.0",
        "--artifacts",
        str(tmp_path),
    )
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'nope.yml'}: craft config not found"


# -------------------------------------------------------------------------- artifacts


def test_include_names_selects_exactly_one(tmp_path: Path) -> None:
    (target,) = craft.load_craft_config(python_config(tmp_path))
    dist = tmp_path / "dist"
    make_zip(dist / "layer-1.zip")
    (dist / "layer-1.zip.json").write_text("{}")  # a manifest is never a candidate
    (dist / "other.zip").write_bytes(b"")
    assert craft.find_artifact(target, dist, tmp_path / ".craft.yml") == dist / "layer-1.zip"


def test_include_names_none_or_several_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = python_config(tmp_path)
    dist = tmp_path / "dist"
    make_zip(dist / "other.zip")
    argv = [
        "craft",
        "check",
        "--config",
        str(config),
        "--version",
        "10.2.3",
        "--artifacts",
        str(dist),
    ]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1
    assert "targets[1].includeNames /^layer-.*\\.zip$/ matches no artifact" in err
    assert "(files: other.zip)" in err

    make_zip(dist / "layer-a.zip")
    make_zip(dist / "layer-b.zip")
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "matches 2 artifacts" in err and "layer-a.zip, layer-b.zip" in err


def test_manifestless_artifact_is_measured(tmp_path: Path) -> None:
    (target,) = craft.load_craft_config(python_config(tmp_path))
    zip_path = make_zip(tmp_path / "dist" / "layer-1.zip")
    art = craft.read_artifact(target, zip_path, V)
    digest = hashlib.sha256(zip_path.read_bytes())
    assert art.computed and art.manifest.architectures == ("x86_64",)
    assert art.manifest.sha256 == digest.hexdigest()
    assert art.manifest.code_sha256 == base64.b64encode(digest.digest()).decode()
    assert art.manifest.zip_size == zip_path.stat().st_size


def test_manifestless_extension_for_the_wrong_machine(tmp_path: Path) -> None:
    config = python_config(tmp_path, extra="  compatibleArchitectures: [arm64]\n")
    (target,) = craft.load_craft_config(config)
    zip_path = make_zip(
        tmp_path / "dist" / "layer-1.zip",
        {"python/x.py": b"", "extensions/sentry-lambda-extension": make_elf("x86_64")},
    )
    with pytest.raises(ArtifactError, match="extensions/sentry-lambda-extension"):
        craft.read_artifact(target, zip_path, V)


def test_build_manifest_is_used_and_checked(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "dist" / "layer-10.2.3-arm64.zip")
    manifest = BuildManifest.load(write_manifest(zip_path, "arm64"))
    (target,) = craft.load_craft_config(python_config(tmp_path))
    art = craft.read_artifact(target, zip_path, V)
    assert not art.computed and art.manifest.architectures == ("arm64",)
    assert art.manifest.code_sha256 == manifest.code_sha256

    with pytest.raises(ArtifactError, match="built for version 10.2.3, not 10.2.4"):
        craft.read_artifact(target, zip_path, ReleaseVersion.parse("10.2.4"))
    (x86_target,) = craft.load_craft_config(
        python_config(tmp_path, extra="  compatibleArchitectures: [x86_64]\n")
    )
    with pytest.raises(ArtifactError, match="arm64 .*compatibleArchitectures says x86_64"):
        craft.read_artifact(x86_target, zip_path, V)
    zip_path.write_bytes(zip_path.read_bytes() + b"changed")  # the zip no longer matches
    with pytest.raises(ArtifactError, match="differs from its build manifest"):
        craft.read_artifact(target, zip_path, V)


def test_architectures_are_grouped_into_one_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    for arch in ("x86_64", "arm64"):
        make_zip(
            dist / f"sentry-node-10.2.3-{arch}.zip", {"nodejs/node_modules/x/i.js": arch.encode()}
        )
    # A per-arch craft config: one target per architecture, as before the universal layout.
    targets = "".join(
        f"""\
- name: aws-lambda-layer
  id: {arch}
  includeNames: /^sentry-node-.+-{arch}\\.zip$/
  layerName: SentryNodeServerlessSDKv{{{{{{major}}}}}}{suffix}
  compatibleRuntimes:
    - name: node
      versions: [nodejs22.x, nodejs24.x]
  compatibleArchitectures: [{arch}]
  license: MIT
"""
        for arch, suffix in (("x86_64", ""), ("arm64", "-arm64"))
    )
    argv = [
        "craft",
        "check",
        "--config",
        str(write_config(tmp_path, targets)),
        "--version",
        "10.2.3",
        "--artifacts",
        str(dist),
        "--json",
        "-q",
    ]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    (release,) = json.loads(out)["releases"]
    assert release["canonical"] == "aws-layer:node" and release["runtime_dir"] == "node"
    assert release["compatible_runtimes"] == ["nodejs22.x", "nodejs24.x"]
    assert [(layer["architectures"], layer["layer_name"]) for layer in release["layers"]] == [
        (["x86_64"], "SentryNodeServerlessSDKv10"),
        (["arm64"], "SentryNodeServerlessSDKv10-arm64"),
    ]

    code, out, _ = run_cli(capsys, *argv, "--target", "arm64")
    layers = json.loads(out)["releases"][0]["layers"]
    assert [layer["architectures"] for layer in layers] == [["arm64"]]


def test_same_architecture_twice_is_refused(tmp_path: Path) -> None:
    targets = PYTHON_TARGET.format(layer_name="A").replace(
        "^layer-", "^layer-a"
    ) + PYTHON_TARGET.format(layer_name="B").replace("^layer-", "^layer-b")
    config = write_config(tmp_path, targets)
    make_zip(tmp_path / "dist" / "layer-a.zip")
    make_zip(tmp_path / "dist" / "layer-b.zip")
    with pytest.raises(ConfigError, match=r"targets\[1\] and targets\[2\]: both publish a x86_64"):
        craft.plan_releases(craft.load_craft_config(config), tmp_path / "dist", V, config)


# ------------------------------------------------------------------ end to end (moto)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Region-level retries without real sleeping."""
    from layer_builder.publish.publisher import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt, rng: 0.0)


def test_publish_end_to_end(
    tmp_path: Path,
    aws_env: str,
    unique_name: str,
    no_backoff: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.helpers.faultproxy import FaultProxy, Faults

    config = python_config(tmp_path, unique_name + "v{{{major}}}")
    make_zip(tmp_path / "dist" / "layer-10.2.3.zip")
    registry = tmp_path / "registry"
    argv = [
        "craft",
        "publish",
        "--config",
        str(config),
        "--version",
        "10.2.3",
        "--artifacts",
        str(tmp_path / "dist"),
        "--registry",
        str(registry),
        "--regions",
        "us-east-1,eu-west-1",
    ]

    # A dry run plans with read calls only: nothing published, no registry.
    code, out, err = run_cli(capsys, *argv, "--dry-run", "--json", "-q")
    assert code == 0, err
    assert {r["status"] for r in json.loads(out)["results"]} == {"planned-new"}
    assert not registry.exists()

    # eu-west-1 is down: exit 3 naming it, and nothing recorded (the registry stays whole).
    with FaultProxy(aws_env, Faults(down_regions={"eu-west-1"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run_cli(capsys, *argv)
    assert code == 3
    assert "eu-west-1" in err and "us-east-1" not in err
    assert not (registry / "aws-lambda-layers/python/10.2.3.json").exists()

    # The same command again finishes: us-east-1 is reused, eu-west-1 published.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    code, out, err = run_cli(capsys, *argv, "--json", "-q")
    assert code == 0, err
    result = json.loads(out)
    assert {(r["region"], r["status"]) for r in result["results"]} == {
        ("us-east-1", "reused"),
        ("eu-west-1", "new"),
    }

    doc = json.loads((registry / "aws-lambda-layers/python/10.2.3.json").read_text())
    # What craft writes for this target...
    assert doc["canonical"] == "aws-layer:python"
    assert doc["sdk_version"] == "10.2.3"
    assert doc["account_number"] == "123456789012"
    assert doc["layer_name"] == unique_name + "v10"
    assert sorted(r["region"] for r in doc["regions"]) == ["eu-west-1", "us-east-1"]
    assert all(isinstance(r["version"], str) for r in doc["regions"])
    # ...and what we add: the runtimes from compatibleRuntimes[].versions, the architecture.
    assert doc["compatible_runtimes"] == ["python3.12", "python3.13"]
    assert doc["compatible_architectures"] == ["x86_64"]
    latest = registry / "aws-lambda-layers/python/latest.json"
    assert latest.is_symlink() and os.readlink(latest) == "10.2.3.json"

    # A third run publishes nothing new.
    code, out, _ = run_cli(capsys, *argv, "--json", "-q")
    assert code == 0
    assert {r["status"] for r in json.loads(out)["results"]} == {"reused"}


def test_prerelease_is_skipped_unless_linked(
    tmp_path: Path, aws_env: str, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = python_config(tmp_path, unique_name)
    make_zip(tmp_path / "dist" / "layer-1.zip")
    argv = [
        "craft",
        "publish",
        "--config",
        str(config),
        "--version",
        "11.0.0-beta.1",
        "--artifacts",
        str(tmp_path / "dist"),
        "--registry",
        str(tmp_path / "registry"),
        "--regions",
        "us-east-1",
    ]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert "prerelease" in out and not (tmp_path / "registry").exists()

    python_config(tmp_path, unique_name, extra="  linkPrereleases: true\n")
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    doc_path = tmp_path / "registry/aws-lambda-layers/python/11.0.0-beta.1.json"
    doc = json.loads(doc_path.read_text())
    assert doc["layer_name"] == unique_name
