"""The client factory under a fan-out: one session and one parsed model for every region,
one client per region however many threads ask for it at once, proxies still honoured."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from layer_builder.aws.clients import Aws, Timeouts

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
