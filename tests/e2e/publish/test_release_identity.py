"""Publishing cannot adopt, mix or strip the wrong thing, through the CLI against moto's
server and the fault proxy: a rebuilt zip after an incomplete run is a conflict AWS itself
shows (its release marker), a hand-published version with our bytes and other metadata is
never adopted, and a partner's statement named like ours is left alone."""

from __future__ import annotations

import json

import pytest

from layer_builder.model import BuildManifest
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.histories import (
    NEW,
    OLD,
    REGIONS,
    WRITES,
    Env,
    build,
    lambda_client,
    policy,
    publish_by_hand,
    recorded,
    run_publish,
    versions,
)


def _writes(proxy: FaultProxy) -> int:
    return sum(proxy.count(op) for op in WRITES)


def test_a_rebuilt_zip_after_an_incomplete_run_is_refused_from_what_aws_shows(
    env: Env,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(NEW, "x86_64")
    first = BuildManifest.load(build(cfg, dist, NEW))
    with FaultProxy(endpoint, Faults(down_regions={"eu-west-1"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 3, err
    assert not (registry / f"aws-lambda-layers/python/{NEW.text}.json").exists()
    # "Re-run all jobs": the release is rebuilt, with other bytes.
    rebuilt = BuildManifest.load(build(cfg, dist, NEW, extra=b"resolved differently"))
    assert rebuilt.sha256 != first.sha256
    with FaultProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
        dry_code, _, dry_err = run_publish(capsys, cfg, NEW, dist, registry, "--dry-run")
    assert (code, dry_code) == (2, 2), err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {name} {NEW.text} already exists in AWS with other content")
    assert first.sha256 in last and rebuilt.sha256 in last  # both digests
    assert "ap-southeast-2 version 1" in last and "us-east-1 version 1" in last  # and where
    assert "Nothing was published" in last and "Traceback" not in err
    assert dry_err.strip().splitlines()[-1] == last
    assert _writes(proxy) == 0  # found before any write, in any region
    assert {r: versions(endpoint, r, name) for r in REGIONS} == {
        "ap-southeast-2": [1], "eu-west-1": [], "us-east-1": [1]
    }  # fmt: skip
    assert not (registry / f"aws-lambda-layers/python/{NEW.text}.json").exists()


def test_the_published_description_names_the_release_and_its_content(
    env: Env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, dist, registry, endpoint = env
    m = BuildManifest.load(build(cfg, dist, NEW))
    assert run_publish(capsys, cfg, NEW, dist, registry)[0] == 0
    got = lambda_client(endpoint, "us-east-1").get_layer_version(
        LayerName=m.layer_name, VersionNumber=1
    )
    assert got["Description"].endswith(f" [{cfg.canonical} {NEW.text} sha256:{m.sha256}]")
    assert len(got["Description"]) <= 256


def test_a_hand_published_version_with_our_bytes_and_other_metadata_is_never_adopted(
    env: Env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, dist, registry, endpoint = env
    manifest_path = build(cfg, dist, NEW)
    m = BuildManifest.load(manifest_path)
    for region in REGIONS:  # same bytes, by hand: no marker, other runtimes and license
        lambda_client(endpoint, region).publish_layer_version(
            LayerName=m.layer_name,
            Content={"ZipFile": m.zip_path(manifest_path).read_bytes()},
            Description="uploaded from the console",
            CompatibleRuntimes=["python3.8"],
            CompatibleArchitectures=["x86_64"],
        )
    code, plan, err = run_publish(capsys, cfg, NEW, dist, registry, "--dry-run")
    assert code == 0, err
    assert plan is not None and {r["status"] for r in plan["results"]} == {"planned-new"}
    note = "not reused: version 1 holds this zip with other metadata (runtimes python3.8;"
    assert all(r["actions"][0].startswith(note) for r in plan["results"])

    code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    assert data is not None
    assert {r["region"]: (r["status"], r["version"]) for r in data["results"]} == {
        r: ("new", 2) for r in REGIONS
    }
    assert all("published beside version(s) 1" in r["actions"] for r in data["results"])
    assert f"done: us-east-1 {m.layer_name}: {note}" in err  # said in the human output too
    for region in REGIONS:
        assert versions(endpoint, region, m.layer_name) == [1, 2]  # never deleted
        with pytest.raises(lambda_client(endpoint, region).exceptions.ResourceNotFoundException):
            policy(endpoint, region, m.layer_name, 1)  # never shared
        assert policy(endpoint, region, m.layer_name, 2) == {("public", "*", None)}
    assert recorded(registry, NEW) == {r: 2 for r in REGIONS}


def test_a_partner_statement_named_like_ours_is_left_alone(
    env: Env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(NEW, "x86_64")
    build(cfg, dist, NEW)
    assert run_publish(capsys, cfg, NEW, dist, registry)[0] == 0
    for region in REGIONS:
        lambda_client(endpoint, region).add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="public-partner",
            Action="lambda:GetLayerVersion", Principal="210987654321",
        )  # fmt: skip
    code, plan, err = run_publish(capsys, cfg, NEW, dist, registry, "--dry-run")
    assert code == 0, err
    assert plan is not None
    assert all(r["actions"] == ["reuse 1"] for r in plan["results"])  # the plan says the same
    code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    for region in REGIONS:
        assert policy(endpoint, region, name, 1) == {
            ("public", "*", None), ("public-partner", "210987654321", None)
        }  # fmt: skip


def test_a_later_release_deletes_unrecorded_duplicates_of_recorded_zips(
    env: Env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, dist, registry, endpoint = env
    name = cfg.layer_name(OLD, "x86_64")
    old_manifest = build(cfg, dist, OLD)
    build(cfg, dist, NEW)
    assert run_publish(capsys, cfg, OLD, dist, registry)[0] == 0
    # A late commit of 2.74.0 after that run ended: private, unrecorded, marked as ours.
    for region in REGIONS:
        assert publish_by_hand(endpoint, region, old_manifest) == 2
    code, data, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 0, err
    assert data is not None
    assert {r["region"]: (r["version"], r["deleted"]) for r in data["results"]} == {
        r: (3, [2]) for r in REGIONS
    }
    assert {r: versions(endpoint, r, name) for r in REGIONS} == {r: [1, 3] for r in REGIONS}
    assert recorded(registry, OLD) == {r: 1 for r in REGIONS}
    doc = json.loads((registry / f"aws-lambda-layers/python/{NEW.text}.json").read_text())
    assert {r["region"]: r["version"] for r in doc["regions"]} == {r: "3" for r in REGIONS}
