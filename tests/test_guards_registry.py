"""The registry reader's TTL cache at its boundary: the index read at t is reused until
t + ttl and read again exactly at t + ttl (a mutant moving the boundary passed the older
tests; see docs/mutation-testing.md)."""

from __future__ import annotations

from pathlib import Path

from test_registry_client import FakeClock, fixed_now, registration

from layer_builder.registry.reader import RegistryClient
from layer_builder.registry.writer import write_release


def test_the_cached_index_expires_exactly_at_the_ttl(tmp_path: Path) -> None:
    write_release(tmp_path, registration("2.75.0"), now=fixed_now)
    clock = FakeClock()
    client = RegistryClient(tmp_path, ttl=60, clock=clock)
    assert client.latest("aws-layer:python").sdk_version == "2.75.0"  # read at t = 1000

    write_release(tmp_path, registration("2.76.0"), now=fixed_now)  # the registry moves on
    clock.now = 1059.5
    assert client.latest("aws-layer:python").sdk_version == "2.75.0"  # still cached
    clock.now = 1060.0
    assert client.latest("aws-layer:python").sdk_version == "2.76.0"  # read again at t + ttl


def test_ttl_zero_reads_every_time(tmp_path: Path) -> None:
    write_release(tmp_path, registration("2.75.0"), now=fixed_now)
    clock = FakeClock()
    client = RegistryClient(tmp_path, ttl=0, clock=clock)
    assert client.latest("aws-layer:python").sdk_version == "2.75.0"
    write_release(tmp_path, registration("2.76.0"), now=fixed_now)
    assert client.latest("aws-layer:python").sdk_version == "2.76.0"  # same instant, new read
