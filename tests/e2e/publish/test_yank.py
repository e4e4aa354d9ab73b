"""`layer-builder yank|unyank` through the CLI against moto's server: the registry links, the
documents readers see (directly and through the API server), `registry latest`,
`function enable`, the permissions in AWS, and the exit codes of bad input and failed regions."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from layer_builder.config import LayerConfig
from layer_builder.model import BuildManifest, ReleaseVersion
from layer_builder.registry.reader import RegistryClient
from tests.helpers.api_server import ApiServer
from tests.helpers.cli import run_cli
from tests.helpers.faultproxy import FaultProxy, Faults
from tests.helpers.registry_docs import arn as layer_arn
from tests.helpers.registry_docs import document, write_version

REGIONS = "us-east-1,eu-west-1"
RELEASES = ("2.73.0", "2.74.0", "2.75.0")
REASON = "breaks handlers that return generators"


def yank(
    capsys: pytest.CaptureFixture[str], registry: Path, version: str, *extra: str
) -> tuple[int, str, str]:
    """`yank aws-layer:python VERSION --reason REASON --registry REGISTRY [extra]`."""
    argv = ("yank", "aws-layer:python", version, "--reason", REASON, "--registry", str(registry))
    return run_cli(capsys, *argv, *extra)


@pytest.fixture
def released(
    aws_env: str,
    make_config: Callable[..., LayerConfig],
    make_layers: Callable[..., list[tuple[Path, BuildManifest]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[LayerConfig, Path, str]:
    """Three universal releases published to two regions of moto, recorded in a registry."""
    cfg = make_config(layout="universal", publish="max_workers: 4\nattempts: 2\n")
    registry = tmp_path / "registry"
    for text in RELEASES:
        (mpath, _), *_ = make_layers(cfg, ReleaseVersion.parse(text), extra=text.encode())
        code, _, err = run_cli(
            capsys, "publish", str(cfg.path), "--version", text, "--dist", str(mpath.parent),
            "--registry", str(registry), "--regions", REGIONS, "-q",
        )  # fmt: skip
        assert code == 0, err
    return cfg, registry, aws_env


def link(registry: Path, name: str) -> str | None:
    path = registry / "aws-lambda-layers/python" / name
    return os.readlink(path) if os.path.lexists(path) else None


def doc(registry: Path, version: str) -> dict[str, Any]:
    return json.loads((registry / f"aws-lambda-layers/python/{version}.json").read_text())


def policy_sids(endpoint: str, region: str, arn: str) -> list[str]:
    client = boto3.client("lambda", region_name=region, endpoint_url=endpoint)
    name, version = arn.split(":")[-2], int(arn.split(":")[-1])
    try:
        out = client.get_layer_version_policy(LayerName=name, VersionNumber=version)
    except client.exceptions.ResourceNotFoundException:
        return []
    return [s["Sid"] for s in json.loads(out["Policy"])["Statement"]]


def arns(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["region"], r["arn"]) for e in document["layers"] for r in e["regions"]]


def test_yank_moves_links_back_revokes_and_readers_skip_it(
    released: tuple[LayerConfig, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, registry, endpoint = released
    assert link(registry, "latest.json") == "2.75.0.json"
    before = doc(registry, "2.75.0")
    assert all(policy_sids(endpoint, r, a) == ["public"] for r, a in arns(before))

    code, out, err = yank(capsys, registry, "2.75.0", "--revoke-permissions", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["yanked"] and result["latest_version"] == "2.74.0"

    # The document stays, marked; nothing else in it changed.
    after = doc(registry, "2.75.0")
    assert after["yanked"]["reason"] == REASON and after["yanked"]["at"].endswith("Z")
    assert {k: v for k, v in after.items() if k != "yanked"} == before
    # Links: back to the newest older release not yanked; 2.75.json has none left.
    assert link(registry, "latest.json") == "2.74.0.json"
    assert link(registry, "2.json") == "2.74.0.json"
    assert link(registry, "2.75.json") is None
    assert link(registry, "2.74.json") == "2.74.0.json"
    static = json.loads((registry / "aws-lambda-layers.json").read_text())
    assert static["aws-layer:python"]["sdk_version"] == "2.74.0"

    # AWS: the versions are still there, no longer public; the older release still is.
    for region, arn in arns(before):
        assert policy_sids(endpoint, region, arn) == []
        name, number = arn.split(":")[-2], int(arn.split(":")[-1])
        client = boto3.client("lambda", region_name=region, endpoint_url=endpoint)
        assert client.get_layer_version(LayerName=name, VersionNumber=number)["Version"] == number
    assert all(policy_sids(endpoint, r, a) == ["public"] for r, a in arns(doc(registry, "2.74.0")))

    # Readers: `registry latest` gives 2.74.0; asking for 2.75.0 says why not.
    code, out, err = run_cli(
        capsys, "registry", "latest", "aws-layer:python", "--region", "eu-west-1",
        "--registry", str(registry),
    )  # fmt: skip
    want = dict(arns(doc(registry, "2.74.0")))["eu-west-1"]
    assert code == 0 and out.strip() == want, err
    code, out, err = run_cli(
        capsys, "registry", "latest", "aws-layer:python", "--region", "eu-west-1",
        "--registry", str(registry), "--version", "2.75.0",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "2.75.0 was yanked" in err and REASON in err
    assert "use 2.74.0" in err

    # The API server (upstream's view) serves 2.74.0, with no scan errors.
    server = ApiServer(registry)
    try:
        with RegistryClient(server.url) as client:
            assert client.latest("aws-layer:python").sdk_version == "2.74.0"
        assert server.errors == []
    finally:
        server.close()

    # Running it again changes nothing.
    before = state(registry)
    code, out, err = yank(capsys, registry, "2.75.0", "--revoke-permissions", "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["written"] == [] and not again["document_changed"]
    assert all(not r["removed"] for r in again["permissions"])
    assert state(registry) == before

    # Publishing the yanked release again is refused before any AWS write.
    code, _, err = run_cli(
        capsys, "publish", str(cfg.path), "--version", "2.75.0", "--dist",
        str(registry.parent / "dist"), "--registry", str(registry), "--regions", REGIONS,
    )  # fmt: skip
    assert code == 2 and "is yanked" in err and "unyank" in err

    # unyank: the links come forward again; the field is gone.
    code, out, err = run_cli(
        capsys, "unyank", "aws-layer:python", "2.75.0", "--registry", str(registry)
    )
    assert code == 0, err
    assert "yanked" not in doc(registry, "2.75.0")
    for name in ("latest.json", "2.json", "2.75.json"):
        assert link(registry, name) == "2.75.0.json"
    assert link(registry, "2.74.json") == "2.74.0.json"


def test_function_enable_skips_a_yanked_release_and_refuses_one_named(
    released: tuple[LayerConfig, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, registry, endpoint = released
    yanked_arn = dict(arns(doc(registry, "2.75.0")))["us-east-1"]
    code, _, err = yank(capsys, registry, "2.75.0")
    assert code == 0, err
    iam = boto3.client("iam", region_name="us-east-1")
    trust = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda"}}
    role = iam.create_role(
        RoleName=f"lb-yank-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}),
    )["Role"]["Arn"]
    lam = boto3.client("lambda", region_name="us-east-1")
    fn, on_yanked = f"fn-{uuid.uuid4().hex[:10]}", f"fn-{uuid.uuid4().hex[:10]}"
    for name, layers in ((fn, []), (on_yanked, [yanked_arn])):
        lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
            Code={"ZipFile": _zip()}, Layers=layers,
        )  # fmt: skip
    dsn = "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42"
    common = ("--region", "us-east-1", "--registry", str(registry), "--dsn", dsn)
    code, _, err = run_cli(capsys, "function", "enable", fn, *common, "--version", "2.75.0")
    assert code == 2 and "2.75.0 was yanked" in err and REASON in err
    assert not lam.get_function_configuration(FunctionName=fn).get("Layers")

    code, _, err = run_cli(capsys, "function", "enable", fn, *common)
    assert code == 0, err
    attached = [x["Arn"] for x in lam.get_function_configuration(FunctionName=fn)["Layers"]]
    assert attached == [dict(arns(doc(registry, "2.74.0")))["us-east-1"]]

    # A function that already carries the yanked layer: `update` moves it to 2.74.0.
    code, _, err = run_cli(capsys, "function", "update", on_yanked, *common[:4])
    assert code == 0, err
    layers = lam.get_function_configuration(FunctionName=on_yanked)["Layers"]
    assert [x["Arn"] for x in layers] == attached


def _zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return 1\n")
    return buf.getvalue()


def test_bad_input_exits_2_and_changes_nothing(
    released: tuple[LayerConfig, Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, registry, _ = released
    before = state(registry)

    def refused(*argv: str) -> str:
        code, out, err = run_cli(capsys, *argv, "--registry", str(registry))
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("error: ")
        return err

    assert "no release 2.76.0" in refused("yank", "aws-layer:python", "2.76.0", "--reason", "x")
    assert "aws-layer:nope" in refused("yank", "aws-layer:nope", "2.75.0", "--reason", "x")
    assert "--reason" in refused("yank", "aws-layer:python", "2.75.0", "--reason", " ")
    assert "--reason" in refused("yank", "aws-layer:python", "2.75.0")
    assert "not a release version" in refused("yank", "aws-layer:python", "x", "--reason", "y")
    # Credentials are checked before the registry changes.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    err = refused("yank", "aws-layer:python", "2.75.0", "--reason", "x", "--revoke-permissions")
    assert "credentials" in err
    assert state(registry) == before
    # The last release not yanked cannot be yanked: latest.json would point at nothing.
    for version in ("2.75.0", "2.74.0"):
        code, _, err = yank(capsys, registry, version)
        assert code == 0, err
    before = state(registry)
    err = refused("yank", "aws-layer:python", "2.73.0", "--reason", "x")
    assert "latest.json would point at nothing" in err
    assert state(registry) == before


def state(registry: Path) -> tuple[dict[Path, bytes], dict[Path, str]]:
    """Every file's bytes and every link's target under ``registry``."""
    files = {p: p.read_bytes() for p in registry.rglob("*.json") if not p.is_symlink()}
    return files, {p: os.readlink(p) for p in registry.rglob("*.json") if p.is_symlink()}


def test_a_failed_region_exits_3_naming_it_and_the_rerun_finishes(
    released: tuple[LayerConfig, Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, registry, endpoint = released
    with FaultProxy(endpoint, Faults(down_regions={"eu-west-1"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = yank(capsys, registry, "2.75.0", "--revoke-permissions")
    assert code == 3
    last = err.splitlines()[-1]
    assert last.startswith("error: revoking permissions incomplete") and "eu-west-1" in last
    assert "us-east-1" not in last
    # The registry is yanked already; AWS is half done.
    assert link(registry, "latest.json") == "2.74.0.json"
    regions = dict(arns(doc(registry, "2.75.0")))
    assert policy_sids(endpoint, "us-east-1", regions["us-east-1"]) == []
    assert policy_sids(endpoint, "eu-west-1", regions["eu-west-1"]) == ["public"]

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    code, _, err = yank(capsys, registry, "2.75.0", "--revoke-permissions")
    assert code == 0, err
    assert policy_sids(endpoint, "eu-west-1", regions["eu-west-1"]) == []


def test_readers_skip_a_yanked_release_another_writer_linked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """latest.json moved onto a yanked release by hand (or by a tool that does not know the
    field): a directory reader falls back to the newest release not yanked and says why; over
    HTTP, where only the latest is served, the reader refuses it with the reason."""
    root = tmp_path / "registry"
    for number, version in enumerate(("2.74.0", "2.75.0", "2.76.0rc1"), start=1):
        doc = document(version, {"x86_64,arm64": [layer_arn("SentryPythonServerlessSDK", number)]})
        if version == "2.75.0":
            doc["yanked"] = {"reason": REASON, "at": "2026-12-07T10:00:00.000Z"}
        write_version(root, doc, link=version == "2.75.0")
    argv = ("registry", "latest", "aws-layer:python", "--region", "us-east-1")
    code, out, err = run_cli(capsys, *argv, "--registry", str(root))
    assert code == 0 and out.strip() == layer_arn("SentryPythonServerlessSDK", 1), err
    assert "2.75.0 was yanked" in caplog.text and "using 2.74.0.json instead" in caplog.text

    server = ApiServer(root)
    try:
        code, out, err = run_cli(capsys, *argv, "--registry", server.url)
    finally:
        server.close()
    assert code == 2 and out == ""
    assert "2.75.0 was yanked" in err and REASON in err and "serves no other release" in err


def test_yank_and_unyank_order_a_python_layer_by_pep_440(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``2.75.0-post1`` is PEP 440's post-release of 2.75.0 (newer), not a SemVer prerelease:
    yanking it moves the links back to 2.75.0, and unyanking moves them forward again."""
    root = tmp_path / "registry"
    for number, version in enumerate(("2.74.0", "2.75.0", "2.75.0-post1"), start=1):
        doc = document(version, {"x86_64,arm64": [layer_arn("SentryPythonServerlessSDK", number)]})
        write_version(root, doc)
    links = root / "aws-lambda-layers" / "python"
    assert os.readlink(links / "latest.json") == "2.75.0-post1.json"

    code, _, err = yank(capsys, root, "2.75.0-post1")
    assert code == 0, err
    assert os.readlink(links / "latest.json") == "2.75.0.json"
    assert os.readlink(links / "2.75.json") == "2.75.0.json"

    code, out, err = run_cli(
        capsys, "unyank", "aws-layer:python", "2.75.0-post1", "--registry", str(root)
    )
    assert code == 0, err
    # Links move back onto the release; its permissions are not the registry's to restore.
    assert "unyank does not restore permissions" in out
    assert "re-run `layer-builder publish CONFIG --version 2.75.0-post1`" in out
    assert os.readlink(links / "latest.json") == "2.75.0-post1.json"
    assert os.readlink(links / "2.75.json") == "2.75.0-post1.json"
