"""The registry reader's TTL cache over HTTP at its boundary: the index read at t is reused
until t + ttl and read again exactly at t + ttl (a mutant moving the boundary passed the
older tests; see docs/mutation-testing.md). A real HTTP server stands in for the registry's
API (tests/api_server.py); the clock is injected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_builder.registry.reader import RegistryClient
from tests.helpers.api_server import ApiServer
from tests.helpers.registry_docs import arn, document, write_version

PY = "SentryPythonServerlessSDK"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Path, ApiServer]]:
    root = tmp_path / "registry"
    write_version(root, document("2.75.0", {"x86_64,arm64": [arn(PY, 12)]}))
    server = ApiServer(root)
    yield root, server
    server.close()


def test_the_cached_index_expires_exactly_at_the_ttl(registry: tuple[Path, ApiServer]) -> None:
    root, server = registry
    now = [1000.0]
    with RegistryClient(server.url, ttl=60, clock=lambda: now[0]) as client:
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"  # read at t = 1000
        write_version(root, document("2.76.0", {"x86_64,arm64": [arn(PY, 13)]}))
        now[0] = 1059.5
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"  # still cached
        assert len(server.requests) == 1
        now[0] = 1060.0
        assert client.latest("aws-layer:python").sdk_version == "2.76.0"  # read at t + ttl
        assert len(server.requests) == 2


def test_ttl_zero_reads_every_time(registry: tuple[Path, ApiServer]) -> None:
    root, server = registry
    with RegistryClient(server.url, ttl=0, clock=lambda: 5.0) as client:
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"
        write_version(root, document("2.76.0", {"x86_64,arm64": [arn(PY, 13)]}))
        assert client.latest("aws-layer:python").sdk_version == "2.76.0"  # same instant
    assert len(server.requests) == 2
