"""`--regions all` keeps regions the account has opted in to (``opted-in``), not only those
that need no opt-in. moto reports no ``opted-in`` region, so the two AWS answers that
resolve_regions reads (GetCallerIdentity, DescribeRegions) come from a small stand-in here;
a mutant that dropped opted-in regions passed the older tests."""

from __future__ import annotations

import pytest

from layer_builder.aws.clients import Identity, RegionInfo
from layer_builder.errors import ArgumentError
from layer_builder.publish import resolve_regions

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
