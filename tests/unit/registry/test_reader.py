"""The registry reader on a checkout: document shapes, latest.json as the truth, errors.

Registries here are written by hand in the contract's shapes (``registry_docs``), the way
craft or a person writes them, so the reader is checked against the documented format and
not only against our own writer. HTTP is in ``test_reader_http.py``.
"""

from __future__ import annotations

import json
import locale
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from layer_builder.cli import main
from layer_builder.errors import RegistryError
from layer_builder.registry import layout, reader
from layer_builder.registry.layout import read_json_mapping, read_version_document, runtime_dirs
from layer_builder.registry.reader import LayerRelease, RegistryClient
from tests.helpers.api_server import ApiServer
from tests.helpers.http_server import FakeServer, Reply
from tests.helpers.registry_docs import arn, document, write_version

ACCOUNT = "943013980633"
PY = "SentryPythonServerlessSDK"

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
    "layer_name": PY,
    "regions": [
        {"region": "af-south-1", "version": "118"},
        {"region": "us-east-1", "version": "127"},
        {"region": "eu-central-1", "version": "127"},
    ],
}


def universal(version: str, v: int = 12) -> dict[str, Any]:
    arns = [arn(PY, v), arn(PY, v - 3, "eu-west-1")]
    return document(version, {"x86_64,arm64": arns}, shape="universal")


def per_arch(version: str, shape: Any = "per-arch") -> dict[str, Any]:
    return document(
        version,
        {
            "x86_64": [arn(PY, 12), arn(PY, 9, "eu-west-1")],
            "arm64": [arn(f"{PY}-arm64", 4), arn(f"{PY}-arm64", 2, "eu-west-1")],
        },
        shape=shape,
    )


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_version(root, universal("2.75.0"))
    node = document("8.1.0", {"x86_64,arm64": [arn("SentryNodeServerlessSDKv8", 3)]},
                    canonical="aws-layer:node")  # fmt: skip
    write_version(root, node, runtime_dir="node")
    return root


def test_universal_document_serves_both_architectures_with_one_layer(registry: Path) -> None:
    client = RegistryClient(registry)
    assert sorted(client.index()) == ["aws-layer:node", "aws-layer:python"]
    release = client.latest("aws-layer:python")
    assert isinstance(release, LayerRelease)
    assert release.sdk_version == "2.75.0" and release.architectures == ("x86_64", "arm64")
    assert client.layer_arn("aws-layer:python", "us-east-1", "arm64") == arn(PY, 12)
    assert client.layer_arn("aws-layer:python", "eu-west-1", "x86_64") == arn(PY, 9, "eu-west-1")
    # The aws-lambda-layers directory itself works too, as a str or a Path.
    node = RegistryClient(str(registry / "aws-lambda-layers")).latest("aws-layer:node")
    assert node.sdk_version == "8.1.0"


@pytest.mark.parametrize("shape", ["per-arch", "older"])
def test_per_arch_documents_give_each_architecture_its_own_layer(
    tmp_path: Path, shape: str
) -> None:
    doc = per_arch("2.75.0", shape)
    if shape == "older":
        # Older documents of this tool claimed both architectures beside the x86_64 layer;
        # the layers entries are the truth.
        assert doc["compatible_architectures"] == ["x86_64", "arm64"]
        assert "compatible_architectures" not in doc["layers"][1]
    write_version(tmp_path, doc)
    client = RegistryClient(tmp_path)
    assert client.layer_arn("aws-layer:python", "us-east-1", "x86_64") == arn(PY, 12)
    assert client.layer_arn("aws-layer:python", "us-east-1", "arm64") == arn(f"{PY}-arm64", 4)


