"""The README's main command, end to end: `release --sandbox` on a machine with no AWS account.

Runs the CLI in a subprocess with an environment stripped of AWS settings, as a newcomer's
shell would be, and checks what they would see: every region of the partition published with
one universal layer serving both architectures, a registry a reader can use, and the sandbox
clearly labelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO as ROOT

VERSION = "2.75.0"

pytestmark = pytest.mark.slow


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(home)  # no ~/.aws to fall back on
    env["LAYER_BUILDER_CACHE"] = str(home / "cache")
    return env


def release(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`layer-builder release` of the Python layer, run in ``work`` as a newcomer would."""
    return subprocess.run(
        [sys.executable, "-m", "layer_builder", "release", str(ROOT / "configs/sentry-python.yml"),
         "--version", VERSION, *args],
        cwd=work, env=clean_env(work / "home"), capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sandbox_release(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    work = tmp_path_factory.mktemp("sandbox")
    proc = release(work, "--sandbox", "--json")
    return proc, work


def test_sandbox_release_publishes_every_region_for_both_architectures(
    sandbox_release: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = sandbox_release
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["complete"] is True and result["failed"] == []
    regions = {r["region"] for r in result["results"]}
    # Only the commercial partition: moto also lists cn-* and us-gov-*, which must be skipped.
    assert len(regions) >= 17
    assert not any(r.startswith(("cn-", "us-gov-")) for r in regions)
    # One universal layer per region (the stand-in has both architectures), serving both.
    assert len(result["results"]) == len(regions)
    for r in result["results"]:
        assert r["status"] == "new" and r["architectures"] == ["x86_64", "arm64"]
        assert r["arn"].startswith(
            f"arn:aws:lambda:{r['region']}:123456789012:layer:SentryPythonServerlessSDK:"
        )


def test_sandbox_is_labelled(
    sandbox_release: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = sandbox_release
    assert "SANDBOX" in proc.stderr and "STAND-IN" in proc.stderr
    assert "nothing reaches AWS" in proc.stderr
    # The label is one line, even where CI=true fits output to 100 columns.
    (label,) = [line for line in proc.stderr.splitlines() if "nothing reaches AWS" in line]
    assert label.startswith("SANDBOX: ") and len(label) <= 100


def test_sandbox_zip_is_named_a_standin_by_verify(
    sandbox_release: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, work = sandbox_release
    (zip_path,) = (work / "sandbox" / "dist").glob("*.zip")
    proc = subprocess.run(
        [sys.executable, "-m", "layer_builder", "verify", str(zip_path), "--json"],
        cwd=work, env=clean_env(work / "home"), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (report,) = json.loads(proc.stdout)["zips"]
    assert any(n.startswith("carries the sandbox STAND-IN extension") for n in report["notes"])


def test_sandbox_registry_is_readable(
    sandbox_release: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, work = sandbox_release
    assert proc.returncode == 0
    registry = work / "sandbox" / "registry"
    layers = registry / "aws-lambda-layers" / "python"
    doc = json.loads((layers / f"{VERSION}.json").read_text())
    assert (
        doc["canonical"] == "aws-layer:python" and doc["layer_name"] == "SentryPythonServerlessSDK"
    )
    assert doc["compatible_architectures"] == ["x86_64", "arm64"]
    assert all(isinstance(r["version"], str) for r in doc["regions"])
    assert os.readlink(layers / "latest.json") == f"{VERSION}.json"
    assert os.readlink(layers / "2.json") == f"{VERSION}.json"
    # A reader gets the arm64 ARN from the same registry through the CLI: the one layer.
    latest = subprocess.run(
        [
            sys.executable,
            "-m",
            "layer_builder",
            "registry",
            "latest",
            "aws-layer:python",
            "--region",
            "eu-west-1",
            "--arch",
            "arm64",
            "--registry",
            str(registry),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=work,
    )
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.strip().startswith(
        "arn:aws:lambda:eu-west-1:123456789012:layer:SentryPythonServerlessSDK:"
    )
    # The one zip the sandbox published is the one its manifest describes.
    assert sorted(p.name for p in (work / "sandbox/dist").iterdir()) == [
        f"sentry-python-{VERSION}.zip",
        f"sentry-python-{VERSION}.zip.json",
    ]
    manifest = json.loads((work / "sandbox/dist" / f"sentry-python-{VERSION}.zip.json").read_text())
    assert manifest["layout"] == "universal"
    assert manifest["architectures"] == ["x86_64", "arm64"]
    # Where each stand-in binary came from is recorded.
    assert [e["architecture"] for e in manifest["extensions"]] == ["x86_64", "arm64"]
    assert all(e["source"] for e in manifest["extensions"])
    (layer,) = doc["layers"]
    assert layer["compatible_architectures"] == ["x86_64", "arm64"]
    assert layer["code_sha256"] == manifest["code_sha256"] and "architecture" not in layer


def test_release_without_credentials_fails_fast_before_building(tmp_path: Path) -> None:
    proc = release(tmp_path, "--regions", "us-east-1")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "credentials" in proc.stderr.lower()
    assert not (tmp_path / "dist").exists()  # nothing was built
