"""Reading the registry over HTTP from a stand-in for the release registry's API server.

The server (``api_server.ApiServer``) scans runtime directories as the real one does and
answers ``GET /aws-lambda-layers`` with ``{canonical: latest document}``. Registries are
written by hand in the contract's shapes, and once by our own writer.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from layer_builder.cli import main
from layer_builder.errors import RegistryError
from layer_builder.model import PublishedLayer, Registration, ReleaseVersion
from layer_builder.registry.reader import RegistryClient
from layer_builder.registry.writer import write_release
from tests.helpers.api_server import ApiServer
from tests.helpers.cli import run_cli
from tests.helpers.registry_docs import arn, document, write_version

PY = "SentryPythonServerlessSDK"
SECRET = "s3cr3t-T0KEN-4242"
PASSWORD = "hunter2-passw0rd"


def universal(version: str, v: int) -> dict[str, Any]:
    return document(version, {"x86_64,arm64": [arn(PY, v), arn(PY, v - 2, "eu-west-1")]})


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_version(root, universal("2.75.0", 12))
    node = document("8.1.0", {"x86_64": [arn("SentryNodeServerlessSDKv8", 3)]},
                    canonical="aws-layer:node")  # fmt: skip
    write_version(root, node, runtime_dir="node")
    return root


@pytest.fixture
def serve() -> Iterator[Callable[..., ApiServer]]:
    servers: list[ApiServer] = []

    def start(root: Path, **kw: Any) -> ApiServer:
        servers.append(ApiServer(root, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
        assert server.errors == []  # the scan never met an entry that is not a runtime


def proxy_to(monkeypatch: pytest.MonkeyPatch, server: ApiServer) -> None:
    """Send requests for every host but loopback to ``server``, as an HTTP proxy."""
    for name in ("no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def latest_argv(url: str, *extra: str) -> list[str]:
    return ["registry", "latest", "aws-layer:python", "--region", "us-east-1", "--registry", url,
            *extra]  # fmt: skip


def test_registry_latest_through_the_api_route_keeps_the_token_and_never_prints_it(
    registry: Path, serve: Callable[..., ApiServer], capsys: Any
) -> None:
    server = serve(registry, token=SECRET, prefix="/registry")
    base = server.url.replace("://", f"://reader:{PASSWORD}@")
    url = f"{base}/?token={SECRET}"
    code, out, err = run_cli(capsys, *latest_argv(url, "--arch", "arm64"))
    assert (code, out, err) == (0, arn(PY, 12) + "\n", "")
    code, out, err = run_cli(capsys, *latest_argv(url, "--json"))
    assert code == 0 and json.loads(out)["arn"] == arn(PY, 12)
    code, out, err = run_cli(capsys, "registry", "show", "aws-layer:node", "--registry", url)
    assert code == 0 and json.loads(out)["sdk_version"] == "8.1.0"
    # Every request went to the API server's route with the query string kept.
    assert server.requests == [f"/registry/aws-lambda-layers?token={SECRET}"] * 3
    for text in (out, err):
        assert SECRET not in text and PASSWORD not in text


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("wrong token", r"/registry/aws-lambda-layers\?\.\.\.: HTTP 403"),
        ("server error", r"aws-lambda-layers\?\.\.\.: HTTP 500"),
        ("no route", r"aws-lambda-layers\?\.\.\.: HTTP 404"),
        ("nothing listens", r"cannot fetch the registry index: .*[Cc]onnection refused"),
    ],
)
def test_errors_never_print_the_token_or_user_info(
    registry: Path, serve: Callable[..., ApiServer], capsys: Any, how: str, message: str
) -> None:
    server = serve(registry, token=SECRET, prefix="/registry", failures=[500] * 10)
    url = server.url
    token = SECRET
    if how == "wrong token":
        token = SECRET + "x"
    elif how == "no route":
        url = url.removesuffix("/registry") + "/elsewhere"
        server.failures.clear()
    elif how == "nothing listens":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/registry"
    if how != "server error":
        server.failures.clear()
    full = url.replace("://", f"://reader:{PASSWORD}@") + f"?token={token}"
    code, out, err = run_cli(capsys, *latest_argv(full))
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert token not in err and SECRET not in err and PASSWORD not in err


def test_another_writer_moves_latest_and_the_api_reader_follows(
    registry: Path, serve: Callable[..., ApiServer], capsys: Any
) -> None:
    server = serve(registry)
    assert run_cli(capsys, *latest_argv(server.url))[1] == arn(PY, 12) + "\n"
    write_version(registry, universal("2.76.0", 13))  # craft adds a version, moves latest.json
    assert run_cli(capsys, *latest_argv(server.url))[1] == arn(PY, 13) + "\n"


def test_plain_http_is_refused_off_loopback_unless_allowed(
    registry: Path, serve: Callable[..., ApiServer], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(registry)
    url = f"http://registry.example.test/?token={SECRET}"
    for argv in (
        latest_argv(url),
        ["registry", "show", "--registry", url],
        ["function", "status", "fn", "--region", "us-east-1", "--registry", url],
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "", argv
        assert err == (
            "error: http://registry.example.test/?...: refusing a plain http:// registry (it "
            "decides which layer runs in your functions); use https://, or pass --allow-http\n"
        )
    assert server.requests == []  # refused before any request
    with pytest.raises(RegistryError, match="refusing a plain http:// registry"):
        RegistryClient("http://10.0.0.8/registry")
    # Allowed, it is read: the stand-in is reached as an HTTP proxy for the test.test host.
    proxy_to(monkeypatch, server)
    code, out, err = run_cli(capsys, *latest_argv(url, "--allow-http"))
    assert (code, out) == (0, arn(PY, 12) + "\n"), err
    assert server.requests == [f"http://registry.example.test/aws-lambda-layers?token={SECRET}"]
    # Loopback needs no flag (the tests above), nor does `localhost`; other schemes are
    # refused rather than taken for a directory name.
    RegistryClient("http://localhost:1/")
    with pytest.raises(RegistryError, match=r"file:///srv/registry: unsupported URL scheme"):
        RegistryClient("file:///srv/registry")


def test_a_redirect_to_plain_http_is_refused_before_it_is_followed(
    registry: Path, serve: Callable[..., ApiServer], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = serve(registry)
    # Any request that reached registry.example.test would arrive here, through the proxy.
    proxy_to(monkeypatch, target)
    hop = serve(registry, redirect=f"http://registry.example.test/aws-lambda-layers?t={SECRET}")
    code, out, err = run_cli(capsys, *latest_argv(hop.url))
    assert code == 2 and out == "" and "refusing a plain http:// registry" in err
    assert SECRET not in err and target.requests == [] and len(hop.requests) == 1
    # A redirect that stays on loopback is followed.
    same = serve(registry, redirect=f"{target.url}/aws-lambda-layers")
    assert run_cli(capsys, *latest_argv(same.url))[1] == arn(PY, 12) + "\n"
    assert len(target.requests) == 1


def test_ttl_cache_over_http(registry: Path, serve: Callable[..., ApiServer]) -> None:
    server = serve(registry)
    now = [1000.0]
    with RegistryClient(server.url + "/", ttl=60, clock=lambda: now[0]) as client:
        assert client.layer_arn("aws-layer:python", "us-east-1", "arm64") == arn(PY, 12)
        now[0] += 59
        client.latest("aws-layer:node")
        client.index()["aws-layer:node"]["sdk_version"] = "mutated"
        assert client.document("aws-layer:node")["sdk_version"] == "8.1.0"
        assert len(server.requests) == 1  # one request, then the cache
        now[0] += 2
        client.latest("aws-layer:python")
        assert len(server.requests) == 2  # the TTL ran out
        client.clear_cache()
        client.index()
        assert len(server.requests) == 3


def test_a_server_error_is_retried(registry: Path, serve: Callable[..., ApiServer]) -> None:
    server = serve(registry, failures=[503])
    with RegistryClient(server.url) as client:
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"
    assert server.requests == ["/aws-lambda-layers"] * 2


def test_other_versions_are_read_from_a_directory_only(
    registry: Path, serve: Callable[..., ApiServer]
) -> None:
    with (
        RegistryClient(serve(registry).url) as client,
        pytest.raises(RegistryError, match="can only be read from a registry directory"),
    ):
        client.version_document("aws-layer:python", "2.75.0")


def _published(archs: str, name: str, regions: tuple[tuple[str, int, str], ...]) -> Any:
    return PublishedLayer(tuple(archs.split(",")), name, "c2hh", regions)


def test_our_writer_keeps_the_api_scan_clean_and_the_static_index_outside(
    tmp_path: Path, serve: Callable[..., ApiServer], capsys: Any
) -> None:
    root = tmp_path / "registry"
    # What an older layer-builder left: an index inside aws-lambda-layers/.
    write_version(root, universal("2.74.0", 11))
    stale = root / "aws-lambda-layers" / "index.json"
    stale.write_text(json.dumps({"aws-layer:python": universal("2.74.0", 11)}))
    server = serve(root)
    server.layers()
    assert server.errors == ["index.json: NotADirectoryError"]  # what broke the real server
    server.errors.clear()

    regions = (("us-east-1", 13, arn(PY, 13)),)
    reg = Registration(
        runtime_dir="python",
        canonical="aws-layer:python",
        version=ReleaseVersion.parse("2.75.0"),
        sdk_version="2.75.0",
        account_number="943013980633",
        compatible_runtimes=("python3.13",),
        layers=(_published("x86_64,arm64", PY, regions),),  # the universal layer
    )
    result = write_release(root, reg)
    assert result.removed == (stale,) and not stale.exists()
    assert [p.name for p in (root / "aws-lambda-layers").iterdir()] == ["python"]
    static = root / "aws-lambda-layers.json"
    assert result.index_file == static
    # The static copy equals what the API route serves, and both follow latest.json.
    served = server.layers()
    assert json.loads(static.read_text()) == served
    assert served["aws-layer:python"]["sdk_version"] == "2.75.0"
    # Read back through the API route: arm64 functions get the universal layer.
    argv = ["registry", "latest", "aws-layer:python", "--region", "us-east-1", "--arch", "arm64"]
    assert main([*argv, "--registry", server.url]) == 0
    assert capsys.readouterr().out == arn(PY, 13) + "\n"

    # A plain web server on the registry root serves the static copy to the reader.
    handler = partial(_QuietFiles, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/aws-lambda-layers.json?sig={SECRET}"
        with RegistryClient(url) as client:
            assert client.layer_arn("aws-layer:python", "us-east-1") == arn(PY, 13)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_a_foreign_index_json_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    write_version(root, universal("2.74.0", 11))
    foreign = root / "aws-lambda-layers" / "index.json"
    foreign.write_text("not ours\n")
    reg = Registration(
        runtime_dir="python",
        canonical="aws-layer:python",
        version=ReleaseVersion.parse("2.75.0"),
        sdk_version="2.75.0",
        account_number="943013980633",
        compatible_runtimes=("python3.13",),
        layers=(_published("x86_64", PY, (("us-east-1", 13, arn(PY, 13)),)),),
    )
    assert write_release(root, reg).removed == ()
    assert foreign.read_text() == "not ours\n"
    assert RegistryClient(root).latest("aws-layer:python").sdk_version == "2.75.0"


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass
