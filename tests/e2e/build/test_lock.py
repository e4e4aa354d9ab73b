"""Lock files through the CLI against a real local package index: `lock` pins every wheel
with its sha256; `build` installs from the lock by default, so a newer dependency on the
index changes nothing (same bytes), while `--no-lock` picks it up; a tampered wheel is
refused by hash; a lock for another version, or a missing one with `--locked`, stops the
build (exit 2) before anything is installed, naming the command that updates it."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from layer_builder.build.lock import for_build, lock_files
from layer_builder.config import load_config
from layer_builder.model import ReleaseVersion
from tests.helpers.cli import run_cli
from tests.helpers.package_index import PackageIndex, make_wheel, sha256_of, write_tiny_config
from tests.helpers.paths import REPO


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinysdk", "1.0.0", requires=["tinydep>=1.0"])
    make_wheel(wheels, "tinydep", "1.0.0")
    index = PackageIndex(wheels)
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.chdir(tmp_path)
    config = write_tiny_config(tmp_path, f"Lock{uuid.uuid4().hex[:8]}")
    yield config, wheels, index
    index.close()


def build(
    capsys: pytest.CaptureFixture[str], config: Path, out: Path, *extra: str
) -> tuple[bytes, dict[str, Any]]:
    code, _, err = run_cli(capsys, "build", str(config), "--version", "1.0.0", "--out", str(out),
                       "-q", *extra)  # fmt: skip
    assert code == 0, err
    (zip_path,) = out.glob("*.zip")
    manifest = json.loads(zip_path.with_name(zip_path.name + ".json").read_text())
    return zip_path.read_bytes(), manifest


def packages(manifest: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["version"] for p in manifest["packages"]}


@pytest.mark.slow
def test_locked_build_ignores_a_newer_dependency_and_refuses_a_tampered_wheel(
    world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, wheels, index = world
    code, out, err = run_cli(capsys, "lock", str(config), "--version", "1.0.0", "--json")
    assert code == 0, err
    locks = {Path(entry["path"]).name: entry for entry in json.loads(out)["locks"]}
    assert sorted(locks) == ["tiny.lock.arm64.txt", "tiny.lock.x86_64.txt"]
    text = (tmp_path / "tiny.lock.x86_64.txt").read_text()
    assert "# Written by `layer-builder lock tiny.yml --version 1.0.0`" in text
    for name in ("tinysdk", "tinydep"):
        digest = sha256_of(wheels / f"{name}-1.0.0-py3-none-any.whl")
        assert f"{name}==1.0.0 \\\n    --hash=sha256:{digest}\n" in text
    # Locking again with the index unchanged rewrites nothing.
    code, out, _ = run_cli(capsys, "lock", str(config), "--version", "1.0.0", "--json")
    assert code == 0 and not any(e["changed"] for e in json.loads(out)["locks"])

    today, manifest = build(capsys, config, tmp_path / "today")
    assert packages(manifest) == {"tinysdk": "1.0.0", "tinydep": "1.0.0"}

    # A month later the index serves a newer dependency.
    make_wheel(wheels, "tinydep", "1.1.0", payload="NEWER = True\n")
    later, manifest = build(capsys, config, tmp_path / "later")
    assert later == today and packages(manifest)["tinydep"] == "1.0.0"
    unlocked, manifest = build(capsys, config, tmp_path / "unlocked", "--no-lock")
    assert packages(manifest)["tinydep"] == "1.1.0" and unlocked != today

    # The index now serves other bytes under the locked file name (and their sha256 in its
    # links, as a compromised index would): refused by the lock's hash, nothing written.
    make_wheel(wheels, "tinydep", "1.0.0", payload="STOLEN = True\n")
    out_dir = tmp_path / "tampered"
    code, _, err = run_cli(
        capsys, "build", str(config), "--version", "1.0.0", "--out", str(out_dir)
    )
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: pip install from tiny.lock.") and "HASH" in last.upper()
    assert not out_dir.exists()


@pytest.mark.slow
def test_a_stale_or_missing_lock_stops_the_build_before_any_install(
    world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, wheels, index = world
    assert run_cli(capsys, "lock", str(config), "--version", "1.0.0")[0] == 0
    make_wheel(wheels, "tinysdk", "1.0.1", requires=["tinydep>=1.0"])
    before = len(index.requests)
    code, _, err = run_cli(capsys, "build", str(config), "--version", "1.0.1", "--out", "dist")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: ") and "tiny.lock." in err
    assert "locks tinysdk 1.0.0, this build needs 1.0.1" in err
    assert "run `layer-builder lock tiny.yml --version 1.0.1`" in err
    assert len(index.requests) == before and not (tmp_path / "dist").exists()
    # From another directory the command names the config so that it works from there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    try:
        code, _, err = run_cli(capsys, "build", str(config.resolve()), "--version", "1.0.1")
    finally:
        os.chdir(tmp_path)
    assert code == 2 and f"run `layer-builder lock {config.resolve()} --version 1.0.1`" in err

    # --no-lock builds it anyway; `lock` brings the lock up to date, and then it builds.
    assert run_cli(capsys, "build", str(config), "--version", "1.0.1", "--no-lock", "-q")[0] == 0
    assert run_cli(capsys, "lock", str(config), "--version", "1.0.1")[0] == 0
    assert run_cli(capsys, "build", str(config), "--version", "1.0.1", "--locked", "-q")[0] == 0

    # --locked (the release workflow) refuses a config without its lock.
    for lock in tmp_path.glob("tiny.lock.*.txt"):
        lock.unlink()
    code, _, err = run_cli(capsys, "build", str(config), "--version", "1.0.1", "--locked")
    assert code == 2 and "lock file missing" in err and "layer-builder lock" in err
    code, out, _ = run_cli(capsys, "build", str(config), "--version", "1.0.1", "--out", "plain")
    assert code == 0 and "no lock file; dependencies resolved afresh" in out


@pytest.mark.parametrize(
    ("config", "version"), [("sentry-python", "2.75.0"), ("sentry-node", "10.75.2")]
)
def test_the_reference_configs_are_locked_for_the_readme_versions(
    config: str, version: str
) -> None:
    cfg = load_config(REPO / "configs" / f"{config}.yml")
    lock = for_build(cfg, ReleaseVersion.parse(version), "require")
    assert lock is not None and all(p.is_file() for p in lock_files(cfg))
    for path in lock_files(cfg):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".txt":  # every pinned wheel carries its sha256
            pins = [line for line in text.splitlines() if "==" in line and line[0] != "#"]
            assert pins and text.count("--hash=sha256:") == len(pins)
        else:
            packages = json.loads(text)["packages"]
            assert all(e["integrity"].startswith("sha512-") for k, e in packages.items() if k)


def test_a_node_lock_for_another_version_stops_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yml").write_text(
        'name: "N"\ndescription: "d"\nlicense: MIT\ncanonical: "aws-layer:node"\n'
        "runtime: node\ncompatible_runtimes: [nodejs22.x]\narchitectures: [x86_64]\n"
        'sdk:\n  package: "@sentry/aws-serverless"\nregistry:\n  runtime_dir: node\n'
    )
    lock = {
        "lockfileVersion": 3,
        "packages": {"": {"dependencies": {"@sentry/aws-serverless": "10.1.0"}}},
    }
    (tmp_path / "node.package-lock.json").write_text(json.dumps(lock))
    code, _, err = run_cli(capsys, "build", "node.yml", "--version", "10.2.0", "--out", "dist")
    assert code == 2 and err.startswith(
        "error: node.package-lock.json: locks @sentry/aws-serverless"
    )
    assert "10.1.0, this build needs 10.2.0" in err
    assert "run `layer-builder lock node.yml --version 10.2.0`" in err
    assert not (tmp_path / "dist").exists()
