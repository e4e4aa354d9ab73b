"""The registry client's observable details that mutation testing found unpinned: which file
a release names as its source, the hints of an unknown canonical or version, a canonical
claimed by two runtime directories, sessions it owns or borrows, timeouts, retries, redirects
and the messages of a failed fetch (see docs/mutation-testing.md)."""

from __future__ import annotations

import json
import locale
import logging
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from registry_docs import arn, document, write_version
from test_download import FakeServer, Reply

from layer_builder.errors import RegistryError
from layer_builder.registry import layout, reader
from layer_builder.registry.layout import read_json_mapping, read_version_document
from layer_builder.registry.reader import RegistryClient

PY = "SentryPythonServerlessSDK"


def refusal(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError, match=".") as exc:
        call()
    return str(exc.value)


def python_doc(version: str, v: int = 12) -> dict[str, Any]:
    return document(version, {"x86_64,arm64": [arn(PY, v)]})


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_version(root, python_doc("2.75.0"))
    node = document("8.1.0", {"x86_64": [arn("SentryNodeServerlessSDKv8", 3)]},
                    canonical="aws-layer:node")  # fmt: skip
    write_version(root, node, runtime_dir="node")
    return root


# ---------------------------------------------------------------- a registry directory


def test_a_release_names_the_version_file_latest_json_points_at(registry: Path) -> None:
    target = registry / "aws-lambda-layers" / "python" / "2.75.0.json"
    client = RegistryClient(registry)
    assert client.latest("aws-layer:python").source == str(target)
    assert refusal(lambda: client.layer_arn("aws-layer:python", "ap-south-2")) == (
        f"{target}: aws-layer:python 2.75.0 has no x86_64 layer in region 'ap-south-2' "
        "(it is published in 1 region; see `layer-builder registry show`)"
    )


def test_a_directory_client_shows_its_path_as_given(tmp_path: Path) -> None:
    # A directory name that would lose its tail if it were taken for a URL.
    root = tmp_path / "registry#2"
    write_version(root, python_doc("2.75.0"))
    client = RegistryClient(root)
    assert client.source == str(root)
    assert refusal(lambda: client.latest("ruby")) == (
        f"{root}: no layer 'ruby' in the registry; known: aws-layer:python"
    )


def test_two_runtime_directories_claiming_one_canonical(registry: Path) -> None:
    write_version(registry, python_doc("2.76.0"), runtime_dir="python-copy")
    layers = registry / "aws-lambda-layers"
    assert refusal(RegistryClient(registry).index) == (
        f"{layers / 'python-copy' / 'latest.json'}: canonical 'aws-layer:python' is also "
        f"{layers / 'python' / 'latest.json'}"
    )


def test_runtimes_without_latest_are_listed_after_every_known_canonical(registry: Path) -> None:
    layers = registry / "aws-lambda-layers"
    for name in ("java", "ruby"):  # "java" sorts before the released runtimes
        (layers / name).mkdir()
        (layers / name / "base.json").write_text("{}")
    client = RegistryClient(registry)
    assert sorted(client.index()) == ["aws-layer:node", "aws-layer:python"]
    assert refusal(lambda: client.latest("ruby")) == (
        f"{registry}: no layer 'ruby' in the registry; known: aws-layer:node, aws-layer:python "
        "(java/, ruby/ has no latest.json)"
    )


def test_an_unknown_version_lists_the_five_newest_files_but_not_base_json(registry: Path) -> None:
    for minor in range(70, 75):
        write_version(registry, python_doc(f"2.{minor}.0"), link=False)
    runtime = registry / "aws-lambda-layers" / "python"
    (runtime / "base.json").write_text("{}")
    client = RegistryClient(registry)
    assert refusal(lambda: client.version_document("aws-layer:python", "9")) == (
        f"{runtime / '9.json'}: no such version of aws-layer:python; "
        "known: 2.71.0, 2.72.0, 2.73.0, 2.74.0, 2.75.0"
    )


def test_of_several_schema_problems_the_first_path_is_named(tmp_path: Path) -> None:
    # The validator meets sdk_version first; the message names the problems in path order.
    path = tmp_path / "2.75.0.json"
    path.write_text(json.dumps({**python_doc("2.75.0"), "sdk_version": 5, "account_number": 7}))
    assert refusal(lambda: read_version_document(path)) == (
        f"{path}: not a layer version document: $.account_number: 7 is not of type 'string'"
    )


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        if sys.flags.utf8_mode or locale.getencoding().lower().replace("-", "") == "utf8":
            pytest.skip("this platform's C locale reads files as UTF-8 anyway")
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_registry_files_are_utf8_whatever_the_locale(tmp_path: Path, ascii_locale: None) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"name": "Café layer"}', encoding="utf-8")
    assert read_json_mapping(path) == {"name": "Café layer"}


