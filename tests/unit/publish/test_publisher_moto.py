"""Publishing against moto's server over loopback HTTP, through a fault-injecting proxy.

boto3 is unchanged; AWS_ENDPOINT_URL points it at tests/helpers/faultproxy.py, which forwards to
moto and counts calls. Assertions read moto's state directly (not through the proxy), so
they check what a user of the layer would see, not what our code believes.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.aws.clients import Aws, AwsCallError, LayerVersionRef, translate
from layer_builder.config import LayerConfig
from layer_builder.errors import ArgumentError, ArtifactError, CredentialsError
from layer_builder.model import BuildManifest, PublishResult, RegionResult, ReleaseVersion
from layer_builder.publish import resolve_regions
from layer_builder.publish.markers import marked_description
from layer_builder.publish.plan import plan_layers
from layer_builder.publish.publisher import Deadline, RegionPublisher, RetryPolicy
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.layers import FAKE_ACCOUNT, ConfigFactory, write_layer
from tests.helpers.publisher_fakes import publish_layers

V = ReleaseVersion.parse("2.75.0")
Manifests = list[tuple[Path, BuildManifest]]
MakeLayers = Callable[..., Manifests]
TWO = ["eu-west-1", "us-west-2"]


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def proxy(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(aws_env) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


@pytest.fixture
def moto(aws_env: str) -> Callable[..., Any]:
    """A client straight to moto (bypassing the proxy) for checking state."""

    def client(service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=aws_env)

    return client


def run(cfg: LayerConfig, manifests: Manifests, regions: list[str], **kw: Any) -> PublishResult:
    kw.setdefault("sleep", no_sleep)
    kw.setdefault("max_workers", 48)
    kw.setdefault("region_timeout", 30)
    return publish_layers(
        cfg, V, manifests, regions, account=FAKE_ACCOUNT, partition="aws", aws=Aws(), **kw
    )


def versions(moto: Callable[..., Any], region: str, name: str) -> list[int]:
    out = moto("lambda", region).list_layer_versions(LayerName=name)["LayerVersions"]
    return sorted(v["Version"] for v in out)


def statements(
    moto: Callable[..., Any], region: str, name: str, version: int
) -> list[dict[str, Any]]:
    policy = moto("lambda", region).get_layer_version_policy(LayerName=name, VersionNumber=version)
    return list(json.loads(policy["Policy"])["Statement"])


def assert_published(
    moto: Callable[..., Any], result: PublishResult, manifests: Manifests, partition: str = "aws"
) -> None:
    by_arch = {m.architectures[0]: m for _, m in manifests}
    for r in result.results:
        if not r.ok:
            continue
        m = by_arch[r.architectures[0]]
        assert versions(moto, r.region, m.layer_name) == [r.version], r  # never a duplicate
        got = moto("lambda", r.region).get_layer_version(
            LayerName=m.layer_name, VersionNumber=r.version
        )
        assert got["Content"]["CodeSha256"] == m.code_sha256
        assert got["CompatibleArchitectures"] == list(r.architectures)
        assert (
            r.arn
            == f"arn:{partition}:lambda:{r.region}:{FAKE_ACCOUNT}:layer:{m.layer_name}:{r.version}"
        )
        sids = {
            (s["Sid"], s["Principal"], s["Action"])
            for s in statements(moto, r.region, m.layer_name, r.version or 0)
        }
        assert ("public", "*", "lambda:GetLayerVersion") in sids


# --------------------------------------------------------------------------- the happy path


def test_all_regions_published_then_rerun_changes_nothing(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    cfg = make_config()
    manifests = make_layers(cfg, V)
    account, partition, regions = resolve_regions(Aws(), None, ())
    assert not any(r.startswith(("cn-", "us-gov-")) for r in regions)
    seen: list[RegionResult] = []
    started: list[tuple[str, str]] = []
    proxy.reset()

    first = run(
        cfg,
        manifests,
        regions,
        progress=seen.append,
        on_start=lambda region, name: started.append((region, name)),
    )

    # One task per (region, layer name); results sorted by it.
    names = [cfg.layer_name(V, "x86_64"), cfg.layer_name(V, "arm64")]
    tasks = {(r, n) for r in regions for n in names}
    assert first.complete and not first.dry_run
    assert [(r.region, r.layer_name) for r in first.results] == sorted(tasks)
    assert {r.status for r in first.results} == {"new"}
    assert {(r.region, r.layer_name) for r in seen} == set(started) == tasks
    assert all(r.permission_added for r in first.results)
    assert_published(moto, first, manifests)
    assert proxy.count("PublishLayerVersion") == len(tasks)
    assert proxy.count(region="cn-north-1") == proxy.count(region="us-gov-west-1") == 0
    layers = first.layers([m for _, m in manifests])
    assert [len(layer.regions) for layer in layers] == [len(regions)] * 2

    proxy.reset()
    again = run(cfg, manifests, regions)

    assert {r.status for r in again.results} == {"reused"}
    assert [(r.region, r.architectures[0], r.version) for r in again.results] == [
        (r.region, r.architectures[0], r.version) for r in first.results
    ]
    assert not any(r.permission_added for r in again.results)
    assert proxy.count("PublishLayerVersion") == proxy.count("AddLayerVersionPermission") == 0
    # Per region and layer: list one page, verify the marked version's sha, read the policy
    # (with a registry record for the release, the sha read is not needed).
    assert proxy.count() == 3 * len(tasks)
    assert proxy.count("ListLayerVersions") == len(tasks)


def test_arns_use_the_partition_of_the_credentials(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    moto: Callable[..., Any],
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "cn-north-1")
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    account, partition, regions = resolve_regions(Aws(), None, ())
    result = publish_layers(
        cfg, V, manifests, regions, account=account, partition=partition, sleep=no_sleep
    )
    assert partition == "aws-cn" and result.partition == "aws-cn"
    assert [r.region for r in result.results] == ["cn-north-1", "cn-northwest-1"]
    assert_published(moto, result, manifests, partition="aws-cn")


def test_dry_run_uses_read_calls_only(
    proxy: FaultProxy, moto: Callable[..., Any], make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config()
    manifests = make_layers(cfg, V)

    planned = run(cfg, manifests, TWO, dry_run=True)
    assert planned.dry_run and {r.status for r in planned.results} == {"planned-new"}
    assert all(r.version is None for r in planned.results)
    assert proxy.operations() == {"ListLayerVersions"}
    assert versions(moto, "eu-west-1", manifests[0][1].layer_name) == []

    published = run(cfg, manifests, TWO)
    proxy.reset()
    planned = run(cfg, manifests, TWO, dry_run=True)
    assert {r.status for r in planned.results} == {"planned-reuse"}
    assert [r.version for r in planned.results] == [r.version for r in published.results]
    # The plan also reads the policy: it says whether a permission needs healing.
    assert proxy.operations() == {"ListLayerVersions", "GetLayerVersion", "GetLayerVersionPolicy"}


def test_crash_between_publish_and_permission_heals(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    manifest_path, m = manifests[0]
    # What a run that died right after PublishLayerVersion leaves behind: no permission.
    moto("lambda", "eu-west-1").publish_layer_version(
        LayerName=m.layer_name,
        Content={"ZipFile": m.zip_path(manifest_path).read_bytes()},
        Description=marked_description(m.description, m.sha256, m.canonical, m.version),
        CompatibleRuntimes=list(m.compatible_runtimes),
        CompatibleArchitectures=["x86_64"],
        LicenseInfo=m.license,
    )
    result = run(cfg, manifests, TWO)
    healed = result.results[0]
    assert (healed.region, healed.status, healed.version, healed.permission_added) == (
        "eu-west-1",
        "reused",
        1,
        True,
    )
    assert result.results[1].status == "new"
    assert proxy.count("PublishLayerVersion") == 1  # only us-west-2
    assert_published(moto, result, manifests)


def test_a_changed_zip_for_a_released_version_is_refused_before_any_write(
    proxy: FaultProxy, moto: Callable[..., Any], make_config: ConfigFactory, tmp_path: Path
) -> None:
    cfg = make_config(architectures="[x86_64]")
    old = [write_layer(tmp_path / "old", cfg, V, "x86_64", b"old")]
    new = [write_layer(tmp_path / "new", cfg, V, "x86_64", b"new")]
    assert run(cfg, old, ["eu-west-1"]).results[0].version == 1
    proxy.reset()
    # AWS says 2.75.0 is the old zip (its marker), whatever the registry says: refused.
    with pytest.raises(ArtifactError, match="already exists in AWS with other content") as info:
        run(cfg, new, TWO)
    assert old[0][1].sha256 in str(info.value) and new[0][1].sha256 in str(info.value)
    assert "eu-west-1 version 1" in str(info.value)
    assert proxy.operations() == {"ListLayerVersions"}  # reads only, in both regions
    assert versions(moto, "eu-west-1", old[0][1].layer_name) == [1]


# --------------------------------------------------------------------------- faults


def test_faults_fail_only_the_down_region_and_the_rerun_completes(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    # Retries at the region level only (with an instant sleep) keep this test fast.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cfg = make_config()
    manifests = make_layers(cfg, V)
    _, _, regions = resolve_regions(Aws(), None, ())
    down = "eu-north-1"
    proxy.reset(
        Faults(
            throttle=0.06,
            server_error=0.04,
            drop=0.04,
            drop_before=0.02,
            down_regions={down},
            seed=7,
        )
    )

    result = run(cfg, manifests, regions, attempts=40)

    assert {r.region for r in result.failed} == {down}
    assert all("eu-north-1" in (r.error or "") for r in result.failed)
    for fault in ("throttle", "server_error", "drop", "drop_before"):
        assert proxy.count(fault=fault) > 0, fault
    assert_published(moto, result, manifests)  # exactly one version everywhere
    ok = {(r.region, r.layer_name): r.version for r in result.results if r.ok}

    proxy.reset(Faults())
    again = run(cfg, manifests, regions)
    assert again.complete
    assert {r.status for r in again.results if r.region == down} == {"new"}
    again_ok = {(r.region, r.layer_name): r.version for r in again.results if r.region != down}
    assert again_ok == ok
    assert proxy.count("PublishLayerVersion") == 2  # only the down region's two layers
    assert_published(moto, again, manifests)


def test_botocore_retries_absorb_throttling(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    proxy.reset(Faults(throttle=0.3, seed=3))
    result = run(cfg, manifests, ["eu-west-1", "eu-west-2", "us-east-2"], attempts=6)
    assert result.complete and proxy.count(fault="throttle") > 0
    assert_published(moto, result, manifests)


@pytest.mark.parametrize("fault", ["drop", "server_error", "drop_before"])
def test_a_lost_publish_answer_never_creates_a_second_version(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    fault: str,
) -> None:
    cfg = make_config()
    manifests = make_layers(cfg, V)
    proxy.reset(Faults(first={"PublishLayerVersion": fault}))
    result = run(cfg, manifests, TWO)
    assert result.complete and {r.status for r in result.results} == {"new"}
    assert_published(moto, result, manifests)
    # "drop" took effect server-side: the retry finds it instead of publishing again.
    assert proxy.count("PublishLayerVersion") == (4 if fault == "drop" else 8)


def test_botocore_resends_a_throttled_publish_but_never_an_ambiguous_one(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    # A 429 left nothing behind: botocore's own retry may resend it (one region attempt).
    proxy.reset(Faults(first={"PublishLayerVersion": "throttle"}))
    result = run(cfg, manifests, TWO, attempts=1)
    assert result.complete and proxy.count("PublishLayerVersion") == 4
    assert_published(moto, result, manifests)
    # A 500 may have published: botocore must not resend it (AWS_MAX_ATTEMPTS is 2 here).
    changed = [write_layer(manifests[0][0].parent / "v2", cfg, V, "x86_64", b"changed")]
    proxy.reset(Faults(first={"PublishLayerVersion": "server_error"}))
    # Another zip of the same release would be refused (a conflict): another canonical.
    result = run(replace(cfg, canonical="aws-layer:other"), changed, TWO, attempts=1)
    assert [r.status for r in result.results] == ["failed", "failed"]
    assert "ServiceException" in (result.results[0].error or "")
    assert proxy.count("PublishLayerVersion") == 2


def test_region_deadline_bounds_a_hung_region(
    proxy: FaultProxy,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V)
    proxy.reset(Faults(stall_regions={"eu-west-3"}, stall_seconds=20))
    # The fan-out's own give-up is tested with an injected clock (unit/publish/test_fanout.py);
    # here it waits and one attempt is allowed, so the one outcome is the region's socket
    # read timeout, cut to fit region_timeout, ending the call (not the proxy's drop at 20 s).
    monkeypatch.setattr("layer_builder.publish.fanout._GRACE", 60.0)
    seen: list[RegionResult] = []
    result = run(
        cfg,
        manifests,
        ["eu-west-1", "eu-west-3"],
        region_timeout=4.0,  # 2 s per read: room for the healthy region on a busy machine
        attempts=1,
        progress=seen.append,
    )
    hung = result.results[1]
    assert (hung.region, hung.status) == ("eu-west-3", "failed")
    assert re.fullmatch(
        r"ListLayerVersions in eu-west-3: ReadTimeoutError: Read timeout on endpoint URL: "
        r"\S+ \(gave up after 1 attempts\)",
        hung.error or "",
    ), hung.error
    assert result.results[0].status == "new"
    assert len(seen) == 2


# --------------------------------------------------------------------------- S3 staging


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", 64)


def test_big_zips_go_through_s3_and_the_object_is_removed(
    proxy: FaultProxy,
    moto: Callable[..., Any],
    small_limit: None,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    unique_name: str,
) -> None:
    bucket = unique_name.lower()
    cfg = make_config(publish=f's3_bucket: "{bucket}-{{{{ region }}}}"\n')
    manifests = make_layers(cfg, V)
    for region in TWO + ["eu-west-2"]:
        moto("s3", region).create_bucket(
            Bucket=f"{bucket}-{region}", CreateBucketConfiguration={"LocationConstraint": region}
        )
    result = run(cfg, manifests, TWO)
    assert result.complete
    assert_published(moto, result, manifests)
    assert proxy.count(service="s3", region="eu-west-1") >= 4  # put + delete, two layers
    for region in TWO:
        assert moto("s3", region).list_objects_v2(Bucket=f"{bucket}-{region}")["KeyCount"] == 0

    # A failed publish removes the staged object too; a missing bucket fails its region only.
    proxy.reset(Faults(first={"PublishLayerVersion": "server_error"}))
    new = [
        write_layer(Path(m.parent) / "v2", cfg, V, m_.architectures[0], b"changed")
        for m, m_ in manifests
    ]
    failed = run(cfg, new, ["eu-west-2", "eu-central-1"], attempts=1)
    assert [r.status for r in failed.results] == ["failed"] * 4
    assert any(
        "NoSuchBucket" in (r.error or "") for r in failed.results if r.region == "eu-central-1"
    )
    assert moto("s3", "eu-west-2").list_objects_v2(Bucket=f"{bucket}-eu-west-2")["KeyCount"] == 0


def test_big_zip_without_bucket_is_refused_before_publishing(
    proxy: FaultProxy,
    small_limit: None,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    cfg = make_config()
    with pytest.raises(ArgumentError, match=r"publish.s3_bucket: .* over the .* direct-upload"):
        run(cfg, make_layers(cfg, V), TWO)
    cfg = make_config(publish='s3_bucket: "one-bucket-for-all"\n')
    with pytest.raises(ArgumentError, match="same bucket for every region"):
        run(cfg, make_layers(cfg, V), TWO)
    assert proxy.calls == []


# --------------------------------------------------------------------------- permissions


def test_organization_and_account_permissions(
    proxy: FaultProxy, moto: Callable[..., Any], make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    org = make_config(
        architectures="[x86_64]",
        publish="""\
        permission:
          organization_id: o-abcdefghij12
          statement_id: org
        """,
    )
    m = make_layers(org, V)
    r = run(org, m, ["eu-west-1"]).results[0]
    (st,) = statements(moto, "eu-west-1", r.layer_name, r.version or 0)
    assert (st["Sid"], st["Principal"], st.get("OrganizationId")) == ("org", "*", "o-abcdefghij12")

    accts = make_config(
        architectures="[x86_64]",
        name="Accts" + r.layer_name,
        publish="""\
        permission:
          accounts: ["111111111111", "222222222222"]
        """,
    )
    m = make_layers(accts, V)
    r = run(accts, m, ["eu-west-1"]).results[0]
    sts = statements(moto, "eu-west-1", r.layer_name, r.version or 0)
    assert sorted(s["Sid"] for s in sts) == ["public-111111111111", "public-222222222222"]
    assert all(s["Sid"].endswith(str(s["Principal"])[-12:]) for s in sts)
    assert proxy.count("AddLayerVersionPermission") == 3


# --------------------------------------------------------------------------- bad inputs


def test_missing_zip_and_checksum_mismatch_publish_nothing(
    proxy: FaultProxy,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
) -> None:
    cfg = make_config()
    manifests = make_layers(cfg, V)
    path, m = manifests[1]
    zip_path = m.zip_path(path)
    zip_path.write_bytes(zip_path.read_bytes() + b"tampered")
    with pytest.raises(ArtifactError, match=r"sha256 is [0-9a-f]{64}, the manifest .* says") as e:
        run(cfg, manifests, TWO)
    assert e.value.exit_code == 2
    zip_path.unlink()
    with pytest.raises(ArtifactError, match="zip not found"):
        run(cfg, manifests, TWO)
    with pytest.raises(ArtifactError, match="built for version 2.75.0, not 2.76.0"):
        publish_layers(
            cfg,
            ReleaseVersion.parse("2.76.0"),
            manifests[:1],
            TWO,
            account=FAKE_ACCOUNT,
            partition="aws",
        )
    with pytest.raises(ArtifactError, match="no build manifests"):
        run(cfg, [], TWO)
    with pytest.raises(ArgumentError, match="no regions"):
        run(cfg, manifests[:1], [])
    assert proxy.calls == []


def test_missing_credentials_fail_every_region_without_raising(
    no_aws_env: None,
    make_config: ConfigFactory,
    make_layers: MakeLayers,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI calls check_credentials first (exit 2); if credentials vanish mid-run the
    # regions fail and the run is incomplete (exit 3), it does not crash.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    cfg = make_config(architectures="[x86_64]")
    result = run(cfg, make_layers(cfg, V), ["eu-west-1"])
    assert [r.status for r in result.results] == ["failed"]
    assert "no AWS credentials" in (result.results[0].error or "")


# --------------------------------------------------------------------------- retry logic, no AWS


class FakeApi:
    """A LambdaApi stand-in whose calls fail as scripted."""

    region = "eu-west-1"

    def __init__(self, failures: list[AwsCallError]) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.failures:
            raise self.failures.pop(0)

    def list_versions(self, layer_name: str, marker: str | None = None) -> tuple[list[Any], None]:
        self._call("list")
        return [], None

    def publish(self, layer_name: str, **kw: Any) -> LayerVersionRef:
        self._call("publish")
        return LayerVersionRef(1, "arn:aws:lambda:eu-west-1:1:layer:x:1")

    def add_permission(self, *a: Any) -> bool:
        self._call("permission")
        return True


def _throttle() -> AwsCallError:
    return AwsCallError(
        "ListLayerVersions",
        "eu-west-1",
        "TooManyRequestsException",
        "slow",
        retryable=True,
        ambiguous=False,
    )


def test_retry_backoff_is_full_jitter_and_injectable(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=4.0)
    rng = random.Random(1)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap and max(delays) > cap / 2

    cfg = make_config(architectures="[x86_64]")
    (plan,) = plan_layers(cfg, V, make_layers(cfg, V))
    slept: list[float] = []
    api = FakeApi([_throttle(), _throttle()])
    pub = RegionPublisher("1", "aws", retry=policy, sleep=slept.append, rng=rng)
    result = pub.publish(api, plan, deadline=Deadline(60))  # type: ignore[arg-type]
    assert result.status == "new" and len(slept) == 2
    # After publishing, one more listing: a racing run may hold a lower version.
    assert api.calls == ["list", "list", "list", "publish", "list", "permission"]

    api = FakeApi([_throttle()] * 9)
    result = pub.publish(api, plan, deadline=Deadline(60))  # type: ignore[arg-type]
    assert result.status == "failed" and "gave up after 5 attempts" in (result.error or "")

    # A clock past the deadline stops retrying at once instead of sleeping past it.
    now = [0.0]
    pub = RegionPublisher(
        "1",
        "aws",
        retry=RetryPolicy(attempts=50, base_delay=10),
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )
    result = pub.publish(
        FakeApi([_throttle()] * 60),  # type: ignore[arg-type]
        plan,
        deadline=Deadline(30, clock=lambda: now[0]),
    )
    assert result.status == "failed" and now[0] <= 30
    assert "region_timeout" in (result.error or "")


def test_translate_classifies_botocore_errors() -> None:
    from botocore.exceptions import ClientError, ConnectionClosedError, NoCredentialsError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "Op",
        )

    t = translate(client_error("TooManyRequestsException", 429), "Op", "r")
    assert isinstance(t, AwsCallError) and (t.retryable, t.ambiguous) == (True, False)
    t = translate(client_error("ServiceException", 500), "Op", "r")
    assert isinstance(t, AwsCallError) and (t.retryable, t.ambiguous) == (True, True)
    t = translate(client_error("InvalidParameterValueException", 400), "Op", "r")
    assert isinstance(t, AwsCallError) and not t.retryable
    t = translate(ConnectionClosedError(endpoint_url="http://x"), "Op", "r")
    assert isinstance(t, AwsCallError) and (t.retryable, t.ambiguous) == (True, True)
    assert isinstance(translate(NoCredentialsError(), "Op", "r"), CredentialsError)

    # botocore may resend PublishLayerVersion only when the first request cannot have landed.
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    from layer_builder.aws.clients import _no_blind_retry

    class Http:
        def __init__(self, status_code: int) -> None:
            self.status_code = status_code

    assert _no_blind_retry(caught_exception=ReadTimeoutError(endpoint_url="x")) is False
    assert _no_blind_retry(caught_exception=ConnectionClosedError(endpoint_url="x")) is False
    assert _no_blind_retry(caught_exception=EndpointConnectionError(endpoint_url="x")) is None
    assert _no_blind_retry(response=(Http(500), {})) is False
    assert _no_blind_retry(response=(Http(429), {})) is None
    assert isinstance(
        translate(client_error("InvalidClientTokenId", 403), "Op", "r"), CredentialsError
    )
