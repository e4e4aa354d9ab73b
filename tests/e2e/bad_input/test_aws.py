"""AWS connection trouble and bad endpoint variables in every command that talks to AWS: exit 2,
one ``error:`` line naming the variable, or the operation, region and endpoint; nothing
written. The endpoint variables are checked before any config, zip or registry is read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.config import LayerConfig
from layer_builder.model import ReleaseVersion
from tests.helpers.bad_input import VALID, BadInput
from tests.helpers.layers import write_layer
from tests.helpers.registry_docs import document, write_version
from tests.helpers.smoke_layers import make_layer

ARN = "arn:aws:lambda:eu-west-1:943013980633:layer:SentryPythonServerlessSDK:12"


@pytest.fixture
def fake_credentials(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


def _registry(tmp: Path) -> str:
    root = tmp / "registry"
    if not root.exists():
        write_version(root, document("2.75.0", {"x86_64": [ARN]}))
    return str(root)


def _function(verb: str, region: str = "eu-west-1"):  # type: ignore[no-untyped-def]
    extra = ["--dsn", "https://key@o1.ingest.sentry.io/1"] if verb == "enable" else []
    return lambda t: ["function", verb, "my-fn", "--region", region, "--registry", _registry(t),
                      *extra]  # fmt: skip


def _config(tmp: Path) -> str:
    path = tmp / "layer.yml"
    path.write_text(VALID)
    return str(path)


COMMANDS = {
    "function status": _function("status"),
    "function enable": _function("enable"),
    "function update": _function("update"),
    "function disable": _function("disable"),
    "publish": lambda t: ["publish", _config(t), "--version", "2.75.0", "--dist", str(t)],
    "release": lambda t: ["release", _config(t), "--version", "2.75.0", "--no-smoke"],
    "craft publish": lambda t: ["craft", "publish", "--version", "2.75.0"],
}

BAD_ENDPOINTS = {
    "no scheme": ("AWS_ENDPOINT_URL", "localhost:4566"),
    "no host": ("AWS_ENDPOINT_URL", "http://"),
    "an unclosed IPv6 address": ("AWS_ENDPOINT_URL", "http://[::1"),
    "another scheme": ("AWS_ENDPOINT_URL", "ftp://localhost:4566"),
    "a service's variable": ("AWS_ENDPOINT_URL_LAMBDA", "lambda.internal"),
}


@pytest.mark.parametrize("endpoint", sorted(BAD_ENDPOINTS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_endpoint_variable_is_named_before_anything_runs(
    command: str,
    endpoint: str,
    tmp_path: Path,
    fake_credentials: None,
    bad_input: BadInput,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    var, value = BAD_ENDPOINTS[endpoint]
    monkeypatch.setenv(var, value)
    bad_input(COMMANDS[command](tmp_path), f"{var}=", "not an http(s) endpoint URL")


@pytest.mark.parametrize("verb", ["status", "enable", "update", "disable"])
def test_nothing_listening_names_operation_region_and_endpoint(
    verb: str,
    tmp_path: Path,
    fake_credentials: None,
    bad_input: BadInput,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    line = bad_input(_function(verb)(tmp_path), "in eu-west-1", "http://127.0.0.1:9")
    assert "EndpointConnectionError" in line


def test_a_region_typo_is_named_with_the_region_it_meant(
    tmp_path: Path, fake_credentials: None, bad_input: BadInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    bad_input(_function("status", "eu-wset-1")(tmp_path), "eu-wset-1", "did you mean 'eu-west-1'")


@pytest.mark.parametrize("regions", ["us-east-1", "all"])
def test_publish_with_nothing_listening_is_one_line_and_publishes_nothing(
    regions: str,
    tmp_path: Path,
    fake_credentials: None,
    bad_input: BadInput,
    make_config: Callable[..., LayerConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_config(architectures="[x86_64]")
    version = ReleaseVersion.parse("1.0.0")
    write_layer(tmp_path / "dist", cfg, version, "x86_64")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    argv = ["publish", str(cfg.path), "--version", "1.0.0", "--dist", str(tmp_path / "dist")]
    argv += ["--regions", regions, "--registry", str(tmp_path / "registry")]
    bad_input(argv, "http://127.0.0.1:9")


def test_craft_publish_with_nothing_listening_is_one_line(
    tmp_path: Path, fake_credentials: None, bad_input: BadInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.bad_input import CRAFT

    dist = tmp_path / "dist"
    dist.mkdir()
    make_layer(dist / "layer-1.zip")
    craft_config = tmp_path / ".craft.yml"
    craft_config.write_text(CRAFT)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    argv = ["craft", "publish", "--config", str(craft_config), "--version", "1.0.0"]
    argv += ["--artifacts", str(dist), "--regions", "us-east-1"]
    argv += ["--registry", str(tmp_path / "registry")]
    bad_input(argv, "http://127.0.0.1:9")
