"""The registry reader's refusals word for word: files that are not JSON objects, version
names, a canonical in the wrong runtime directory, a file where a checkout should be, and
hidden entries skipped (mutation testing found these unpinned; see docs/mutation-testing.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_docs import arn, document, write_version
from test_download import FakeServer, Reply

from layer_builder.errors import RegistryError
from layer_builder.registry.layout import read_json_mapping, runtime_dirs
from layer_builder.registry.reader import RegistryClient

PY = "SentryPythonServerlessSDK"


def refusal(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError, match=".") as exc:
        call()
    return str(exc.value)


def test_read_json_mapping_word_for_word(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert refusal(lambda: read_json_mapping(missing)) == f"{missing}: not found"
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert refusal(lambda: read_json_mapping(listed)) == (
        f"{listed}: expected a JSON object, found list"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": ')
    assert refusal(lambda: read_json_mapping(broken)) == (
        f"{broken}: not valid JSON (Expecting value, line 1)"
    )
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "caf\xe9"}')
    assert refusal(lambda: read_json_mapping(latin)).startswith(
        f"{latin}: unreadable: 'utf-8' codec can't decode byte 0xe9"
    )
    assert read_json_mapping(_written(tmp_path / "ok.json", {"a": "é"})) == {"a": "é"}


def _written(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_hidden_entries_and_files_are_not_runtimes(tmp_path: Path) -> None:
    layers = tmp_path / "aws-lambda-layers"
    for name in (".git", "node", ".tmp-python", "python", "zz"):
        (layers / name).mkdir(parents=True)
    (layers / "index.json").write_text("{}")
    (layers / "notes.txt").write_text("x")
    assert [p.name for p in runtime_dirs(layers)] == ["node", "python", "zz"]
    assert runtime_dirs(tmp_path / "missing") == []


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    for version, v in (("2.74.0", 11), ("2.75.0", 12)):
        write_version(root, document(version, {"x86_64,arm64": [arn(PY, v)]}))
    return root


def test_version_names_word_for_word(registry: Path) -> None:
    client = RegistryClient(registry)
    for bad in ("", "../2.75.0", ".hidden", "a/b"):
        assert refusal(lambda bad=bad: client.version_document("aws-layer:python", bad)) == (
            f"{bad!r}: not a version"
        )
    runtime = registry / "aws-lambda-layers" / "python"
    assert refusal(lambda: client.version_document("aws-layer:python", "2.75.1")) == (
        f"{runtime / '2.75.1.json'}: no such version of aws-layer:python; did you mean '2.75.0'?"
    )
    assert refusal(lambda: client.version_document("aws-layer:python", "9")) == (
        f"{runtime / '9.json'}: no such version of aws-layer:python; known: 2.74.0, 2.75.0"
    )
    older = client.release("aws-layer:python", "2.74.0")
    assert (older.sdk_version, older.source) == ("2.74.0", str(runtime / "2.74.0.json"))
    assert client.release("aws-layer:python").sdk_version == "2.75.0"


def test_a_document_in_the_wrong_runtime_directory(registry: Path) -> None:
    runtime = registry / "aws-lambda-layers" / "python"
    other = document("2.73.0", {"x86_64": [arn(PY, 10)]}, canonical="aws-layer:node")
    (runtime / "2.73.0.json").write_text(json.dumps(other))
    client = RegistryClient(registry)
    assert refusal(lambda: client.version_document("aws-layer:python", "2.73.0")) == (
        f"{runtime / '2.73.0.json'}: canonical is 'aws-layer:node', not 'aws-layer:python'"
    )


def test_a_file_where_the_checkout_should_be(tmp_path: Path) -> None:
    afile = tmp_path / "registry"
    afile.write_text("x")
    assert refusal(lambda: RegistryClient(afile).index()) == (
        f"{afile}: not a directory (expected a registry checkout)"
    )
    assert refusal(lambda: RegistryClient(tmp_path / "nope").index()) == (
        f"{tmp_path / 'nope'}: no such registry directory"
    )


def test_unknown_canonicals_name_what_is_known(registry: Path) -> None:
    client = RegistryClient(registry)
    assert refusal(lambda: client.latest("aws-layer:pyton")) == (
        f"{registry}: no layer 'aws-layer:pyton' in the registry; did you mean 'aws-layer:python'?"
    )
    assert refusal(lambda: client.latest("ruby")) == (
        f"{registry}: no layer 'ruby' in the registry; known: aws-layer:python"
    )


# ---------------------------------------------------------------- over HTTP (loopback)


@pytest.fixture
def http() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def test_http_index_refusals_word_for_word(http: FakeServer) -> None:
    index = http.base + "/aws-lambda-layers"
    for body, problem in (
        (b"<html>", "the registry index is not valid JSON"),
        (b"[1]", "the registry index is not a JSON object"),
    ):
        http.route("/aws-lambda-layers", Reply(body=body))
        with RegistryClient(http.base, ttl=0) as client:
            assert refusal(client.index) == f"{index}: {problem}"
    http.route("/aws-lambda-layers", Reply(body=b'{"aws-layer:python": 5}'))
    with RegistryClient(http.base, ttl=0) as client:
        assert refusal(client.index).startswith(f"{index}: not a layer registry index: $")


def test_http_redirects_are_followed_five_times_at_most(http: FakeServer) -> None:
    doc = document("2.75.0", {"x86_64": [arn(PY, 12)]})
    http.route("/aws-lambda-layers", Reply(302, b"", {"Location": "/r1"}))
    for i in range(1, 5):
        http.route(f"/r{i}", Reply(302, b"", {"Location": f"/r{i + 1}"}))
    http.route("/r5", Reply(body=json.dumps({"aws-layer:python": doc}).encode()))
    with RegistryClient(http.base, ttl=0) as client:  # 5 redirects: fine
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"
    http.route("/r5", Reply(302, b"", {"Location": "/r6"}))
    with RegistryClient(http.base, ttl=0) as client:
        assert refusal(client.index) == f"{http.base}/r6: more than 5 redirects"


def test_the_api_route_keeps_the_query_and_drops_the_fragment(http: FakeServer) -> None:
    doc = document("2.75.0", {"x86_64": [arn(PY, 12)]})
    body = json.dumps({"aws-layer:python": doc}).encode()
    http.route("/base/aws-lambda-layers", Reply(body=body))
    http.route("/static.json", Reply(body=body))
    for url in (f"{http.base}/base/?token=t1#frag", f"{http.base}/static.json?token=t2#frag"):
        with RegistryClient(url, ttl=0) as client:
            client.index()
    assert [r.path for r in http.requests] == [
        "/base/aws-lambda-layers?token=t1",
        "/static.json?token=t2",
    ]


def test_an_invalid_document_in_the_index_is_named(http: FakeServer) -> None:
    bad = {**document("2.75.0", {"x86_64": [arn(PY, 12)]}), "account_number": 7}
    http.route("/aws-lambda-layers", Reply(body=json.dumps({"aws-layer:python": bad}).encode()))
    with RegistryClient(http.base, ttl=0) as client:
        assert refusal(lambda: client.latest("aws-layer:python")).startswith(
            f"{http.base}: aws-layer:python: not a layer version document: $.account_number: "
        )
