"""The one module that talks to boto3.

Everything AWS goes through :class:`Aws`: a boto3 session, one botocore ``Config``
(retry mode and attempts from ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS``, connect and read
timeouts, connection pool size) and one reused client per (service, region, settings).
Clients are thread-safe once created, but creating them is not, so creation takes a lock.

botocore exceptions never leave this module: :func:`translate` turns them into
:class:`~layer_builder.errors.CredentialsError` (exit 2) or :class:`AwsCallError`, which says
whether trying again may help (``retryable``) and whether the failed request may still
have taken effect on the server (``ambiguous``), which is what keeps retries of
``PublishLayerVersion`` from creating a second layer version.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
import boto3.exceptions
import botocore.exceptions as bce
from botocore.config import Config
from botocore.parsers import ResponseParserError

from layer_builder import __version__
from layer_builder.aws.facts import partition_of_region
from layer_builder.aws.policy import GET_LAYER_VERSION, Statement, parse_policy

__all__ = ["GET_LAYER_VERSION", "Statement", "parse_policy"]  # re-exported for callers
from layer_builder.errors import ArgumentError, CredentialsError, LayerBuilderError

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_POOL_CONNECTIONS = 16
DEFAULT_RETRY_MODE = "standard"
DEFAULT_MAX_ATTEMPTS = 3  # botocore's own default for "standard"
RETRY_MODES = ("standard", "adaptive", "legacy")

#: Where to ask partition-wide questions (STS, DescribeRegions) when no region is configured.
PARTITION_HOME_REGION: dict[str, str] = {
    "aws": "us-east-1",
    "aws-cn": "cn-north-1",
    "aws-us-gov": "us-gov-west-1",
}
ENABLED_OPT_IN = ("opt-in-not-required", "opted-in")

# Error codes that mean "these credentials are not usable", whatever the service.
# fmt: off
_CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
    "ExpiredTokenException", "SignatureDoesNotMatch", "InvalidSignatureException",
    "AuthFailure", "InvalidAccessKeyId", "MissingAuthenticationToken",
})
_THROTTLE_CODES = frozenset({
    "TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
    "SlowDown", "RequestThrottled", "RequestThrottledException",
    "ProvisionedThroughputExceededException",
})
_TRANSIENT_CODES = frozenset({
    "ServiceException", "ServiceUnavailable", "InternalError", "InternalFailure",
    "RequestTimeout", "RequestTimeoutException",
})
# fmt: on
#: Attempts (and the first backoff, in seconds) for the checks before publishing.
CHECK_ATTEMPTS = 4
CHECK_BACKOFF = 0.5
_CODE_IN_MESSAGE_RE = re.compile(r"An error occurred \(([A-Za-z0-9.]+)\)")


class AwsCallError(LayerBuilderError):
    """One AWS call failed (after botocore's own retries).

    ``retryable``: trying again later may succeed (throttling, 5xx, dropped connection).
    ``ambiguous``: the server may have acted on the request even though we saw no answer
    (a dropped connection, a timeout, a 5xx), so a retry must re-check state first.
    """

    def __init__(
        self,
        operation: str,
        region: str,
        code: str,
        message: str,
        *,
        retryable: bool,
        ambiguous: bool,
    ) -> None:
        self.operation = operation
        self.region = region
        self.code = code
        #: AWS's own message, as it came.
        self.detail = message
        self.retryable = retryable
        self.ambiguous = ambiguous
        super().__init__(f"{operation} in {region}: {code}: {message}")


def translate(exc: Exception, operation: str, region: str) -> LayerBuilderError:
    """Turn a botocore exception into CredentialsError or AwsCallError."""
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return CredentialsError(
            "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run `aws configure` (to try it without an AWS account: "
            "`layer-builder release CONFIG --version V --sandbox`)"
        )
    if isinstance(exc, (bce.ProfileNotFound, bce.TokenRetrievalError, bce.SSOError)):
        return CredentialsError(f"AWS credentials unusable: {exc}")
    if isinstance(exc, bce.NoRegionError):
        return CredentialsError("no AWS region configured: set AWS_REGION or AWS_DEFAULT_REGION")
    if isinstance(exc, ResponseParserError):
        # An answer that is not the service's protocol: a proxy's HTML rate-limit page, or a
        # JSON body where the service speaks XML. Transient like a 5xx, and just as unclear
        # about whether the request took effect.
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return AwsCallError(
            operation,
            region,
            "ResponseParserError",
            f"unparseable answer (not the service's protocol): {first}",
            retryable=True,
            ambiguous=True,
        )
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = str(err.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _CREDENTIAL_CODES:
            return CredentialsError(f"AWS rejected the credentials ({code}): {message}")
        throttled = code in _THROTTLE_CODES or status == 429
        server = status >= 500 or code in _TRANSIENT_CODES
        return AwsCallError(
            operation,
            region,
            code,
            message,
            retryable=throttled or server,
            ambiguous=server and not throttled,
        )
    if isinstance(exc, (bce.ConnectTimeoutError, bce.EndpointConnectionError)):
        # The request never reached the server.
        return AwsCallError(
            operation, region, type(exc).__name__, str(exc), retryable=True, ambiguous=False
        )
    if isinstance(exc, (bce.HTTPClientError, bce.ConnectionError, bce.ReadTimeoutError)):
        return AwsCallError(
            operation, region, type(exc).__name__, str(exc), retryable=True, ambiguous=True
        )
    if isinstance(exc, bce.BotoCoreError):
        return AwsCallError(
            operation, region, type(exc).__name__, str(exc), retryable=False, ambiguous=False
        )
    raise TypeError(f"not a botocore exception: {exc!r}")


#: Variables that name an endpoint botocore connects to (``AWS_ENDPOINT_URL_<SERVICE>`` too).
ENDPOINT_VAR = "AWS_ENDPOINT_URL"


def check_endpoint_env(environ: Mapping[str, str] | None = None) -> None:
    """Every ``AWS_ENDPOINT_URL*`` variable is an http(s) URL with a host, checked before any
    call: botocore says ``ValueError: Invalid endpoint`` only when the first client is made."""
    environ = os.environ if environ is None else environ
    for name in sorted(environ):
        if not (name == ENDPOINT_VAR or name.startswith(ENDPOINT_VAR + "_")):
            continue
        value = environ[name]
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 -- raises for a port out of range
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            shown = re.sub(r"//[^/@]*@", "//", value.split("?", 1)[0])[:80]
            raise ArgumentError(
                f"{name}={shown!r}: not an http(s) endpoint URL (e.g. http://localhost:4566)"
            )


@contextmanager
def _translated(operation: str, region: str) -> Iterator[None]:
    try:
        yield
    except (bce.BotoCoreError, bce.ClientError, ResponseParserError) as exc:
        raise translate(exc, operation, region) from exc


def retryable_code(code: str) -> bool:
    """Whether an error code (e.g. found in a wrapped message) is worth trying again."""
    return code in _THROTTLE_CODES or code in _TRANSIENT_CODES or code == "ResponseParserError"


@dataclass(frozen=True)
class Timeouts:
    """Per-attempt socket timeouts, in seconds."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT


@dataclass(frozen=True)
class RetrySettings:
    """botocore's retry mode and total attempts per call."""

    mode: str = DEFAULT_RETRY_MODE
    total_max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrySettings:
        """Honour AWS_RETRY_MODE / AWS_MAX_ATTEMPTS (an explicit Config would hide them)."""
        env = os.environ if env is None else env
        mode = env.get("AWS_RETRY_MODE") or DEFAULT_RETRY_MODE
        if mode not in RETRY_MODES:
            raise ArgumentError(
                f"AWS_RETRY_MODE={mode!r}: expected one of {', '.join(RETRY_MODES)}"
            )
        raw = env.get("AWS_MAX_ATTEMPTS") or str(DEFAULT_MAX_ATTEMPTS)
        try:
            attempts = int(raw)
        except ValueError:
            attempts = 0
        if attempts < 1:
            raise ArgumentError(f"AWS_MAX_ATTEMPTS={raw!r}: expected a whole number of at least 1")
        return cls(mode, attempts)


@dataclass(frozen=True)
class Identity:
    """Who the credentials belong to (STS GetCallerIdentity)."""

    account: str
    partition: str
    arn: str


@dataclass(frozen=True)
class RegionInfo:
    """One DescribeRegions entry."""

    name: str
    opt_in_status: str

    @property
    def enabled(self) -> bool:
        return self.opt_in_status in ENABLED_OPT_IN


@dataclass(frozen=True)
class LayerVersionRef:
    """A layer version as Lambda names it."""

    version: int
    arn: str
    description: str = ""  # as ListLayerVersions reports it (carries our release marker)
    # CompatibleRuntimes / CompatibleArchitectures / LicenseInfo as listed; None: not known.
    runtimes: tuple[str, ...] | None = None
    architectures: tuple[str, ...] | None = None
    license_info: str | None = None

    def metadata(self) -> tuple[frozenset[str], frozenset[str], str] | None:
        """(runtimes, architectures, license) compared as sets; None when not listed."""
        if self.runtimes is None or self.architectures is None:
            return None
        return frozenset(self.runtimes), frozenset(self.architectures), self.license_info or ""


class Aws:
    """A boto3 session plus a cache of configured clients (one per service, region, settings)."""

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        profile: str | None = None,
        timeouts: Timeouts | None = None,
        retries: RetrySettings | None = None,
        max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS,
    ) -> None:
        check_endpoint_env()
        if session is None:
            try:
                session = boto3.Session(profile_name=profile)
            except bce.ProfileNotFound as exc:
                raise CredentialsError(f"AWS profile not found: {exc}") from None
        self.session = session
        self.timeouts = timeouts or Timeouts()
        self.retries = retries or RetrySettings.from_env()
        self.max_pool_connections = max_pool_connections
        self._clients: dict[tuple[str, str, Timeouts], Any] = {}
        self._configs: dict[Timeouts, Config] = {}
        self._lock = threading.Lock()
        # botocore reads the proxy variables from os.environ again for every client it
        # creates, part of each region's cost before its first request. With none set the
        # answer is {} for every endpoint, and saying so up front skips the lookups.
        self._proxies: dict[str, str] | None = None if urllib.request.getproxies() else {}
        #: Backoff sleeps of the checks before publishing (replaced in tests).
        self.sleep: Callable[[float], None] = time.sleep

    def _checked_call(self, operation: str, region: str, call: Callable[[], Any]) -> Any:
        """One read before publishing, retried on transient trouble (throttling, 5xx, a
        dropped connection, an answer in the wrong protocol) on top of botocore's retries,
        which do not cover unparseable answers."""
        for attempt in range(1, CHECK_ATTEMPTS + 1):
            try:
                with _translated(operation, region):
                    return call()
            except AwsCallError as exc:
                if not exc.retryable or attempt == CHECK_ATTEMPTS:
                    raise
                log.info("%s in %s: %s; retrying", operation, region, exc)
                self.sleep(CHECK_BACKOFF * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def client(self, service: str, region: str, *, timeouts: Timeouts | None = None) -> Any:
        """The reused client for (service, region, timeouts), created on first request."""
        timeouts = timeouts or self.timeouts
        key = (service, region, timeouts)
        # Lock-free once created (a dict read is atomic): a region's calls must not queue
        # behind another region's client being built under the lock.
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                with _translated("CreateClient", region):
                    # cast: the stubs' overloads want a literal service name.
                    client = cast(Any, self.session).client(
                        service, region_name=region, config=self._config(timeouts)
                    )
                if service == "lambda":
                    client.meta.events.register_first(
                        "needs-retry.lambda.PublishLayerVersion", _no_blind_retry,
                        unique_id="layer-builder-no-blind-publish-retry",
                    )  # fmt: skip
                self._clients[key] = client
        return client

    def _config(self, timeouts: Timeouts) -> Config:
        """One botocore Config per timeouts, shared by every region's clients (the region
        goes to the client itself). Called under the lock."""
        config = self._configs.get(timeouts)
        if config is None:
            config = self._configs[timeouts] = Config(
                # cast: the stubs type "mode" as a Literal; ours is checked in from_env.
                retries=cast(
                    Any,
                    {
                        "mode": self.retries.mode,
                        "total_max_attempts": self.retries.total_max_attempts,
                    },
                ),
                connect_timeout=timeouts.connect,
                read_timeout=timeouts.read,
                max_pool_connections=self.max_pool_connections,
                user_agent_extra=f"layer-builder/{__version__}",
                proxies=self._proxies,
            )
        return config

    def home_region(self, partition: str | None = None) -> str:
        """The configured region, or the partition's usual home region."""
        configured = self.session.region_name
        if configured and (partition is None or partition_of_region(configured) == partition):
            return str(configured)
        return PARTITION_HOME_REGION.get(partition or "aws", "us-east-1")

    def identity(self) -> Identity:
        """STS GetCallerIdentity. Raises CredentialsError when there are no usable credentials."""
        region = self.home_region()
        sts = self.client("sts", region)
        try:
            out = self._checked_call("GetCallerIdentity", region, sts.get_caller_identity)
        except AwsCallError as exc:
            raise CredentialsError(f"cannot verify AWS credentials: {exc}") from None
        arn = str(out["Arn"])
        return Identity(account=str(out["Account"]), partition=arn.split(":")[1], arn=arn)

    def describe_regions(self, partition: str) -> list[RegionInfo]:
        """Every region EC2 knows of, with its opt-in status (AllRegions=True)."""
        region = self.home_region(partition)
        ec2 = self.client("ec2", region)
        out = self._checked_call(
            "DescribeRegions", region, lambda: ec2.describe_regions(AllRegions=True)
        )
        return [
            RegionInfo(str(r["RegionName"]), str(r.get("OptInStatus", "opt-in-not-required")))
            for r in out.get("Regions", [])
        ]

    def lambda_api(self, region: str, timeouts: Timeouts | None = None) -> LambdaApi:
        """Lambda layer calls in ``region``; the region's client is created on first use."""
        return LambdaApi(region, self, timeouts)

    def s3_api(self, region: str, timeouts: Timeouts | None = None) -> S3Api:
        """S3 staging calls in ``region`` (for zips over the direct-upload limit)."""
        return S3Api(region, self.client("s3", region, timeouts=timeouts))

    def function_api(self, region: str) -> FunctionApi:
        """A Lambda function's configuration calls in ``region``."""
        return FunctionApi(region, self.client("lambda", region))


def _no_blind_retry(
    response: Any = None, caught_exception: Exception | None = None, **kwargs: Any
) -> bool | None:
    """A needs-retry hook for PublishLayerVersion, the one call that is not idempotent.

    When the request may have reached Lambda (a dropped connection, a read timeout, a 5xx),
    resending it could publish a second version: returning False stops botocore's retry,
    and the publisher first re-reads the newest version. A refused connection or a throttle
    left nothing behind, so botocore's own retry (None: no opinion) is fine there.
    """
    if caught_exception is not None:
        never_sent = (bce.ConnectTimeoutError, bce.EndpointConnectionError)
        return None if isinstance(caught_exception, never_sent) else False
    if response is not None and int(getattr(response[0], "status_code", 0)) >= 500:
        return False
    return None


class LambdaApi:
    """The Lambda layer calls the publisher needs, in one region, with translated errors."""

    def __init__(self, region: str, aws: Aws, timeouts: Timeouts | None = None) -> None:
        self.region = region
        self._aws = aws
        self._timeouts = timeouts
        self._cached: Any = None

    @property
    def _client(self) -> Any:
        # Created on first use (from a worker thread, under Aws's lock) so that creating
        # dozens of clients overlaps other regions' network waits instead of preceding them;
        # then kept here, so later calls skip the factory.
        client = self._cached
        if client is None:
            client = self._cached = self._aws.client("lambda", self.region, timeouts=self._timeouts)
        return client

    def list_versions(
        self, layer_name: str, marker: str | None = None, page_size: int = 50
    ) -> tuple[list[LayerVersionRef], str | None]:
        """One page of a layer's versions, newest first, with descriptions; and the marker
        of the next page (None when this page reaches the oldest version)."""
        kwargs: dict[str, Any] = {"LayerName": layer_name, "MaxItems": page_size}
        if marker:
            kwargs["Marker"] = marker
        with _translated("ListLayerVersions", self.region):
            out = self._client.list_layer_versions(**kwargs)
        refs = [
            LayerVersionRef(
                int(v["Version"]),
                str(v["LayerVersionArn"]),
                str(v.get("Description") or ""),
                tuple(str(r) for r in v.get("CompatibleRuntimes") or ()),
                tuple(str(a) for a in v.get("CompatibleArchitectures") or ()),
                str(v.get("LicenseInfo") or ""),
            )
            for v in out.get("LayerVersions") or []
        ]
        refs.sort(key=lambda r: -r.version)
        return refs, out.get("NextMarker") or None

    def code_sha256(self, layer_name: str, version: int) -> str | None:
        """Content.CodeSha256 (base64 of the zip's sha256) of a version; None if it is gone."""
        try:
            with _translated("GetLayerVersion", self.region):
                out = self._client.get_layer_version(LayerName=layer_name, VersionNumber=version)
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise
        sha = out.get("Content", {}).get("CodeSha256")
        return str(sha) if sha else None

    def publish(
        self,
        layer_name: str,
        *,
        content: dict[str, Any],
        description: str,
        license_info: str,
        runtimes: tuple[str, ...],
        architectures: Sequence[str],
    ) -> LayerVersionRef:
        """PublishLayerVersion; botocore never resends it blindly (see :func:`_no_blind_retry`)."""
        with _translated("PublishLayerVersion", self.region):
            out = self._client.publish_layer_version(
                LayerName=layer_name,
                Description=description,
                Content=content,
                CompatibleRuntimes=list(runtimes),
                CompatibleArchitectures=list(architectures),
                LicenseInfo=license_info,
            )
        return LayerVersionRef(
            int(out["Version"]),
            str(out["LayerVersionArn"]),
            description,
            tuple(runtimes),
            tuple(architectures),
            license_info,
        )

    def delete_version(self, layer_name: str, version: int) -> None:
        """DeleteLayerVersion (a version already gone is fine: the call is idempotent)."""
        try:
            with _translated("DeleteLayerVersion", self.region):
                self._client.delete_layer_version(LayerName=layer_name, VersionNumber=version)
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise

    def policy(self, layer_name: str, version: int) -> list[Statement]:
        """The statements of a version's resource policy (empty when it has none)."""
        try:
            with _translated("GetLayerVersionPolicy", self.region):
                out = self._client.get_layer_version_policy(
                    LayerName=layer_name, VersionNumber=version
                )
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                return []
            raise
        return parse_policy(out.get("Policy"))

    def remove_permission(self, layer_name: str, version: int, statement_id: str) -> None:
        """RemoveLayerVersionPermission (a statement already gone is fine)."""
        try:
            with _translated("RemoveLayerVersionPermission", self.region):
                self._client.remove_layer_version_permission(
                    LayerName=layer_name, VersionNumber=version, StatementId=statement_id
                )
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise

    def add_permission(self, layer_name: str, version: int, statement: Statement) -> bool:
        """AddLayerVersionPermission; False when the statement id already exists."""
        kwargs: dict[str, Any] = {
            "LayerName": layer_name,
            "VersionNumber": version,
            "StatementId": statement.statement_id,
            "Action": statement.action,
            "Principal": statement.principal,
        }
        if statement.organization_id:
            kwargs["OrganizationId"] = statement.organization_id
        try:
            with _translated("AddLayerVersionPermission", self.region):
                self._client.add_layer_version_permission(**kwargs)
        except AwsCallError as exc:
            if exc.code == "ResourceConflictException":
                return False
            raise
        return True


class S3Api:
    """Staging objects for zips too big to send in the PublishLayerVersion request."""

    def __init__(self, region: str, client: Any) -> None:
        self.region = region
        self._client = client

    def upload(self, bucket: str, key: str, path: Path) -> None:
        """Upload ``path`` (multipart when large) to ``s3://bucket/key``."""
        try:
            with _translated("PutObject", self.region):
                self._client.upload_file(str(path), bucket, key)
        except boto3.exceptions.S3UploadFailedError as exc:
            # s3transfer wraps the ClientError in a message only; an upload is idempotent.
            raise AwsCallError(
                "PutObject",
                self.region,
                "S3UploadFailedError",
                str(exc),
                # Only throttling and server trouble are worth another upload: AccessDenied,
                # NoSuchBucket and the like fail the region at once.
                retryable=retryable_code(_code_in(str(exc))),
                ambiguous=False,
            ) from exc

    def delete(self, bucket: str, key: str) -> None:
        """Remove a staged object."""
        with _translated("DeleteObject", self.region):
            self._client.delete_object(Bucket=bucket, Key=key)


class FunctionApi:
    """The calls ``layer-builder function`` makes on one function's configuration, in one
    region. Failures are :class:`AwsCallError` (its ``code`` says which refusal it was) or
    :class:`~layer_builder.errors.CredentialsError`; what a code means to the user is the
    caller's to say."""

    GET = "GetFunctionConfiguration"
    UPDATE = "UpdateFunctionConfiguration"

    def __init__(self, region: str, client: Any) -> None:
        self.region = region
        self._client = client

    def configuration(self, function: str, qualifier: str | None = None) -> dict[str, Any]:
        """The function's configuration (of ``qualifier``, a version or alias, when given)."""
        kwargs: dict[str, Any] = {"FunctionName": function}
        if qualifier:
            kwargs["Qualifier"] = qualifier
        with _translated(self.GET, self.region):
            return cast(dict[str, Any], self._client.get_function_configuration(**kwargs))

    def update_configuration(self, function: str, changes: Mapping[str, Any]) -> None:
        """Change the function's configuration (``Handler``, ``Layers``, ``Environment``;
        with ``RevisionId``, only if nobody changed it since it was read)."""
        with _translated(self.UPDATE, self.region):
            self._client.update_function_configuration(FunctionName=function, **changes)


def _code_in(message: str) -> str:
    m = _CODE_IN_MESSAGE_RE.search(message)
    return m.group(1) if m else "Unknown"
