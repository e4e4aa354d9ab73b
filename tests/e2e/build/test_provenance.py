"""Provenance: `build` records the commit and workflow run from the CI's variables, `publish`
copies it into the version document with the attestation URL it is given; malformed
variables are refused, and nothing is recorded outside CI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from layer_builder.build import sdk
from layer_builder.cli import main
from layer_builder.config import LayerConfig
from layer_builder.errors import ArgumentError
from layer_builder.provenance import provenance_from_env
from tests.helpers.elf_fixtures import write_elf
from tests.helpers.package_index import write_tiny_config
from tests.helpers.paths import REPO

SHA = "0123456789abcdef0123456789abcdef01234567"
GITHUB = {
    "GITHUB_SHA": SHA,
    "GITHUB_REPOSITORY": "getsentry/layer-builder",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_RUN_ID": "4242",
}
ATTESTATION = "https://github.com/getsentry/layer-builder/attestations/77"


def fake_install(cfg: LayerConfig, sdk_version: str, arch: str, root: Path) -> None:
    (root / "python" / "tinysdk").mkdir(parents=True, exist_ok=True)
    (root / "python" / "tinysdk" / "__init__.py").write_text(f"VERSION = {sdk_version!r}\n")


def test_build_and_publish_record_commit_run_and_attestation(
    aws_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sdk, "install_sdk", fake_install)
    for key, value in GITHUB.items():
        monkeypatch.setenv(key, value)
    config = write_tiny_config(
        tmp_path, f"Prov{uuid.uuid4().hex[:8]}", extension=REPO / "extensions" / "relay.yml"
    )
    binary = write_elf(tmp_path / "relay", "x86_64")
    dist = tmp_path / "dist"
    code = main(["build", str(config), "--version", "1.0.0", "--out", str(dist), "-q",
                 "--arch", "x86_64", "--extension-file", f"x86_64={binary}"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (manifest,) = dist.glob("*.zip.json")
    recorded = {
        "commit": SHA,
        "repository": "https://github.com/getsentry/layer-builder",
        "workflow_run": "https://github.com/getsentry/layer-builder/actions/runs/4242",
    }
    assert json.loads(manifest.read_text())["provenance"] == recorded

    # Published from elsewhere (a laptop, no CI variables): the build's record is kept.
    for key in GITHUB:
        monkeypatch.delenv(key)
    registry = tmp_path / "registry"
    code = main(["publish", str(config), "--version", "1.0.0", "--dist", str(dist),
                 "--arch", "x86_64", "--registry", str(registry), "--regions", "us-east-1",
                 "--attestation", ATTESTATION, "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    doc = json.loads((registry / "aws-lambda-layers/tiny/1.0.0.json").read_text())
    assert doc["provenance"] == {**recorded, "attestation": ATTESTATION}

    argv = ["publish", str(config), "--version", "1.0.0", "--dist", str(dist), "--dry-run"]
    code = main([*argv, "--registry", str(registry), "--attestation", "http://x/1"])
    assert code == 2 and "--attestation" in capsys.readouterr().err


def test_malformed_ci_variables_stop_the_build_before_any_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    installs: list[str] = []
    monkeypatch.setattr(sdk, "install_sdk", lambda cfg, v, arch, root: installs.append(arch))
    monkeypatch.setenv("GITHUB_SHA", "main")
    monkeypatch.setenv("GITHUB_REPOSITORY", "getsentry/layer-builder")
    config = write_tiny_config(tmp_path, "Bad")
    code = main(["build", str(config), "--version", "1.0.0", "--out", str(tmp_path / "out")])
    assert code == 2 and installs == []
    assert "GITHUB_SHA: 'main' is not a commit id" in capsys.readouterr().err


def test_provenance_from_the_environment() -> None:
    assert provenance_from_env({}) is None
    assert provenance_from_env({"GITHUB_SHA": SHA}) is None  # not enough to say where
    assert provenance_from_env({**GITHUB, "GITHUB_RUN_ID": ""}) == {
        "commit": SHA,
        "repository": "https://github.com/getsentry/layer-builder",
    }
    ghes = {**GITHUB, "GITHUB_SERVER_URL": "https://ghe.example.com/"}
    assert provenance_from_env(ghes)["workflow_run"] == (  # type: ignore[index]
        "https://ghe.example.com/getsentry/layer-builder/actions/runs/4242"
    )
    for key, bad in (("GITHUB_SHA", "main"), ("GITHUB_REPOSITORY", "a b"), ("GITHUB_RUN_ID", "x")):
        with pytest.raises(ArgumentError, match=key):
            provenance_from_env({**GITHUB, key: bad})
