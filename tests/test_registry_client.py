"""The registry reader on a checkout: document shapes, latest.json as the truth, errors.

Registries here are written by hand in the contract's shapes (``registry_docs``), the way
craft or a person writes them, so the reader is checked against the documented format and
not only against our own writer. HTTP is in ``test_registry_http.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from layer_builder.cli import main
from layer_builder.errors import RegistryError
from layer_builder.registry.reader import LayerRelease, RegistryClient
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
