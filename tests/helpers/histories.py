"""Publish histories through the CLI against moto: a release's zips (``build``), ``publish``
with --json (``run_publish``), what Lambda and the registry then hold (``versions``,
``recorded``, ``policy``), a hand publish, and the ``env`` fixture (moto, config, dist,
registry)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from layer_builder.aws.clients import parse_policy
from layer_builder.config import LayerConfig
from layer_builder.model import BuildManifest, ReleaseVersion
from tests.helpers.cli import run_cli
from tests.helpers.layers import write_layer

NEW = ReleaseVersion.parse("2.75.0")


REGIONS = ["ap-southeast-2", "eu-west-1", "us-east-1"]


PUBLISH_CFG = "max_workers: 8\nregion_timeout: 20\nattempts: 2\n"


def run_publish(
    capsys: pytest.CaptureFixture[str],
    cfg: LayerConfig,
    version: ReleaseVersion,
    dist: Path,
    registry: Path,
    *extra: str,
) -> tuple[int, dict[str, Any] | None, str]:
    """``publish`` of this release to REGIONS with --json: exit code, document, stderr."""
    code, out, err = run_cli(
        capsys, "publish", str(cfg.path), "--version", version.text, "--dist", str(dist),
        "--registry", str(registry), "--regions", ",".join(REGIONS), "--json", *extra,
    )  # fmt: skip
    return code, (json.loads(out) if out.strip() else None), err


def lambda_client(endpoint: str, region: str) -> Any:
    return boto3.client("lambda", region_name=region, endpoint_url=endpoint)


def versions(endpoint: str, region: str, name: str) -> list[int]:
    out = lambda_client(endpoint, region).list_layer_versions(LayerName=name)
    return sorted(v["Version"] for v in out["LayerVersions"])


def recorded(registry: Path, version: ReleaseVersion) -> dict[str, int]:
    doc = json.loads((registry / f"aws-lambda-layers/python/{version.text}.json").read_text())
    return {r["region"]: int(r["version"]) for r in doc["regions"]}


Env = tuple[LayerConfig, Path, Path, str]


@pytest.fixture
def env(aws_env: str, make_config: Callable[..., LayerConfig], tmp_path: Path) -> Env:
    cfg = make_config(publish=PUBLISH_CFG, architectures="[x86_64]")
    return cfg, tmp_path / "dist", tmp_path / "registry", aws_env


def build(cfg: LayerConfig, dist: Path, version: ReleaseVersion, extra: bytes = b"") -> Path:
    manifest_path, _ = write_layer(dist, cfg, version, "x86_64", extra)
    return manifest_path


OLD = ReleaseVersion.parse("2.74.0")


WRITES = ("PublishLayerVersion", "AddLayerVersionPermission", "DeleteLayerVersion",
          "RemoveLayerVersionPermission")  # fmt: skip


def policy(endpoint: str, region: str, name: str, version: int) -> set[tuple[str, str, Any]]:
    text = lambda_client(endpoint, region).get_layer_version_policy(
        LayerName=name, VersionNumber=version
    )["Policy"]
    return {(s.statement_id, s.principal, s.organization_id) for s in parse_policy(text)}


def publish_by_hand(endpoint: str, region: str, manifest_path: Path) -> int:
    """What another machine's run leaves behind: a marked version, no permission, no record."""
    from layer_builder.publish.markers import marked_description

    m = BuildManifest.load(manifest_path)
    out = lambda_client(endpoint, region).publish_layer_version(
        LayerName=m.layer_name,
        Content={"ZipFile": m.zip_path(manifest_path).read_bytes()},
        Description=marked_description(m.description, m.sha256, m.canonical, m.version),
        CompatibleRuntimes=list(m.compatible_runtimes),
        CompatibleArchitectures=list(m.architectures),
        LicenseInfo=m.license,
    )
    return int(out["Version"])
