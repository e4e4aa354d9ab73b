"""`layer-builder function`'s Lambda calls go through aws/clients.py: whatever botocore raises
reaches the caller as the package's own errors (AwsCallError, CredentialsError, FunctionError),
never as a botocore exception."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

from layer_builder.aws.clients import AwsCallError
from layer_builder.consumer.function import FunctionInstrumenter
from layer_builder.errors import CredentialsError, FunctionError
from layer_builder.registry.release import LayerRelease, ReleaseLayer

REGION = "eu-west-1"
ACCOUNT = "123456789012"
DSN = "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/4242"


def _client_error(code: str, operation: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "said\n  AWS"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


class _Lambda:
    """A function whose read or update raises ``error`` (boto3's client method names)."""

    def __init__(self, *, on_read: Exception | None = None, on_update: Exception | None = None):
        self.on_read, self.on_update = on_read, on_update

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        if self.on_read is not None:
            raise self.on_read
        return {
            "FunctionName": "fn",
            "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
            "Runtime": "python3.12",
            "Handler": "app.handler",
            "Architectures": ["x86_64"],
        }

    def update_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        assert self.on_update is not None, "the test scripts a failing update"
        raise self.on_update


class _Registry:
    def latest(self, canonical: str) -> LayerRelease:
        layer = ReleaseLayer("SentryPythonServerlessSDK", ("x86_64",), {REGION: "7"})
        return LayerRelease(canonical, "2.0.0", ACCOUNT, ("python3.12",), (layer,), "fake")


def _tool(fake: _Lambda) -> FunctionInstrumenter:
    return FunctionInstrumenter(
        _Registry(), lambda_client=lambda region: fake, default_region=REGION, sleep=lambda s: None
    )


def test_a_throttled_update_is_an_aws_call_error_that_may_be_retried() -> None:
    fake = _Lambda(on_update=_client_error("TooManyRequestsException", "Update", 429))
    with pytest.raises(AwsCallError) as caught:
        _tool(fake).enable("fn", dsn=DSN)
    assert caught.value.operation == "UpdateFunctionConfiguration"
    assert caught.value.code == "TooManyRequestsException"
    assert caught.value.retryable and caught.value.region == REGION


@pytest.mark.parametrize(
    ("error", "code", "ambiguous"),
    [
        (ResponseParserError("<html>rate limited</html>"), "ResponseParserError", True),
        (EndpointConnectionError(endpoint_url="https://x"), "EndpointConnectionError", False),
    ],
)
def test_a_read_that_gets_no_answer_is_an_aws_call_error(
    error: Exception, code: str, ambiguous: bool
) -> None:
    with pytest.raises(AwsCallError) as caught:
        _tool(_Lambda(on_read=error)).status("fn")
    assert (caught.value.operation, caught.value.code) == ("GetFunctionConfiguration", code)
    assert caught.value.ambiguous is ambiguous


def test_rejected_credentials_are_a_credentials_error() -> None:
    fake = _Lambda(on_read=_client_error("ExpiredTokenException", "Get", 403))
    with pytest.raises(CredentialsError, match="ExpiredTokenException"):
        _tool(fake).status("fn")


def test_a_refusal_names_the_operation_and_aws_message_on_one_line() -> None:
    fake = _Lambda(on_update=_client_error("KMSAccessDeniedException", "Update"))
    with pytest.raises(FunctionError) as caught:
        _tool(fake).enable("fn", dsn=DSN)
    assert str(caught.value) == (
        "function fn: UpdateFunctionConfiguration refused: KMSAccessDeniedException: said AWS"
    )
