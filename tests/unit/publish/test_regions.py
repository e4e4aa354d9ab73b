"""Credentials, partitions and region resolution against moto's server; the sandbox."""

from __future__ import annotations

import os

import boto3
import pytest

from layer_builder.aws.clients import Aws, AwsCallError, Identity, RegionInfo, RetrySettings
from layer_builder.aws.facts import partition_of_region
from layer_builder.errors import ArgumentError, CredentialsError
from layer_builder.publish import check_credentials, parse_regions_arg, resolve_regions
from layer_builder.publish.regions import resolve_target
from layer_builder.sandbox.emulator import SANDBOX_ACCOUNT, sandbox_aws
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.layers import FAKE_ACCOUNT


def _moto_regions(region: str = "us-east-1") -> dict[str, str]:
    """What moto's DescribeRegions says, read independently of the code under test."""
    ec2 = boto3.client("ec2", region_name=region)
    return {
        r["RegionName"]: r["OptInStatus"] for r in ec2.describe_regions(AllRegions=True)["Regions"]
    }


def test_all_is_the_enabled_regions_of_the_credentials_partition(aws_env: str) -> None:
    account, partition, regions = resolve_regions(Aws(), None, ())
    assert (account, partition) == (FAKE_ACCOUNT, "aws")
    listed = _moto_regions()
    # moto lists other partitions' regions and opt-in regions too: both must be left out.
    assert any(r.startswith(("cn-", "us-gov-")) for r in listed)
    assert any(s == "not-opted-in" for s in listed.values())
    expected = sorted(
        r
        for r, s in listed.items()
        if partition_of_region(r) == "aws" and s in ("opt-in-not-required", "opted-in")
    )
    assert regions == expected
    assert len(regions) >= 15
    assert not any(r.startswith(("cn-", "us-gov-")) for r in regions)


def test_all_accepts_the_word_all_and_applies_exclusions(aws_env: str) -> None:
    _, _, every = resolve_regions(Aws(), ("all",), ())
    # An exclusion for another partition is not an error: configs are shared.
    _, _, regions = resolve_regions(Aws(), None, ("eu-west-1", "us-west-2", "cn-north-1"))
    assert regions == [r for r in every if r not in ("eu-west-1", "us-west-2")]


def test_partition_comes_from_the_caller_arn(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto's STS answers in the partition of the region it is asked in.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "cn-north-1")
    account, partition, regions = resolve_regions(Aws(), None, ())
    assert partition == "aws-cn"
    assert regions == ["cn-north-1", "cn-northwest-1"]
    with pytest.raises(ArgumentError, match="us-east-1 belongs to partition aws;"):
        resolve_regions(Aws(), ("us-east-1",), ())


def test_explicit_regions_are_checked_sorted_and_deduplicated(aws_env: str) -> None:
    _, _, regions = resolve_regions(Aws(), ("us-west-2", "eu-west-1", "us-west-2"), ("us-west-2",))
    assert regions == ["eu-west-1", "us-west-2"]  # an explicit name wins over exclude_regions


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("eu-west-9", r"--regions: unknown region 'eu-west-9'; did you mean 'eu-west-\d'\?"),
        ("us-east1", r"unknown region 'us-east1'; did you mean 'us-east-1'\?"),
        ("ap-east-1", r"--regions: ap-east-1 is not enabled for account 123456789012"),
        ("cn-north-1", r"cn-north-1 belongs to partition aws-cn; these credentials are for aws"),
        ("us-gov-west-1", r"us-gov-west-1 belongs to partition aws-us-gov"),
    ],
)
def test_bad_region_names_are_argument_errors(aws_env: str, name: str, message: str) -> None:
    assert _moto_regions().get("ap-east-1") == "not-opted-in"
    with pytest.raises(ArgumentError, match=message) as exc:
        resolve_regions(Aws(), ("us-east-1", name), ())
    assert exc.value.exit_code == 2


def test_misspelt_exclusion_is_an_error(aws_env: str) -> None:
    with pytest.raises(
        ArgumentError,
        match=r"exclude_regions: unknown region 'eu-wset-1'; "
        r"did you mean 'eu-west-1'\?",
    ):
        resolve_regions(Aws(), None, ("eu-wset-1",))


def test_without_describe_regions_permission_only_explicit_regions_work(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultProxy(aws_env, Faults(first={"DescribeRegions": "deny"}, services={"ec2"})) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        with pytest.raises(ArgumentError, match=r"may not list regions \(UnauthorizedOperation"):
            resolve_regions(Aws(), None, ())
        p.reset()
        _, _, regions = resolve_regions(Aws(), ("us-west-2", "eu-west-1"), ())
        assert regions == ["eu-west-1", "us-west-2"]
        p.reset()
        with pytest.raises(ArgumentError, match="cn-north-1 belongs to partition aws-cn"):
            resolve_regions(Aws(), ("cn-north-1",), ())


def test_no_credentials_is_a_credentials_error(
    no_aws_env: None, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(CredentialsError, match="no AWS credentials found") as exc:
        check_credentials()
    assert exc.value.exit_code == 2
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        resolve_regions(None, None, ())


def test_unknown_profile_is_a_credentials_error(
    no_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    with pytest.raises(CredentialsError, match="does-not-exist"):
        check_credentials()


def test_check_credentials_returns_account_and_partition(aws_env: str) -> None:
    assert check_credentials() == (FAKE_ACCOUNT, "aws")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", None),
        ("us-east-1", ("us-east-1",)),
        (" eu-west-1, us-east-1 ,", ("eu-west-1", "us-east-1")),
    ],
)
def test_parse_regions_arg(text: str, expected: tuple[str, ...] | None) -> None:
    assert parse_regions_arg(text) == expected


@pytest.mark.parametrize("text", ["", " , ", "all,us-east-1"])
def test_parse_regions_arg_rejects(text: str) -> None:
    with pytest.raises(ArgumentError, match="--regions"):
        parse_regions_arg(text)


def test_retry_settings_follow_the_standard_variables() -> None:
    assert RetrySettings.from_env({}) == RetrySettings("standard", 3)
    assert RetrySettings.from_env(
        {"AWS_RETRY_MODE": "adaptive", "AWS_MAX_ATTEMPTS": "7"}
    ) == RetrySettings("adaptive", 7)
    with pytest.raises(ArgumentError, match="AWS_RETRY_MODE='fast'"):
        RetrySettings.from_env({"AWS_RETRY_MODE": "fast"})
    with pytest.raises(ArgumentError, match="AWS_MAX_ATTEMPTS='0'"):
        RetrySettings.from_env({"AWS_MAX_ATTEMPTS": "0"})


def test_clients_are_reused_per_region_and_configured(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    aws = Aws()
    a, b = aws.client("lambda", "eu-west-1"), aws.client("lambda", "eu-west-1")
    assert a is b
    assert aws.client("lambda", "eu-west-2") is not a
    assert a.meta.region_name == "eu-west-1"
    assert a.meta.config.retries["mode"] == "adaptive"
    assert a.meta.config.read_timeout == aws.timeouts.read
    assert a.meta.config.retries["total_max_attempts"] == 2  # AWS_MAX_ATTEMPTS from aws_env


def test_sandbox_sets_fake_aws_for_the_block_only(
    no_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someones-real-profile")
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", "https://lambda.example.invalid")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
    before = dict(os.environ)
    with sandbox_aws() as info:
        assert info.endpoint.startswith("http://127.0.0.1:")
        assert os.environ["AWS_ENDPOINT_URL"] == info.endpoint
        assert "AWS_PROFILE" not in os.environ
        assert "AWS_ENDPOINT_URL_LAMBDA" not in os.environ
        assert os.environ["AWS_ACCESS_KEY_ID"] != "AKIAREALLOOKINGKEY00"
        account, partition, regions = resolve_regions(None, None, ())
        assert (account, partition) == (SANDBOX_ACCOUNT, "aws") == (info.account, info.partition)
        assert "us-east-1" in regions
    assert dict(os.environ) == before


# ------------------------------------------------------------------------------------------------
# `--regions all` keeps regions the account has opted in to (``opted-in``), not only those
# that need no opt-in. moto reports no ``opted-in`` region, so the two AWS answers that
# resolve_regions reads (GetCallerIdentity, DescribeRegions) come from a small stand-in here.


ACCOUNT = "123456789012"


class DescribedAws:
    """What resolve_regions asks of Aws: the caller's identity and the region list."""

    def __init__(self, regions: dict[str, str]) -> None:
        self.regions = regions
        self.partitions: list[str] = []

    def identity(self) -> Identity:
        return Identity(ACCOUNT, "aws", f"arn:aws:iam::{ACCOUNT}:user/release")

    def describe_regions(self, partition: str) -> list[RegionInfo]:
        self.partitions.append(partition)
        return [RegionInfo(name, status) for name, status in self.regions.items()]


REGIONS = {
    "us-east-1": "opt-in-not-required",
    "ap-east-1": "opted-in",
    "me-south-1": "not-opted-in",
    "af-south-1": "opted-in",
    "cn-north-1": "opt-in-not-required",  # another partition
}


def test_all_keeps_opted_in_regions() -> None:
    aws = DescribedAws(REGIONS)
    account, partition, regions = resolve_regions(aws, None)  # type: ignore[arg-type]
    assert (account, partition) == (ACCOUNT, "aws")
    assert regions == ["af-south-1", "ap-east-1", "us-east-1"]
    assert aws.partitions == ["aws"]


def test_an_opted_in_region_can_be_named_and_a_not_opted_in_one_cannot() -> None:
    aws = DescribedAws(REGIONS)
    assert resolve_regions(aws, ["ap-east-1"])[2] == ["ap-east-1"]  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentError,
        match=r"^--regions: me-south-1 is not enabled for account 123456789012 \(not-opted-in\)",
    ):
        resolve_regions(aws, ["me-south-1"])  # type: ignore[arg-type]


def test_region_info_enabled() -> None:
    assert RegionInfo("ap-east-1", "opted-in").enabled is True
    assert RegionInfo("us-east-1", "opt-in-not-required").enabled is True
    assert RegionInfo("me-south-1", "not-opted-in").enabled is False


class DeniedAws(DescribedAws):
    """Credentials that may not call ec2:DescribeRegions (or fail it otherwise)."""

    def __init__(self, code: str = "UnauthorizedOperation") -> None:
        super().__init__({})
        self.code = code

    def describe_regions(self, partition: str) -> list[RegionInfo]:
        raise AwsCallError(
            "DescribeRegions", "us-east-1", self.code, "no", retryable=False, ambiguous=False
        )


def refusal(aws: object, requested: list[str] | None, exclude: tuple[str, ...] = ()) -> str:
    with pytest.raises(ArgumentError, match=".") as exc:
        resolve_regions(aws, requested, exclude)  # type: ignore[arg-type]
    return str(exc.value)


def test_region_refusals_word_for_word() -> None:
    aws = DescribedAws(REGIONS)
    assert refusal(aws, None, ("us-east-1", "ap-east-1", "af-south-1")) == (
        "every enabled region is excluded: nothing to publish to"
    )
    assert refusal(aws, []) == "--regions: no regions given"
    assert refusal(aws, ["zz-top-9"]) == "--regions: unknown region 'zz-top-9'"
    assert refusal(aws, ["us-east-2"]) == (
        "--regions: unknown region 'us-east-2'; did you mean 'us-east-1'?"
    )
    assert refusal(aws, ["me-south-1"]) == (
        "--regions: me-south-1 is not enabled for account 123456789012 (not-opted-in); "
        "enable it in the AWS console or leave it out"
    )
    assert refusal(DescribedAws({"me-south-1": "not-opted-in"}), None) == (
        "no enabled regions found for account 123456789012 in partition aws"
    )


def test_without_describe_regions_names_are_checked_for_form_only() -> None:
    denied = DeniedAws()
    assert refusal(denied, None) == (
        "regions 'all': these credentials may not list regions (UnauthorizedOperation on "
        "ec2:DescribeRegions); allow that action or name the regions explicitly"
    )
    assert resolve_regions(denied, ["us-west-2", "eu-west-1", "us-west-2"])[2] == [  # type: ignore[arg-type]
        "eu-west-1",
        "us-west-2",
    ]
    assert refusal(denied, ["Europe"]) == "--regions: 'Europe' is not a region name"
    with pytest.raises(AwsCallError, match="Throttling"):
        resolve_regions(DeniedAws("Throttling"), ["us-west-2"])  # type: ignore[arg-type]


def test_resolve_target_passes_everything_through() -> None:
    aws = DescribedAws(REGIONS)
    assert resolve_target(["ap-east-1"], (), aws) == (  # type: ignore[arg-type]
        ACCOUNT,
        "aws",
        ["ap-east-1"],
    )
    assert resolve_target(None, ("us-east-1",), aws)[2] == ["af-south-1", "ap-east-1"]  # type: ignore[arg-type]


def test_regions_argument_refusals_word_for_word() -> None:
    for text, message in (
        (" , ", "--regions: give 'all' or a comma-separated list of regions"),
        ("all,us-east-1", "--regions: 'all' cannot be combined with region names"),
    ):
        with pytest.raises(ArgumentError, match="^--regions: ") as exc:
            parse_regions_arg(text)
        assert str(exc.value) == message
