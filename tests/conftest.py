"""Shared fixtures: moto's server on loopback, a clean fake-AWS environment, small layers.

boto3 is never patched: tests point it at the moto server (or the fault proxy in front of
it) through ``AWS_ENDPOINT_URL`` and it speaks real HTTP. moto keeps its state per process,
so every test uses its own layer names (``unique_name``) instead of resetting the server.
"""

from __future__ import annotations

import logging
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layer_builder.config import LayerConfig, load_config
from layer_builder.model import BuildManifest, ReleaseVersion
from tests.helpers.bad_input import BadInput
from tests.helpers.layers import ConfigFactory, write_layer

# Variables that could route a test to real AWS or real credentials.
_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)


@pytest.fixture(autouse=True)
def _output_as_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=true (set by GitHub Actions) fits every output line to the width; tests that pin
    whole lines must see the same output on every machine, and set CI themselves to test it."""
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the whole run, on 127.0.0.1 with an ephemeral port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS variables, no config or credential files, no instance metadata."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws_env(no_aws_env: None, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """Fake credentials and AWS_ENDPOINT_URL pointing at moto; returns the endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    # Keep botocore's own (real-time) backoff short; region-level sleeps are injected.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    return moto_endpoint


@pytest.fixture
def unique_name() -> str:
    """A layer-name stem no other test uses (moto's state is shared by the whole run)."""
    return f"LbTest{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_config(tmp_path: Path, unique_name: str) -> ConfigFactory:
    """Write and load a layer config; ``publish`` is extra YAML for the publish section."""

    def make(
        publish: str = "",
        architectures: str = "[x86_64, arm64]",
        name: str | None = None,
        layout: str = "per-arch",
        extra: str = "",
    ) -> LayerConfig:
        section = "publish:\n" + textwrap.indent(textwrap.dedent(publish), "  ") if publish else ""
        text = (
            textwrap.dedent(f"""\
            name: "{name or unique_name}{{{{ arch_suffix }}}}"
            description: "Test layer {{{{ version }}}} ({{{{ arch }}}})"
            license: MIT
            layout: {layout}
            canonical: "aws-layer:python"
            runtime: python
            compatible_runtimes: [python3.12, python3.13]
            architectures: {architectures}
            sdk:
              package: sentry-sdk
            registry:
              runtime_dir: python
            """)
            + section
            + extra
        )
        path = tmp_path / f"layer-{uuid.uuid4().hex[:6]}.yml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)

    return make


@pytest.fixture
def make_layers(tmp_path: Path) -> Callable[..., list[tuple[Path, BuildManifest]]]:
    """Build the release's zips + manifests into ``tmp_path/dist``: one per configured
    architecture (per-arch), or one serving them all (universal)."""

    def make(
        cfg: LayerConfig, version: ReleaseVersion, extra: bytes = b""
    ) -> list[tuple[Path, BuildManifest]]:
        if cfg.universal:
            archs = cfg.select_architectures(None)
            return [write_layer(tmp_path / "dist", cfg, version, archs, extra)]
        return [write_layer(tmp_path / "dist", cfg, version, a, extra) for a in cfg.architectures]

    return make


# ------------------------------------------------------------------ bad input, table-driven


@pytest.fixture
def bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> BadInput:
    return BadInput(tmp_path, capsys, monkeypatch)