def test_arm64_is_an_error_when_no_layer_serves_it(tmp_path: Path, capsys: Any) -> None:
    write_version(tmp_path, document("2.75.0", {"x86_64": [arn(PY, 12)]}, shape="universal"))
    with pytest.raises(RegistryError, match=r"has no layer that serves arm64 \(it serves: x86_64"):
        RegistryClient(tmp_path).layer_arn("aws-layer:python", "us-east-1", "arm64")
    argv = ["registry", "latest", "aws-layer:python", "--region", "us-east-1"]
    assert main([*argv, "--arch", "arm64", "--registry", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "serves arm64" in out.err
    assert main([*argv, "--registry", str(tmp_path)]) == 0
    assert capsys.readouterr().out == arn(PY, 12) + "\n"


def test_arn_uses_the_partition_of_the_region(tmp_path: Path) -> None:
    arns = [arn(PY, 2, "cn-north-1").replace(":aws:", ":aws-cn:"), arn(PY, 5, "us-gov-west-1")]
    write_version(tmp_path, document("2.75.0", {"x86_64": arns}, shape="universal"))
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
        (("aws-layer:python", "us-east-1", "riscv64"), r"has no layer that serves riscv64"),
    ],
)
def test_what_the_registry_lacks_is_a_clear_error(
    registry: Path, call: tuple[str, str, str], message: str
) -> None:
    with pytest.raises(RegistryError, match=message) as info:
        RegistryClient(registry).layer_arn(*call)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_another_writer_moves_latest_and_the_reader_follows(registry: Path) -> None:
    client = RegistryClient(registry)
    assert client.latest("aws-layer:python").sdk_version == "2.75.0"
    # craft (or a person) adds a version file and moves latest.json; same client, no wait.
    write_version(registry, universal("2.76.0", v=13))
    assert client.latest("aws-layer:python").sdk_version == "2.76.0"
    assert client.layer_arn("aws-layer:python", "us-east-1", "arm64") == arn(PY, 13)
    # The version that is not latest any more is still readable when asked for.
    assert client.release("aws-layer:python", "2.75.0").arn("us-east-1") == arn(PY, 12)
    with pytest.raises(RegistryError, match=r"2\.7\.0\.json: no such version .*did you mean"):
        client.version_document("aws-layer:python", "2.7.0")


def test_a_stale_index_json_left_by_older_versions_is_ignored(registry: Path) -> None:
    stale = {"aws-layer:python": universal("2.0.0", v=3)}
    (registry / "aws-lambda-layers" / "index.json").write_text(json.dumps(stale))
    client = RegistryClient(registry)
    assert sorted(client.index()) == ["aws-layer:node", "aws-layer:python"]
    assert client.latest("aws-layer:python").sdk_version == "2.75.0"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", r"2\.75\.0\.json: not valid JSON"),
        ("schema", r"2\.75\.0\.json: not a layer version document: \$\.regions\[0\]\.version"),
        ("dangle", r"latest\.json: links to 2\.75\.0\.json, which is missing"),
    ],
)
def test_a_corrupt_or_missing_version_file_is_reported(
    registry: Path, capsys: Any, damage: str, message: str
) -> None:
    # A stale index holding a good copy must not answer around the damage either.
    good = {"aws-layer:python": universal("2.75.0")}
    (registry / "aws-lambda-layers" / "index.json").write_text(json.dumps(good))
    path = registry / "aws-lambda-layers" / "python" / "2.75.0.json"
    if damage == "truncate":
        path.write_text(path.read_text()[:100])
    elif damage == "schema":
        doc = json.loads(path.read_text())
        doc["regions"][0]["version"] = 12
        path.write_text(json.dumps(doc))
    else:
        path.unlink()
    with pytest.raises(RegistryError, match=message):
        RegistryClient(registry).latest("aws-layer:python")
    for argv in (
        ["registry", "latest", "aws-layer:python", "--region", "us-east-1"],
        ["registry", "show", "aws-layer:python"],
    ):
        assert main([*argv, "--registry", str(registry)]) == 2, argv
        out = capsys.readouterr()
        assert out.out == "" and out.err.startswith("error: ") and out.err.count("\n") == 1
        assert "python/" in out.err and "Traceback" not in out.err


def test_a_missing_registry_is_an_error_naming_it(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "registy"  # a typo
    with pytest.raises(RegistryError, match=r"registy: no such registry directory"):
        RegistryClient(missing).index()
    with pytest.raises(RegistryError, match=r"no registry here \(expected .*aws-lambda-layers/\)"):
        RegistryClient(tmp_path).index()
    argv = ["registry", "latest", "aws-layer:python", "--region", "us-east-1"]
    assert main([*argv, "--registry", str(missing)]) == 2
    assert f"error: {missing}: no such registry directory" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "error: registry: no such registry directory (the default" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "registry").exists()  # nothing created


