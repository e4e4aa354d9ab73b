"""Error classification: what is retried, what fails a region at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3.exceptions
import pytest
from botocore.parsers import ResponseParserError

from layer_builder.aws.clients import AwsCallError, S3Api, parse_policy, translate


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
