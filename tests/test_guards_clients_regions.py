"""Where the partition-wide questions go and how their answers are read: the home region
(the configured one, unless it belongs to another partition), STS GetCallerIdentity's
account and partition, DescribeRegions' opt-in statuses. A stand-in boto3 session answers,
so each check is exact and fast (mutants of these passed the older, moto-backed tests; see
docs/mutation-testing.md)."""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bce
import pytest

from layer_builder.aws.clients import Aws, AwsCallError, Identity, RegionInfo, RetrySettings
from layer_builder.errors import CredentialsError

ARN = "arn:aws-cn:iam::210987654321:user/release"


class FakeClient:
    def __init__(self, service: str, region: str, answers: dict[str, Any]) -> None:
        self.service, self.region, self.answers = service, region, answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, operation: str, **kwargs: Any) -> Any:
        self.calls.append((operation, kwargs))
        answer = self.answers[operation]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_caller_identity(self, **kwargs: Any) -> Any:
        return self._answer("GetCallerIdentity", **kwargs)

    def describe_regions(self, **kwargs: Any) -> Any:
        return self._answer("DescribeRegions", **kwargs)


class FakeSession:
    """What Aws asks of a boto3 session: its configured region and its clients."""

    def __init__(self, region_name: str | None, **answers: Any) -> None:
        self.region_name = region_name
        self.answers = answers
        self.clients: list[FakeClient] = []

    def client(self, service: str, region_name: str, config: Any) -> FakeClient:
        client = FakeClient(service, region_name, self.answers)
        self.clients.append(client)
        return client


def _aws(region: str | None, **answers: Any) -> tuple[Aws, FakeSession]:
    session = FakeSession(region, **answers)
    aws = Aws(session=session, retries=RetrySettings())  # type: ignore[arg-type]
    aws.sleep = lambda _: None
    return aws, session


@pytest.mark.parametrize(
    ("configured", "partition", "home"),
    [
        ("eu-west-1", None, "eu-west-1"),  # whatever partition it is in
        ("eu-west-1", "aws", "eu-west-1"),
        ("cn-northwest-1", "aws-cn", "cn-northwest-1"),
        ("eu-west-1", "aws-cn", "cn-north-1"),  # configured, but for another partition
        ("eu-west-1", "aws-us-gov", "us-gov-west-1"),
        (None, None, "us-east-1"),
        ("", None, "us-east-1"),
        (None, "aws-cn", "cn-north-1"),
        (None, "aws-iso-b", "us-east-1"),  # a partition without a known home
    ],
)
def test_home_region(configured: str | None, partition: str | None, home: str) -> None:
    aws, _ = _aws(configured)
    assert aws.home_region(partition) == home


def test_home_region_without_a_partition_is_the_configured_one() -> None:
    aws, _ = _aws("cn-north-1")
    assert aws.home_region() == "cn-north-1"


def test_identity_reads_account_and_partition_from_the_caller_arn() -> None:
    answer = {"Account": "210987654321", "Arn": ARN, "UserId": "AIDA"}
    aws, session = _aws("cn-northwest-1", GetCallerIdentity=answer)
    identity = aws.identity()
    (sts,) = session.clients
    assert (identity, sts.service, sts.region, sts.calls) == (
        Identity(account="210987654321", partition="aws-cn", arn=ARN),
        "sts",
        "cn-northwest-1",
        [("GetCallerIdentity", {})],
    )


def test_identity_refused_is_a_credentials_error_naming_the_answer() -> None:
    denied = bce.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not allowed"},
         "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetCallerIdentity",
    )  # fmt: skip
    aws, _ = _aws(None, GetCallerIdentity=denied)
    with pytest.raises(
        CredentialsError,
        match=r"^cannot verify AWS credentials: GetCallerIdentity in us-east-1: AccessDenied: "
        r"not allowed$",
    ):
        aws.identity()


def test_describe_regions_asks_for_all_regions_in_the_partitions_home() -> None:
    answer = {
        "Regions": [
            {"RegionName": "cn-north-1", "OptInStatus": "opt-in-not-required"},
            {"RegionName": "cn-northwest-1", "OptInStatus": "opted-in"},
            {"RegionName": "cn-south-9"},  # no status reported: needs no opt-in
            {"RegionName": "cn-east-9", "OptInStatus": "not-opted-in"},
        ]
    }
    aws, session = _aws("eu-west-1", DescribeRegions=answer)
    regions = aws.describe_regions("aws-cn")
    (ec2,) = session.clients
    assert (regions, ec2.service, ec2.region, ec2.calls) == (
        [
            RegionInfo("cn-north-1", "opt-in-not-required"),
            RegionInfo("cn-northwest-1", "opted-in"),
            RegionInfo("cn-south-9", "opt-in-not-required"),
            RegionInfo("cn-east-9", "not-opted-in"),
        ],
        "ec2",
        "cn-north-1",
        [("DescribeRegions", {"AllRegions": True})],
    )


def test_describe_regions_without_a_region_list_is_empty() -> None:
    aws, _ = _aws(None, DescribeRegions={})
    assert aws.describe_regions("aws") == []


@pytest.mark.parametrize(
    ("status", "enabled"),
    [("opt-in-not-required", True), ("opted-in", True), ("not-opted-in", False), ("", False)],
)
def test_region_info_enabled_by_status(status: str, enabled: bool) -> None:
    assert RegionInfo("ap-east-1", status).enabled is enabled


def test_a_failed_describe_regions_names_the_call_and_the_region_asked() -> None:
    refused = bce.ClientError(
        {"Error": {"Code": "InvalidParameterValue", "Message": "bad filter"},
         "ResponseMetadata": {"HTTPStatusCode": 400}},
        "DescribeRegions",
    )  # fmt: skip
    aws, _ = _aws("eu-west-1", DescribeRegions=refused)
    with pytest.raises(
        AwsCallError,
        match=r"^DescribeRegions in us-gov-west-1: InvalidParameterValue: bad filter$",
    ):
        aws.describe_regions("aws-us-gov")
