"""The registry reader: local checkouts, a real HTTP server, Sentry's document shape."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import RegistryError
from layer_builder.model import PublishedLayer, Registration, ReleaseVersion
from layer_builder.registry.reader import LayerRelease, RegistryClient
from layer_builder.registry.writer import write_release

ACCOUNT = "943013980633"
X86 = "SentryPythonServerlessSDK"
ARM = "SentryPythonServerlessSDKArm64"
REGIONS = (("us-east-1", 12), ("eu-west-1", 9))
Routes = dict[str, list[tuple[int, bytes]]]  # path -> answers in turn, the last one repeats


def registration(
    version: str,
    regions: Sequence[tuple[str, int]] = REGIONS,
    *,
    archs: Sequence[str] = ("x86_64", "arm64"),
    runtime_dir: str = "python",
    canonical: str = "aws-layer:python",
) -> Registration:
    layers = []
    for arch in archs:
        name = X86 if arch == "x86_64" else ARM
        entries = tuple(
            sorted((r, v, f"arn:aws:lambda:{r}:{ACCOUNT}:layer:{name}:{v}") for r, v in regions)
        )
        layers.append(PublishedLayer((arch,), name, f"c2hh-{arch}", entries))
    return Registration(
        runtime_dir=runtime_dir,
        canonical=canonical,
        version=ReleaseVersion.parse(version),
        sdk_version=version,
        account_number=ACCOUNT,
        compatible_runtimes=("python3.13",),
        layers=tuple(layers),
    )


def fixed_now() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


# The shape of getsentry/sentry-release-registry's aws-lambda-layers/python/<version>.json
# (written by craft): no layers list, no architectures, regions in publishing order.
SENTRY_DOC = {
    "name": "AWS Lambda Python Layer",
    "repo_url": "https://github.com/getsentry/sentry-python",
    "main_docs_url": "https://docs.sentry.io/platforms/python/guides/aws-lambda/",
    "created_at": "2021-02-11T11:45:36.000Z",
    "canonical": "aws-layer:python",
    "sdk_version": "1.45.1",
    "account_number": ACCOUNT,
    "layer_name": X86,
    "regions": [
        {"region": "af-south-1", "version": "118"},
        {"region": "us-east-1", "version": "127"},
        {"region": "eu-central-1", "version": "127"},
    ],
}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_release(root, registration("2.75.0"), now=fixed_now)
    node = registration("8.1.0", runtime_dir="node", canonical="aws-layer:node")
    write_release(root, node, now=fixed_now)
    return root


def sentry_checkout(root: Path, doc: dict[str, Any]) -> Path:
    """A checkout of the real registry: version files and symlinks, no index.json."""
    d = root / "aws-lambda-layers" / "python"
    d.mkdir(parents=True)
    (d / f"{doc['sdk_version']}.json").write_text(json.dumps(doc, separators=(",", ":")))
    os.symlink(f"{doc['sdk_version']}.json", d / "latest.json")
    return root


class Server:
    """http.server on 127.0.0.1 in a thread, counting requests per path."""

    def __init__(self, directory: Path, routes: Routes | None = None):
        self.requests: list[str] = []
        self.routes = routes or {}
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                answers = outer.routes.get(self.path)
                if answers:
                    status, body = answers.pop(0) if len(answers) > 1 else answers[0]
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        handler = partial(Handler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(directory: Path, routes: Routes | None = None) -> Server:
        servers.append(Server(directory, routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_a_local_registry(registry: Path) -> None:
    client = RegistryClient(registry)
    assert sorted(client.index()) == ["aws-layer:node", "aws-layer:python"]
    release = client.latest("aws-layer:python")
    assert isinstance(release, LayerRelease)
    assert release.sdk_version == "2.75.0" and release.architectures == ("x86_64", "arm64")
    assert client.layer_arn("aws-layer:python", "us-east-1", "x86_64") == (
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{X86}:12"
    )
    assert client.layer_arn("aws-layer:python", "eu-west-1", "arm64") == (
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:{ARM}:9"
    )
    assert client.document("aws-layer:node")["sdk_version"] == "8.1.0"
    # The registry directory itself works too, as a str or a Path.
    assert RegistryClient(str(registry / "aws-lambda-layers")).latest("aws-layer:node")


def test_arn_uses_the_partition_of_the_region(tmp_path: Path) -> None:
    reg = registration("2.75.0", [("cn-north-1", 2), ("us-gov-west-1", 5)], archs=["x86_64"])
    write_release(tmp_path, reg, now=fixed_now)
    release = RegistryClient(tmp_path).latest("aws-layer:python")
    assert release.arn("cn-north-1").startswith("arn:aws-cn:lambda:cn-north-1:")
    assert release.arn("us-gov-west-1").startswith("arn:aws-us-gov:lambda:us-gov-west-1:")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (("aws-layer:ruby", "us-east-1", "x86_64"), r"no layer 'aws-layer:ruby' in the registry"),
        (("aws-layer:pyton", "us-east-1", "x86_64"), r"did you mean 'aws-layer:python'\?"),
        (("aws-layer:python", "us-east-9", "x86_64"), r"has no x86_64 layer in region 'us-east-9'"),
        (("aws-layer:python", "mars-north-1", "arm64"), r"no arm64 layer in region 'mars-north-1'"),
        (("aws-layer:python", "us-east-1", "riscv64"), r"has no riscv64 layer \(architectures"),
    ],
)
def test_what_the_registry_lacks_is_a_clear_error(
    registry: Path, call: tuple[str, str, str], message: str
) -> None:
    with pytest.raises(RegistryError, match=message) as info:
        RegistryClient(registry).layer_arn(*call)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_missing_region_is_named_without_suggesting_another_region(registry: Path) -> None:
    # A layer from a neighbouring region cannot be attached, so nothing is suggested.
    with pytest.raises(RegistryError, match=r"in region 'us-east1' \(it is published in 2 regions"):
        RegistryClient(registry).layer_arn("aws-layer:python", "us-east1")


def test_command_line_exits_2_on_a_missing_region(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layer_builder.cli import main

    argv = ["registry", "latest", "aws-layer:python", "--region", "xx-nowhere-1"]
    assert main([*argv, "--registry", str(registry)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "xx-nowhere-1" in err and "Traceback" not in err


def test_no_registry_at_the_location(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"no registry here \(expected .*aws-lambda-layers/\)"):
        RegistryClient(tmp_path / "nowhere").index()


def test_reads_a_sentry_checkout_without_index_or_layers(tmp_path: Path) -> None:
    client = RegistryClient(sentry_checkout(tmp_path, SENTRY_DOC))
    release = client.latest("aws-layer:python")
    assert release.architectures == ("x86_64",)
    assert client.layer_arn("aws-layer:python", "af-south-1") == (
        f"arn:aws:lambda:af-south-1:{ACCOUNT}:layer:{X86}:118"
    )
    with pytest.raises(RegistryError, match="1.45.1 has no arm64 layer"):
        client.layer_arn("aws-layer:python", "af-south-1", "arm64")


def test_sentry_document_declaring_arm64_serves_both_architectures(tmp_path: Path) -> None:
    doc = {**SENTRY_DOC, "compatible_architectures": ["x86_64", "arm64"]}
    client = RegistryClient(sentry_checkout(tmp_path, doc))
    assert client.layer_arn("aws-layer:python", "us-east-1", "arm64") == client.layer_arn(
        "aws-layer:python", "us-east-1", "x86_64"
    )


def test_a_malformed_document_is_named(tmp_path: Path) -> None:
    bad = {**SENTRY_DOC, "regions": [{"region": "us-east-1", "version": 127}]}
    (tmp_path / "aws-lambda-layers").mkdir()
    (tmp_path / "aws-lambda-layers" / "index.json").write_text(
        json.dumps({"aws-layer:python": bad})
    )
    with pytest.raises(RegistryError, match=r"aws-layer:python: .*\$\.regions\[0\]\.version"):
        RegistryClient(tmp_path).latest("aws-layer:python")


def test_reads_over_http_with_a_ttl_cache(registry: Path, serve: Callable[..., Server]) -> None:
    server = serve(registry)
    clock = FakeClock()
    with RegistryClient(server.url + "/", ttl=60, clock=clock) as client:
        arn = client.layer_arn("aws-layer:python", "us-east-1", "arm64")
        assert arn == f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{ARM}:12"
        clock.now += 59
        client.latest("aws-layer:node")
        client.index()["aws-layer:node"]["sdk_version"] = "mutated"
        assert server.requests == ["/aws-lambda-layers/index.json"]  # one request, then cache
        assert client.document("aws-layer:node")["sdk_version"] == "8.1.0"

        clock.now += 2
        client.latest("aws-layer:python")
        assert len(server.requests) == 2  # the TTL ran out
        client.clear_cache()
        client.index()
        assert len(server.requests) == 3


def test_http_falls_back_to_the_release_registry_endpoint(
    tmp_path: Path, serve: Callable[..., Server]
) -> None:
    # release-registry.services.sentry.io serves the index at /aws-lambda-layers.
    body = json.dumps({"aws-layer:python": SENTRY_DOC}).encode()
    server = serve(tmp_path, {"/aws-lambda-layers": [(200, body)], "/copy.json": [(200, body)]})
    with RegistryClient(server.url, ttl=0) as client:
        assert client.layer_arn("aws-layer:python", "eu-central-1").endswith(f":{X86}:127")
    assert server.requests == ["/aws-lambda-layers/index.json", "/aws-lambda-layers"]
    # A URL naming a .json file is the index itself.
    with RegistryClient(f"{server.url}/copy.json", ttl=0) as direct:
        assert direct.document("aws-layer:python")["sdk_version"] == "1.45.1"


def test_http_retries_a_server_error(registry: Path, serve: Callable[..., Server]) -> None:
    index = (registry / "aws-lambda-layers" / "index.json").read_bytes()
    server = serve(registry, {"/aws-lambda-layers/index.json": [(503, b"busy"), (200, index)]})
    with RegistryClient(server.url) as client:
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"
    assert server.requests == ["/aws-lambda-layers/index.json"] * 2


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"/aws-lambda-layers/index.json": [(500, b"oops")]}, r"index\.json: HTTP 500"),
        ({"/aws-lambda-layers/index.json": [(200, b"<html>")]}, r"index is not valid JSON"),
        ({"/aws-lambda-layers/index.json": [(200, b"[1, 2]")]}, r"index is not a JSON object"),
        ({}, r"/aws-lambda-layers: HTTP 404"),
    ],
)
def test_http_failures_are_registry_errors(
    tmp_path: Path, serve: Callable[..., Server], routes: Routes, message: str
) -> None:
    server = serve(tmp_path, routes)
    with (
        RegistryClient(server.url, retries=0) as client,
        pytest.raises(RegistryError, match=message),
    ):
        client.index()


def test_unreachable_server_is_a_registry_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens
    with pytest.raises(RegistryError, match="cannot fetch the registry index"):
        RegistryClient(f"http://127.0.0.1:{port}", retries=0).index()