def test_reads_a_sentry_checkout_without_layers(tmp_path: Path) -> None:
    write_version(tmp_path, SENTRY_DOC)
    client = RegistryClient(tmp_path)
    release = client.latest("aws-layer:python")
    # No compatible_architectures: read as Sentry's integration reads it, any architecture.
    assert release.architectures == ("x86_64", "arm64")
    assert release.layers[0].declared is False
    assert client.layer_arn("aws-layer:python", "af-south-1") == arn(PY, 118, "af-south-1")
    assert client.layer_arn("aws-layer:python", "af-south-1", "arm64") == arn(PY, 118, "af-south-1")


def test_sentry_document_declaring_arm64_serves_both_architectures(tmp_path: Path) -> None:
    write_version(tmp_path, {**SENTRY_DOC, "compatible_architectures": ["x86_64", "arm64"]})
    client = RegistryClient(tmp_path)
    assert client.layer_arn("aws-layer:python", "us-east-1", "arm64") == client.layer_arn(
        "aws-layer:python", "us-east-1", "x86_64"
    )


def test_registry_show_prints_the_latest_or_a_named_version(registry: Path, capsys: Any) -> None:
    write_version(registry, universal("2.76.0", v=13))
    assert main(["registry", "show", "aws-layer:python", "--registry", str(registry)]) == 0
    assert json.loads(capsys.readouterr().out)["sdk_version"] == "2.76.0"
    argv = ["registry", "show", "aws-layer:python", "--version", "2.75.0"]
    assert main([*argv, "--registry", str(registry)]) == 0
    assert json.loads(capsys.readouterr().out)["sdk_version"] == "2.75.0"
    assert main(["registry", "show", "--registry", str(registry)]) == 0
    index = json.loads(capsys.readouterr().out)
    assert {k: v["sdk_version"] for k, v in index.items()} == {
        "aws-layer:node": "8.1.0",
        "aws-layer:python": "2.76.0",
    }


def test_a_runtime_without_latest_is_named_when_asked_for(registry: Path) -> None:
    node = registry / "aws-lambda-layers" / "node" / "latest.json"
    os.unlink(node)
    with pytest.raises(RegistryError, match=r"no layer 'aws-layer:node'.*\(node/ has no latest"):
        RegistryClient(registry).latest("aws-layer:node")


