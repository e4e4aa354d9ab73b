"""Publishing as release engineers actually work: several releases and runs, through the CLI
against moto's server (and the fault proxy): older releases finished late, rebuilt zips,
broken registries, permission drift, stand-in zips, unparseable answers."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.config import LayerConfig, load_config
from layer_builder.model import BuildManifest
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.histories import (
    NEW,
    OLD,
    REGIONS,
    Env,
    build,
    lambda_client,
    policy,
    publish_by_hand,
    recorded,
    run_publish,
    versions,
)
from tests.helpers.layers import FAKE_ACCOUNT


def test_finishing_an_older_release_after_a_newer_one_adds_only_the_missing_region(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(OLD, "x86_64")
    build(cfg, dist, OLD)
    build(cfg, dist, NEW)
    with FaultProxy(endpoint, Faults(down_regions={"eu-west-1"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run_publish(capsys, cfg, OLD, dist, registry)
    assert code == 3, err
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    before = {r: versions(endpoint, r, name) for r in REGIONS}
    assert before == {"ap-southeast-2": [1, 2], "eu-west-1": [1], "us-east-1": [1, 2]}

    with FaultProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, err = run_publish(capsys, cfg, OLD, dist, registry)
    assert code == 0, err
    # Only the region that missed 2.74.0 gains a version; the others reuse version 1.
    assert {r: versions(endpoint, r, name) for r in REGIONS} == {
        "ap-southeast-2": [1, 2], "eu-west-1": [1, 2], "us-east-1": [1, 2]
    }  # fmt: skip
    assert proxy.count("PublishLayerVersion") == 1
    assert proxy.count("PublishLayerVersion", region="eu-west-1") == 1
    assert data is not None
    assert {r["region"]: r["status"] for r in data["results"]} == {
        "ap-southeast-2": "reused", "eu-west-1": "new", "us-east-1": "reused"
    }  # fmt: skip
    assert recorded(registry, OLD) == {"ap-southeast-2": 1, "eu-west-1": 2, "us-east-1": 1}
    latest = registry / "aws-lambda-layers/python/latest.json"
    assert os.readlink(latest) == f"{NEW.text}.json"  # the older release takes no link


def test_a_rebuilt_zip_for_a_recorded_version_is_refused_before_any_aws_write(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, dist, registry, endpoint = env
    build(cfg, dist, NEW)
    assert run_publish(capsys, cfg, NEW, dist, registry)[0] == 0
    doc_before = (registry / f"aws-lambda-layers/python/{NEW.text}.json").read_bytes()
    old_sha = BuildManifest.load(build(cfg, dist, NEW)).code_sha256
    new_sha = BuildManifest.load(build(cfg, dist, NEW, extra=b"other bytes")).code_sha256
    assert old_sha != new_sha
    with FaultProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and old_sha in last and new_sha in last
    assert "Rebuild it identically" in last and "release a new version" in last
    assert proxy.count(service="lambda") == 0  # not even a read: refused by the registry
    name = cfg.layer_name(NEW, "x86_64")
    assert all(versions(endpoint, r, name) == [1] for r in REGIONS)
    assert (registry / f"aws-lambda-layers/python/{NEW.text}.json").read_bytes() == doc_before


def _immutable(path: Path) -> Callable[[], None]:
    """Make ``path`` unwritable even for root (chattr +i); returns the undo."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    try:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a directory read-only as root here: {exc}")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("root is a file", "is a file, not a directory"),
        ("corrupt base.json", "base.json: not valid JSON"),
        ("corrupt version document", "2.75.0.json: not valid JSON"),
        ("dangling link of another runtime", "latest.json: links to 9.9.9.json, which is missing"),
        ("read-only checkout", "the registry is not writable"),
    ],
)
def test_a_registry_that_cannot_be_written_is_refused_before_any_aws_write(
    env: Env,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    breakage: str,
    message: str,
) -> None:
    cfg, dist, registry, endpoint = env
    build(cfg, dist, NEW)
    runtime = registry / "aws-lambda-layers/python"
    undo: Callable[[], None] = lambda: None  # noqa: E731
    if breakage == "root is a file":
        registry.write_text("not a directory\n")
    else:
        runtime.mkdir(parents=True)
        if breakage == "corrupt base.json":
            (runtime / "base.json").write_text("{ broken")
        elif breakage == "corrupt version document":
            (runtime / f"{NEW.text}.json").write_text('{"canonical": ')
        elif breakage == "dangling link of another runtime":
            (registry / "aws-lambda-layers/node").mkdir()
            (registry / "aws-lambda-layers/node/latest.json").symlink_to("9.9.9.json")
        else:
            undo = _immutable(runtime)
    try:
        with FaultProxy(endpoint) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
            code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
    finally:
        undo()
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in err
    assert proxy.count(service="lambda") == 0
    assert versions(endpoint, "us-east-1", cfg.layer_name(NEW, "x86_64")) == []


def _rewrite(cfg: LayerConfig, text: str) -> LayerConfig:
    cfg.path.write_text(text)
    return load_config(cfg.path)


