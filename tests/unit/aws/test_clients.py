"""Where the partition-wide questions go and how their answers are read: the home region
(the configured one, unless it belongs to another partition), STS GetCallerIdentity's
account and partition, DescribeRegions' opt-in statuses. A stand-in boto3 session answers,
so each check is exact and fast."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import boto3.exceptions
import botocore.exceptions as bce
import pytest
from botocore.parsers import ResponseParserError

from layer_builder.aws.clients import (
    Aws,
    AwsCallError,
    Identity,
    RegionInfo,
    RetrySettings,
    S3Api,
    Timeouts,
    parse_policy,
    translate,
)
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


# ------------------------------------------------------------------------------------------------
# Error classification: what is retried, what fails a region at once.


def test_an_answer_in_the_wrong_protocol_is_transient_and_ambiguous() -> None:
    err = translate(ResponseParserError("Unable to parse response (syntax error)"), "Op", "r")
    assert isinstance(err, AwsCallError)
    assert (err.code, err.retryable, err.ambiguous) == ("ResponseParserError", True, True)


class _FailingUpload:
    def __init__(self, code: str) -> None:
        self.code = code
        self.calls = 0

    def upload_file(self, *args: Any) -> None:
        self.calls += 1
        raise boto3.exceptions.S3UploadFailedError(
            f"Failed to upload z to b/k: An error occurred ({self.code}) when calling the "
            "PutObject operation: no"
        )


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("AccessDenied", False), ("NoSuchBucket", False), ("SlowDown", True), ("InternalError", True)],
)
def test_s3_upload_errors_retry_only_transient_trouble(
    tmp_path: Path, code: str, retryable: bool
) -> None:
    client = _FailingUpload(code)
    with pytest.raises(AwsCallError, match=code) as info:
        S3Api("eu-west-1", client).upload("b", "k", tmp_path / "z")
    assert info.value.retryable is retryable


def test_policies_in_both_spellings_parse_to_the_same_statements() -> None:
    aws_style = (
        '{"Statement": [{"Sid": "public", "Principal": "*", "Action": "lambda:GetLayerVersion",'
        ' "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}},'
        ' {"Sid": "public-210987654321", "Principal": {"AWS": "arn:aws:iam::210987654321:root"},'
        ' "Action": "lambda:GetLayerVersion"}]}'
    )
    moto_style = (
        '{"Statement": [{"Sid": "public", "Principal": "*", "Action": "lambda:GetLayerVersion",'
        ' "OrganizationId": "o-abcdefghij"}, {"Sid": "public-210987654321",'
        ' "Principal": "210987654321", "Action": "lambda:GetLayerVersion"}]}'
    )
    assert parse_policy(aws_style) == parse_policy(moto_style)
    assert [s.grants() for s in parse_policy(aws_style)] == [
        ("*", "o-abcdefghij", "lambda:GetLayerVersion"),
        ("210987654321", None, "lambda:GetLayerVersion"),
    ]
    assert parse_policy("not json") == []


# ------------------------------------------------------------------------------------------------
# The client factory under a fan-out: one session and one parsed model for every region,
# one client per region however many threads ask for it at once, proxies still honoured.


REGIONS = [
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1",
    "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
    "ap-southeast-2", "af-south-1", "me-south-1",
]  # fmt: skip
TIMEOUTS = Timeouts(connect=5.0, read=5.0)


@pytest.fixture
def no_proxy_env(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")


def _count_file_loads(aws: Aws) -> list[str]:
    """Every model file the session's loader reads and parses from now on."""
    loader = aws.session._session.get_component("data_loader")
    read: list[str] = []
    real = loader.file_loader.load_file

    def load_file(path: str) -> Any:
        read.append(path)
        return real(path)

    loader.file_loader.load_file = load_file
    return read


def test_twenty_regions_parse_the_lambda_model_once(no_proxy_env: None) -> None:
    aws = Aws()
    read = _count_file_loads(aws)
    clients = [aws.lambda_api(region, TIMEOUTS)._client for region in REGIONS]
    assert len({id(c) for c in clients}) == len(REGIONS)
    assert [c.meta.region_name for c in clients] == REGIONS
    # Each model file (and each place it may be looked for) is read once for all regions.
    lambda_files = [p for p in read if "/lambda/" in p]
    assert len(lambda_files) == len(set(lambda_files)), lambda_files
    assert any(p.endswith("/lambda/2015-03-31/service-2") for p in lambda_files)
    assert any(p.endswith("/lambda/2015-03-31/endpoint-rule-set-1") for p in lambda_files)
    # Every client got the same settings from the one shared Config.
    assert {(c.meta.config.read_timeout, c.meta.config.connect_timeout) for c in clients} == {
        (5.0, 5.0)
    }


def test_threads_asking_at_once_get_one_client_per_region(no_proxy_env: None) -> None:
    aws = Aws()
    created: list[str] = []
    aws.session.events.register(
        "creating-client-class.lambda", lambda **kwargs: created.append("lambda")
    )
    start = threading.Barrier(len(REGIONS) * 2)
    seen: dict[tuple[str, int], Any] = {}

    def ask(region: str, n: int) -> None:
        api = aws.lambda_api(region, TIMEOUTS)
        start.wait()
        seen[(region, n)] = api._client
        assert api._client is seen[(region, n)]  # kept by the api object after first use

    threads = [threading.Thread(target=ask, args=(region, n)) for region in REGIONS for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == len(REGIONS) * 2
    for region in REGIONS:
        assert (
            seen[(region, 0)]
            is seen[(region, 1)]
            is aws.client("lambda", region, timeouts=TIMEOUTS)
        )
    assert len(created) == len(REGIONS)


def _proxy_for(client: Any, url: str) -> str | None:
    return client._endpoint.http_session._proxy_config.proxy_url_for(url)  # type: ignore[no-any-return]


def test_proxy_variables_are_still_honoured(
    no_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "https://lambda.eu-west-1.amazonaws.com/"
    plain = Aws().client("lambda", "eu-west-1")
    assert _proxy_for(plain, url) is None

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    proxied = Aws().client("lambda", "eu-west-1")
    assert _proxy_for(proxied, url) == "http://proxy.invalid:3128"

    monkeypatch.setenv("NO_PROXY", "amazonaws.com")
    bypassed = Aws().client("lambda", "eu-west-1")
    assert _proxy_for(bypassed, url) is None