# ------------------------------------------------------------------------------------------------
# The registry reader's refusals word for word: files that are not JSON objects, version
# names, a canonical in the wrong runtime directory, a file where a checkout should be, and
# hidden entries skipped.


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
def two_releases(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    for version, v in (("2.74.0", 11), ("2.75.0", 12)):
        write_version(root, document(version, {"x86_64,arm64": [arn(PY, v)]}))
    return root


def test_version_names_word_for_word(two_releases: Path) -> None:
    client = RegistryClient(two_releases)
    for bad in ("", "../2.75.0", ".hidden", "a/b"):
        assert refusal(lambda bad=bad: client.version_document("aws-layer:python", bad)) == (
            f"{bad!r}: not a version"
        )
    runtime = two_releases / "aws-lambda-layers" / "python"
    assert refusal(lambda: client.version_document("aws-layer:python", "2.75.1")) == (
        f"{runtime / '2.75.1.json'}: no such version of aws-layer:python; did you mean '2.75.0'?"
    )
    assert refusal(lambda: client.version_document("aws-layer:python", "9")) == (
        f"{runtime / '9.json'}: no such version of aws-layer:python; known: 2.74.0, 2.75.0"
    )
    older = client.release("aws-layer:python", "2.74.0")
    assert (older.sdk_version, older.source) == ("2.74.0", str(runtime / "2.74.0.json"))
    assert client.release("aws-layer:python").sdk_version == "2.75.0"


def test_a_document_in_the_wrong_runtime_directory(two_releases: Path) -> None:
    runtime = two_releases / "aws-lambda-layers" / "python"
    other = document("2.73.0", {"x86_64": [arn(PY, 10)]}, canonical="aws-layer:node")
    (runtime / "2.73.0.json").write_text(json.dumps(other))
    client = RegistryClient(two_releases)
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


def test_unknown_canonicals_name_what_is_known(two_releases: Path) -> None:
    client = RegistryClient(two_releases)
    assert refusal(lambda: client.latest("aws-layer:pyton")) == (
        f"{two_releases}: no layer 'aws-layer:pyton' in the registry; "
        "did you mean 'aws-layer:python'?"
    )
    assert refusal(lambda: client.latest("ruby")) == (
        f"{two_releases}: no layer 'ruby' in the registry; known: aws-layer:python"
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


# ------------------------------------------------------------------------------------------------
# The registry client's observable details: which file
# a release names as its source, the hints of an unknown canonical or version, a canonical
# claimed by two runtime directories, sessions it owns or borrows, timeouts, retries, redirects
# and the messages of a failed fetch.


def python_doc(version: str, v: int = 12) -> dict[str, Any]:
    return document(version, {"x86_64,arm64": [arn(PY, v)]})


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_version(root, python_doc("2.75.0"))
    node = document("8.1.0", {"x86_64": [arn("SentryNodeServerlessSDKv8", 3)]},
                    canonical="aws-layer:node")  # fmt: skip
    write_version(root, node, runtime_dir="node")
    return root


# ---------------------------------------------------------------- a registry directory


def test_a_release_names_the_version_file_latest_json_points_at(checkout: Path) -> None:
    target = checkout / "aws-lambda-layers" / "python" / "2.75.0.json"
    client = RegistryClient(checkout)
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


def test_two_runtime_directories_claiming_one_canonical(checkout: Path) -> None:
    write_version(checkout, python_doc("2.76.0"), runtime_dir="python-copy")
    layers = checkout / "aws-lambda-layers"
    assert refusal(RegistryClient(checkout).index) == (
        f"{layers / 'python-copy' / 'latest.json'}: canonical 'aws-layer:python' is also "
        f"{layers / 'python' / 'latest.json'}"
    )


def test_runtimes_without_latest_are_listed_after_every_known_canonical(checkout: Path) -> None:
    layers = checkout / "aws-lambda-layers"
    for name in ("java", "ruby"):  # "java" sorts before the released runtimes
        (layers / name).mkdir()
        (layers / name / "base.json").write_text("{}")
    client = RegistryClient(checkout)
    assert sorted(client.index()) == ["aws-layer:node", "aws-layer:python"]
    assert refusal(lambda: client.latest("ruby")) == (
        f"{checkout}: no layer 'ruby' in the registry; known: aws-layer:node, aws-layer:python "
        "(java/, ruby/ has no latest.json)"
    )


def test_an_unknown_version_lists_the_five_newest_files_but_not_base_json(checkout: Path) -> None:
    for minor in range(70, 75):
        write_version(checkout, python_doc(f"2.{minor}.0"), link=False)
    runtime = checkout / "aws-lambda-layers" / "python"
    (runtime / "base.json").write_text("{}")
    client = RegistryClient(checkout)
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
    checkout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layers = checkout / "aws-lambda-layers"
    (layers / "index.json").write_text("{}")
    (layers / "README.md").write_text("notes")
    with caplog.at_level(logging.DEBUG, logger=layout.__name__):
        RegistryClient(checkout).index()
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


# ------------------------------------------------------------------------------------------------
# The registry reader's TTL cache over HTTP at its boundary: the index read at t is reused
# until t + ttl and read again exactly at t + ttl. A real HTTP server stands in for the registry's
# API (tests/helpers/api_server.py); the clock is injected.


@pytest.fixture
def served_registry(tmp_path: Path) -> Iterator[tuple[Path, ApiServer]]:
    root = tmp_path / "registry"
    write_version(root, document("2.75.0", {"x86_64,arm64": [arn(PY, 12)]}))
    server = ApiServer(root)
    yield root, server
    server.close()


def test_the_cached_index_expires_exactly_at_the_ttl(
    served_registry: tuple[Path, ApiServer],
) -> None:
    root, server = served_registry
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


def test_ttl_zero_reads_every_time(served_registry: tuple[Path, ApiServer]) -> None:
    root, server = served_registry
    with RegistryClient(server.url, ttl=0, clock=lambda: 5.0) as client:
        assert client.latest("aws-layer:python").sdk_version == "2.75.0"
        write_version(root, document("2.76.0", {"x86_64,arm64": [arn(PY, 13)]}))
        assert client.latest("aws-layer:python").sdk_version == "2.76.0"  # same instant
    assert len(server.requests) == 2
