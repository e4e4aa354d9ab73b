"""`layer-builder publish` through the CLI against moto's server: the exit codes, messages and
registry behaviour a release engineer sees (0 / 3 and resume / 2 with nothing published)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from layer_builder.cli import main
from layer_builder.config import LayerConfig
from layer_builder.model import BuildManifest, ReleaseVersion
from tests.helpers.faultproxy import FaultProxy, Faults

V = ReleaseVersion.parse("3.1.0")
REGIONS = "us-east-1,eu-west-1,ap-southeast-2"


def publish(
    capsys: pytest.CaptureFixture[str], cfg: LayerConfig, dist: Path, registry: Path, *extra: str
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(
        [
            "publish",
            str(cfg.path),
            "--version",
            V.text,
            "--dist",
            str(dist),
            "--registry",
            str(registry),
            "--regions",
            REGIONS,
            "--json",
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def versions(endpoint: str, region: str, name: str) -> list[int]:
    client = boto3.client("lambda", region_name=region, endpoint_url=endpoint)
    return [v["Version"] for v in client.list_layer_versions(LayerName=name)["LayerVersions"]]


@pytest.fixture
def setup(
    aws_env: str,
    make_config: Callable[..., LayerConfig],
    make_layers: Callable[..., list[tuple[Path, BuildManifest]]],
    tmp_path: Path,
) -> tuple[LayerConfig, Path, Path, str]:
    cfg = make_config(publish="max_workers: 8\nregion_timeout: 20\nattempts: 2\n")
    (mpath, _), *_ = make_layers(cfg, V)
    return cfg, mpath.parent, tmp_path / "registry", aws_env


def test_publish_then_rerun_changes_nothing(
    setup: tuple[LayerConfig, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, dist, registry, endpoint = setup
    code, data, err = publish(capsys, cfg, dist, registry)
    assert code == 0, err
    assert data is not None and data["complete"] and len(data["results"]) == 6
    assert {r["status"] for r in data["results"]} == {"new"}
    doc_path = registry / "aws-lambda-layers/python/3.1.0.json"
    doc = json.loads(doc_path.read_text())
    assert [r["region"] for r in doc["regions"]] == sorted(REGIONS.split(","))
    before = doc_path.read_bytes()

    code, data, err = publish(capsys, cfg, dist, registry)
    assert code == 0, err
    assert data is not None and {r["status"] for r in data["results"]} == {"reused"}
    assert doc_path.read_bytes() == before
    name = cfg.layer_name(V, "x86_64")
    assert all(versions(endpoint, r, name) == [1] for r in REGIONS.split(","))


def test_a_region_down_exits_3_names_it_and_the_rerun_finishes(
    setup: tuple[LayerConfig, Path, Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, dist, registry, endpoint = setup
    with FaultProxy(endpoint, Faults(down_regions={"eu-west-1"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, err = publish(capsys, cfg, dist, registry)
    assert code == 3
    # With --json, progress goes to stderr; the error is its last line.
    last = err.splitlines()[-1]
    name = cfg.layer_name(V, "x86_64")
    assert last.startswith(f"error: publishing incomplete: 2 failed: eu-west-1 ({name})")
    assert f"eu-west-1 ({name}-arm64)" in last and "run the same command again to finish" in last
    assert "us-east-1" not in last and "ap-southeast-2" not in last
    assert data is not None and sorted(data["failed"]) == [
        f"eu-west-1/{name}",
        f"eu-west-1/{name}-arm64",
    ]
    assert data["registry"] is None and not (registry / "aws-lambda-layers").exists()

    # The same command, region back up: only the missing region is published.
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    code, data, err = publish(capsys, cfg, dist, registry)
    assert code == 0, err
    assert data is not None
    status = {(r["region"], r["architectures"][0]): r["status"] for r in data["results"]}
    assert status[("eu-west-1", "x86_64")] == status[("eu-west-1", "arm64")] == "new"
    assert {s for (reg, _), s in status.items() if reg != "eu-west-1"} == {"reused"}
    for arch in ("x86_64", "arm64"):
        name = cfg.layer_name(V, arch)
        assert all(versions(endpoint, r, name) == [1] for r in REGIONS.split(","))
    doc = json.loads((registry / "aws-lambda-layers/python/3.1.0.json").read_text())
    assert len(doc["regions"]) == 3


def test_allow_partial_writes_the_regions_that_succeeded_and_still_exits_3(
    setup: tuple[LayerConfig, Path, Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, dist, registry, endpoint = setup
    with FaultProxy(endpoint, Faults(down_regions={"ap-southeast-2"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, _ = publish(capsys, cfg, dist, registry, "--allow-partial")
    assert code == 3
    doc = json.loads((registry / "aws-lambda-layers/python/3.1.0.json").read_text())
    assert [r["region"] for r in doc["regions"]] == ["eu-west-1", "us-east-1"]
    assert data is not None and data["registry"]["missing_regions"]


def test_dry_run_publishes_nothing(
    setup: tuple[LayerConfig, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, dist, registry, endpoint = setup
    code, data, err = publish(capsys, cfg, dist, registry, "--dry-run")
    assert code == 0, err
    assert data is not None and data["dry_run"]
    assert {r["status"] for r in data["results"]} == {"planned-new"}
    assert versions(endpoint, "us-east-1", cfg.layer_name(V, "x86_64")) == []
    assert not registry.exists()


def test_bad_inputs_exit_2_with_nothing_published(
    setup: tuple[LayerConfig, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, dist, registry, endpoint = setup

    def refused(version: str, regions: str) -> str:
        code = main(["publish", str(cfg.path), "--version", version, "--dist", str(dist),
                     "--regions", regions, "--registry", str(registry)])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        return err

    assert "build manifest not found" in refused("9.9.9", "us-east-1")
    assert "mars-north-1" in refused(V.text, "us-east-1,mars-north-1")
    # A zip that changed after it was built is refused before any AWS call.
    zip_path = next(dist.glob("*x86_64.zip"))
    zip_path.write_bytes(zip_path.read_bytes() + b"tampered")
    assert "differs from its build manifest" in refused(V.text, "us-east-1")
    assert versions(endpoint, "us-east-1", cfg.layer_name(V, "x86_64")) == []
    assert not registry.exists()