def test_permission_drift_is_reconciled_both_ways(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, dist, registry, endpoint = env
    build(cfg, dist, NEW)
    name = cfg.layer_name(NEW, "x86_64")
    assert run_publish(capsys, cfg, NEW, dist, registry)[0] == 0
    assert policy(endpoint, "eu-west-1", name, 1) == {("public", "*", None)}

    org = "o-abcdef1234"
    # The same config file (the zips' names follow it), now organization-only.
    public_text = cfg.path.read_text()
    org_cfg = _rewrite(cfg, public_text + f"  permission:\n    organization_id: {org}\n")
    code, plan, err = run_publish(capsys, org_cfg, NEW, dist, registry, "--dry-run")
    assert code == 0, err
    assert plan is not None
    assert {r["status"] for r in plan["results"]} == {"planned-heal-permission"}
    assert all(
        r["actions"]
        == ["reuse 1", "remove permission public", f"add permission public (* in {org})"]
        for r in plan["results"]
    )
    assert policy(endpoint, "eu-west-1", name, 1) == {("public", "*", None)}  # dry run
    # The human output names the same plan, region by region.
    assert f"plan: eu-west-1 {name}: reuse 1; remove permission public; add permission" in err

    # public -> organization only: the world-readable statement goes.
    code, _, err = run_publish(capsys, org_cfg, NEW, dist, registry)
    assert code == 0, err
    for region in REGIONS:
        assert policy(endpoint, region, name, 1) == {("public", "*", org)}
        assert versions(endpoint, region, name) == [1]

    # organization only -> public: and back.
    cfg = _rewrite(cfg, public_text)
    code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    for region in REGIONS:
        assert policy(endpoint, region, name, 1) == {("public", "*", None)}

    # Someone else's statement on the version is not ours to remove.
    client = lambda_client(endpoint, "us-east-1")
    client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="partner", Action="lambda:GetLayerVersion",
        Principal="210987654321",
    )  # fmt: skip
    org_cfg = _rewrite(cfg, public_text + f"  permission:\n    organization_id: {org}\n")
    assert run_publish(capsys, org_cfg, NEW, dist, registry)[0] == 0
    assert policy(endpoint, "us-east-1", name, 1) == {
        ("public", "*", org), ("partner", "210987654321", None)
    }  # fmt: skip


def _standin(manifest_path: Path) -> None:
    data = json.loads(manifest_path.read_text())
    data["extensions"] = [{
        "name": "sentry-lambda-extension", "version": "0.0.0-sandbox-standin",
        "sha256": "0" * 64, "source": "SANDBOX STAND-IN (not Relay)",
        "architecture": "x86_64", "path": "relay/relay-x86_64",
    }]  # fmt: skip
    manifest_path.write_text(json.dumps(data))


def test_a_standin_zip_is_refused_outside_the_sandbox(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, dist, registry, endpoint = env
    manifest_path = build(cfg, dist, NEW)
    _standin(manifest_path)
    with FaultProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: {manifest_path}: the zip carries the sandbox stand-in")
        assert "--allow-standin" in last
        assert proxy.count(service="lambda") == 0 and not registry.exists()

        # The testing flag lifts the refusal; what speaks next is the zip check (this test
        # zip has a stand-in manifest but no extension inside).
        code, _, err = run_publish(capsys, cfg, NEW, dist, registry, "--allow-standin")
    assert code == 2 and "stand-in" not in err
    assert "extensions/sentry-lambda-extension is missing" in err


def test_an_answer_in_the_wrong_protocol_is_retried_not_a_traceback(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, dist, registry, endpoint = env
    build(cfg, dist, NEW)
    faults = Faults(
        services={"sts", "ec2", "lambda"},
        first={"GetCallerIdentity": "json_429", "DescribeRegions": "html_429",
               "ListLayerVersions": "html_429"},
    )  # fmt: skip
    with FaultProxy(endpoint, faults) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    assert "Traceback" not in err
    assert proxy.count("GetCallerIdentity", fault="json_429") == 1
    assert proxy.count("DescribeRegions", fault="html_429") == 1
    assert proxy.count("ListLayerVersions", fault="html_429") == len(REGIONS)
    assert data is not None and {r["status"] for r in data["results"]} == {"new"}


def test_access_denied_fails_its_region_at_once(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, dist, registry, endpoint = env
    build(cfg, dist, NEW)
    with FaultProxy(endpoint, Faults(first={"PublishLayerVersion": "deny"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, data, _ = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 3
    # One call per region: no retry of a refusal.
    assert proxy.count("PublishLayerVersion") == len(REGIONS)
    assert data is not None and all("AccessDenied" in r["error"] for r in data["results"])


def test_duplicates_converge_on_the_lowest_version_and_unrecorded_ones_are_deleted(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, dist, registry, endpoint = env
    manifest_path = build(cfg, dist, NEW)
    name = cfg.layer_name(NEW, "x86_64")
    for region in REGIONS:
        assert [publish_by_hand(endpoint, region, manifest_path) for _ in range(2)] == [1, 2]
    # Another version's document records version 2 in us-east-1: that one must stay.
    other = registry / "aws-lambda-layers/python"
    other.mkdir(parents=True)
    doc = {
        "canonical": "aws-layer:python", "sdk_version": "2.74.0", "account_number": FAKE_ACCOUNT,
        "layer_name": name, "regions": [{"region": "us-east-1", "version": "2"}],
        "compatible_runtimes": list(cfg.compatible_runtimes),
    }  # fmt: skip
    (other / "2.74.0.json").write_text(json.dumps(doc))

    code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    assert data is not None
    assert {r["region"]: (r["status"], r["version"]) for r in data["results"]} == {
        r: ("reused", 1) for r in REGIONS
    }
    assert {r["region"]: r["deleted"] for r in data["results"]} == {
        "ap-southeast-2": [2], "eu-west-1": [2], "us-east-1": []
    }  # fmt: skip
    assert {r: versions(endpoint, r, name) for r in REGIONS} == {
        "ap-southeast-2": [1], "eu-west-1": [1], "us-east-1": [1, 2]
    }  # fmt: skip
    assert recorded(registry, NEW) == {r: 1 for r in REGIONS}
    assert all(policy(endpoint, r, name, 1) == {("public", "*", None)} for r in REGIONS)