def test_a_legacy_index_json_is_logged_as_ignored_and_nothing_else_is(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layers = registry / "aws-lambda-layers"
    (layers / "index.json").write_text("{}")
    (layers / "README.md").write_text("notes")
    with caplog.at_level(logging.DEBUG, logger=layout.__name__):
        RegistryClient(registry).index()
    assert [r.getMessage() for r in caplog.records if r.name == layout.__name__] == [
        f"{layers / 'index.json'}: ignored (written by an older layer-builder)"
    ]


# ---------------------------------------------------------------- URLs, no request made


def test_an_https_registry_is_accepted_and_shown_without_credentials() -> None:
    client = RegistryClient("https://reader:hunter2@registry.example.test/base/?token=t0k")
    assert client.source == "https://registry.example.test/base/?..."
    assert refusal(lambda: client.version_document("aws-layer:python", "2.75.0")) == (
        "https://registry.example.test/base/?...: a version other than the latest can only be "
        "read from a registry directory (the API server serves the latest only)"
    )


def test_an_upper_case_scheme_is_a_url_not_a_directory_name() -> None:
    assert refusal(lambda: RegistryClient("HTTP://registry.example.test/")) == (
        "http://registry.example.test/: refusing a plain http:// registry (it decides which "
        "layer runs in your functions); use https://, or pass --allow-http"
    )


def test_a_port_out_of_range_is_a_registry_error_not_a_traceback() -> None:
    assert refusal(lambda: RegistryClient("https://reader:pw@127.0.0.1:99999/r?token=t")) == (
        "https://127.0.0.1:99999/r: not a valid URL (Port out of range 0-65535)"
    )


# ---------------------------------------------------------------- over HTTP (loopback)


@pytest.fixture
def http() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def index_body() -> bytes:
    return json.dumps({"aws-layer:python": python_doc("2.75.0")}).encode()


def test_the_api_route_is_appended_to_the_base_path_as_given(http: FakeServer) -> None:
    http.route("/mirrorX/aws-lambda-layers", Reply(body=index_body()))
    with RegistryClient(f"{http.base}/mirrorX/", ttl=0) as client:
        assert sorted(client.index()) == ["aws-layer:python"]
    assert [r.path for r in http.requests] == ["/mirrorX/aws-lambda-layers"]


def test_a_server_error_is_tried_four_times_by_default(
    http: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # urllib3's backoff between tries
    http.route("/aws-lambda-layers", Reply(503, b"busy"))
    with RegistryClient(http.base, ttl=0) as client:
        assert refusal(client.index) == (
            f"{http.base}/aws-lambda-layers: HTTP 503 fetching the registry index"
        )
    assert http.hits("/aws-lambda-layers") == 4  # the first try and three retries


def test_a_stalled_server_times_out_with_the_read_timeout_given() -> None:
    with socket.socket() as sock:  # accepts connections (the backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}/reg?token=t0k"
        with RegistryClient(url, timeout=(5.0, 0.2), retries=0) as client:
            message = refusal(client.index)
    assert message == (
        f"http://127.0.0.1:{port}/reg/aws-lambda-layers?...: cannot fetch the registry index: "
        f"HTTPConnectionPool(host='127.0.0.1', port={port}): Read timed out. (read timeout=0.2)"
    )


def test_an_allowed_http_redirect_is_followed_and_its_failure_hides_the_query(
    http: FakeServer,
) -> None:
    # With --allow-http the hop off loopback passes the http rule; the URL it names has no
    # host, which is said before any request, without the token.
    http.route("/aws-lambda-layers", Reply(302, b"", {"Location": "http://:80/x?token=t0k"}))
    with RegistryClient(http.base, allow_http=True, retries=0) as client:
        assert refusal(client.index) == "http://:80/x: not a valid URL (no host)"


def test_a_redirect_to_a_port_out_of_range_is_a_registry_error(http: FakeServer) -> None:
    http.route("/aws-lambda-layers", Reply(302, b"", {"Location": "http://127.0.0.1:99999/x"}))
    with RegistryClient(http.base, retries=0) as client:
        assert refusal(client.index) == (
            "http://127.0.0.1:99999/x: not a valid URL (Port out of range 0-65535)"
        )


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def test_a_given_session_is_used_and_left_open(http: FakeServer) -> None:
    http.route("/aws-lambda-layers", Reply(body=index_body()))
    session = CountingSession()
    session.headers["X-Registry-Token"] = "t0k"
    with RegistryClient(http.base, session=session) as client:
        client.index()
    assert ([r.headers.get("x-registry-token") for r in http.requests], session.closed) == (
        ["t0k"],
        0,
    )


def test_the_clients_own_session_is_closed_once(
    http: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http.route("/aws-lambda-layers", Reply(body=index_body()))
    made: list[CountingSession] = []

    def make_session(**kw: Any) -> CountingSession:
        made.append(CountingSession())
        return made[-1]

    monkeypatch.setattr(reader, "make_session", make_session)
    client = RegistryClient(http.base)
    client.index()
    client.close()
    client.close()  # a second close is harmless
    assert [s.closed for s in made] == [1]
