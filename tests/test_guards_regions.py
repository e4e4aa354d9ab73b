"""`--regions all` keeps regions the account has opted in to (``opted-in``), not only those
that need no opt-in. moto reports no ``opted-in`` region, so the two AWS answers that
resolve_regions reads (GetCallerIdentity, DescribeRegions) come from a small stand-in here;
a mutant that dropped opted-in regions passed the older tests."""

from __future__ import annotations

import pytest

from layer_builder.aws.clients import AwsCallError, Identity, RegionInfo
from layer_builder.errors import ArgumentError
from layer_builder.publish import parse_regions_arg, resolve_regions
from layer_builder.publish.regions import resolve_target

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
