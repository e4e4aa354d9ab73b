"""A release run as a library call (no command line): what it shows, writes and returns."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from layer_builder.model import BuildManifest, PublishResult, RegionResult, ReleaseVersion
from layer_builder.publish.release import ReleaseRequest, run_release
from layer_builder.publish.target import PublishTarget
from tests.helpers.layers import FAKE_ACCOUNT, ConfigFactory

V = ReleaseVersion.parse("2.75.0")
TARGET = PublishTarget(FAKE_ACCOUNT, "aws", ("eu-west-1",))
MakeLayers = Callable[..., list[tuple[Path, BuildManifest]]]


class Recorder:
    """The observer: records what the release showed, and whether the registry's version
    file already existed when the table was due."""

    def __init__(self, version_file: Path) -> None:
        self.version_file = version_file
        self.events: list[Any] = []

    def publishing(self, request: ReleaseRequest, target: PublishTarget, workers: int) -> None:
        self.events.append(("publishing", target.regions, workers))

    @contextlib.contextmanager
    def region_progress(self, total: int) -> Iterator[Callable[[RegionResult], None]]:
        self.events.append(("progress", total))
        yield lambda r: self.events.append(("region", r.region, r.status))

    def published(self, result: PublishResult) -> None:
        self.events.append(("published", self.version_file.exists()))


def _request(cfg: Any, built: Any, registry: Path, **kw: Any) -> ReleaseRequest:
    return ReleaseRequest(cfg, V, tuple(built), registry, target=TARGET, **kw)


def test_a_release_publishes_shows_its_progress_then_writes_the_registry(
    aws_env: str, tmp_path: Path, make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    registry = tmp_path / "registry"
    version_file = registry / "aws-lambda-layers" / cfg.registry.runtime_dir / "2.75.0.json"
    seen = Recorder(version_file)

    outcome = run_release(_request(cfg, make_layers(cfg, V), registry), seen)

    assert seen.events == [
        ("publishing", ("eu-west-1",), cfg.publish.max_workers),
        ("progress", 1),
        ("region", "eu-west-1", "new"),
        ("published", False),  # the table comes before the registry is written
    ]
    assert outcome.result.complete and not outcome.interrupted and outcome.created
    assert outcome.written is not None and outcome.written.version_file == version_file
    assert version_file.is_file()


def test_a_dry_run_returns_the_plan_and_writes_nothing(
    aws_env: str, tmp_path: Path, make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    registry = tmp_path / "registry"
    seen = Recorder(registry / "none")

    outcome = run_release(
        _request(cfg, make_layers(cfg, V), registry, dry_run=True, workers=3), seen
    )

    assert seen.events[0] == ("publishing", ("eu-west-1",), 3)
    assert [r.status for r in outcome.result.results] == ["planned-new"]
    assert outcome.written is None and not registry.exists()
    client = boto3.client("lambda", region_name="eu-west-1", endpoint_url=aws_env)
    names = {layer["LayerName"] for layer in client.list_layers()["Layers"]}
    assert outcome.result.results[0].layer_name not in names  # moto is shared: ours only


def test_an_interrupt_before_publishing_leaves_the_registry_unwritten(
    aws_env: str, tmp_path: Path, make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    registry = tmp_path / "registry"

    @contextlib.contextmanager
    def interrupted() -> Iterator[threading.Event]:
        event = threading.Event()
        event.set()  # as if Ctrl-C came as the lock was taken
        yield event

    outcome = run_release(
        _request(cfg, make_layers(cfg, V), registry), Recorder(registry / "x"),
        interrupts=interrupted,
    )  # fmt: skip

    assert outcome.interrupted and outcome.written is None
    assert [r.error for r in outcome.result.failed] == ["interrupted before it started"]
    assert not (registry / "aws-lambda-layers").exists()
