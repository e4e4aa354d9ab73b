"""The layer's CycloneDX SBOM: built by a real pip install from a local package index, valid
against the CycloneDX schema, listing every package (version, license, the sha256 of the
wheel served), the extension binaries and our own files; summarised in the registry
(`packages`), written beside the version document and printed by `registry show --sbom`."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from layer_builder.build.sbom import layer_sbom, release_sbom, validation_error
from layer_builder.cli import main
from layer_builder.model import BuildManifest, BundledPackage, ExtensionInfo
from layer_builder.registry.reader import RegistryClient
from tests.helpers.api_server import ApiServer
from tests.helpers.elf_fixtures import write_elf
from tests.helpers.package_index import PackageIndex, make_wheel, sha256_of, write_tiny_config
from tests.helpers.paths import REPO
from tests.helpers.registry_docs import arn as layer_arn
from tests.helpers.registry_docs import document, write_version

RELAY = REPO / "extensions" / "relay.yml"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinysdk", "1.0.0", requires=["tinydep>=1.0"])
    make_wheel(wheels, "tinydep", "1.0.0", license_expression="Apache-2.0")
    index = PackageIndex(wheels)
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    bins = tmp_path / "bin"
    bins.mkdir()
    binaries = {
        "x86_64": write_elf(bins / "relay-x86", "x86_64", payload=b"x86" * 20),
        "arm64": write_elf(bins / "relay-arm", "arm64", payload=b"arm" * 20),
    }
    config = write_tiny_config(tmp_path, f"Tiny{uuid.uuid4().hex[:8]}", extension=RELAY)
    yield config, wheels, binaries
    index.close()


def build(config: Path, out: Path, binaries: dict[str, Path], *extra: str) -> dict[str, Any]:
    files = [a for arch, p in binaries.items() for a in ("--extension-file", f"{arch}={p}")]
    code = main(
        ["build", str(config), "--version", "1.0.0", "--out", str(out), "-q", *files, *extra]
    )
    assert code == 0
    (manifest,) = out.glob("*.zip.json")
    return dict(json.loads(manifest.read_text()))


def by_type(sbom: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in sbom["components"] if c["type"] == kind]


def sha256(c: dict[str, Any]) -> str:
    (digest,) = [h["content"] for h in c["hashes"] if h["alg"] == "SHA-256"]
    return str(digest)


@pytest.mark.slow
def test_build_records_a_valid_sbom_of_everything_in_the_layer(
    world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, wheels, binaries = world
    manifest = build(config, tmp_path / "out", binaries)
    sbom = manifest["sbom"]
    assert validation_error(sbom) is None
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"

    libraries = {c["name"]: c for c in by_type(sbom, "library")}
    assert sorted(libraries) == ["tinydep", "tinysdk"]  # every package pip installed
    for name, lic in (("tinysdk", "MIT"), ("tinydep", "Apache-2.0")):
        c = libraries[name]
        assert c["version"] == "1.0.0" and c["purl"] == f"pkg:pypi/{name}@1.0.0"
        assert sha256(c) == sha256_of(wheels / f"{name}-1.0.0-py3-none-any.whl")
        assert c["licenses"] == [{"license": {"id": lic}}]
        (ref,) = c["externalReferences"]
        assert ref["url"].endswith(f"/files/{name}-1.0.0-py3-none-any.whl")

    extensions = {c["properties"][0]["value"]: c for c in by_type(sbom, "application")}
    for arch, path in binaries.items():
        c = extensions[arch]
        assert sha256(c) == sha256_of(path) and c["name"] == "sentry-lambda-extension"
        props = {p["name"]: p["value"] for p in c["properties"]}
        assert props["layer-builder:source"] == str(path)

    files = {c["name"]: c for c in by_type(sbom, "file")}
    assert sha256(files["python/tiny_wrapper.py"]) == sha256_of(tmp_path / "wrapper.py")
    assert "extensions/sentry-lambda-extension" in files  # the launcher we write
    zip_path = tmp_path / "out" / manifest["zip_file"]
    assert sha256(sbom["metadata"]["component"]) == sha256_of(zip_path)

    # The validator is real: a document that breaks the schema is refused.
    broken = copy.deepcopy(sbom)
    broken["components"][0]["hashes"][0]["alg"] = "SHA-999"
    assert validation_error(broken) is not None

    # Deterministic: a rebuild elsewhere gives the same SBOM.
    again = build(config, tmp_path / "again", binaries)
    assert again["sbom"] == sbom


@pytest.mark.slow
def test_publish_puts_packages_and_the_sbom_in_the_registry(
    world: Any, aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, binaries = world
    manifest = build(config, tmp_path / "dist", binaries)
    registry = tmp_path / "registry"
    code = main(
        ["publish", str(config), "--version", "1.0.0", "--dist", str(tmp_path / "dist"),
         "--registry", str(registry), "--regions", "us-east-1", "-q"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    runtime = registry / "aws-lambda-layers" / "tiny"
    doc = json.loads((runtime / "1.0.0.json").read_text())
    assert doc["packages"] == [
        {"name": "tinydep", "version": "1.0.0", "purl": "pkg:pypi/tinydep@1.0.0"},
        {"name": "tinysdk", "version": "1.0.0", "purl": "pkg:pypi/tinysdk@1.0.0"},
    ]
    assert doc["sbom"] == "sbom/1.0.0.cdx.json"
    assert json.loads((runtime / doc["sbom"]).read_text()) == manifest["sbom"]
    capsys.readouterr()

    code = main(["registry", "show", "aws-layer:tiny", "--version", "1.0.0", "--sbom",
                 "--registry", str(registry)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out) == manifest["sbom"]

    # The API server passes the new fields through; the reader ignores what it does not use.
    server = ApiServer(registry)
    try:
        with RegistryClient(server.url) as client:
            served = client.index()["aws-layer:tiny"]
            assert served["packages"] == doc["packages"] and server.errors == []
            assert client.latest("aws-layer:tiny").sdk_version == "1.0.0"
    finally:
        server.close()

    # A second publish of the same build rewrites nothing.
    before = {p: p.read_bytes() for p in runtime.rglob("*.json") if not p.is_symlink()}
    code = main(
        ["publish", str(config), "--version", "1.0.0", "--dist", str(tmp_path / "dist"),
         "--registry", str(registry), "--regions", "us-east-1", "-q"]
    )  # fmt: skip
    assert code == 0
    assert {p: p.read_bytes() for p in before} == before


def node_tree(root: Path, packages: dict[str, tuple[str, str]]) -> None:
    """A Node layer tree as npm leaves it: package-lock.json with integrity and license."""
    lock = {"": {"name": "sentry-lambda-layer"}}
    for name, (version, lic) in packages.items():
        digest = base64.b64encode(hashlib.sha512(name.encode()).digest()).decode()
        lock[f"node_modules/{name}"] = {
            "version": version,
            "resolved": f"https://registry.npmjs.org/{name}/-/x-{version}.tgz",
            "integrity": f"sha512-{digest}",
            "license": lic,
        }
    (root / "nodejs").mkdir(parents=True)
    text = json.dumps({"lockfileVersion": 3, "packages": lock})
    (root / "nodejs" / "package-lock.json").write_text(text)


def test_per_arch_layers_merge_into_one_release_sbom(tmp_path: Path) -> None:
    pkgs = {"@sentry/node": ("10.1.0", "MIT"), "import-in-the-middle": ("1.4.0", "Apache-2.0")}
    node_tree(tmp_path, pkgs)
    bundled = [BundledPackage(n, v) for n, (v, _) in pkgs.items()]
    manifests = []
    for arch, name, digit in (("x86_64", "L", "1"), ("arm64", "L-arm64", "2")):
        ext = ExtensionInfo("relay", "25.1.0", digit * 64, "https://x/relay", arch, "relay/r")
        sbom = layer_sbom(
            root=tmp_path, family="node", layer_name=name, version="10.1.0",
            zip_sha256=digit * 64, packages=bundled, extensions=[ext], own_files=[], epoch=0,
        )  # fmt: skip
        scoped = next(c for c in sbom["components"] if c["name"] == "node")
        assert scoped["group"] == "@sentry" and scoped["purl"] == "pkg:npm/%40sentry/node@10.1.0"
        (digest,) = scoped["hashes"]
        assert digest == {"alg": "SHA-512", "content": hashlib.sha512(b"@sentry/node").hexdigest()}
        assert scoped["licenses"] == [{"license": {"id": "MIT"}}]
        manifests.append(BuildManifest.from_dict({**MANIFEST, "layer_name": name, "sbom": sbom}))
    merged, packages = release_sbom("node", manifests)
    assert merged is not None and validation_error(merged) is None
    refs = [c["bom-ref"] for c in merged["components"]]
    assert len(refs) == len(set(refs))  # each package once
    assert {"layer:L-arm64@10.1.0", "extension:relay@25.1.0:arm64"} <= set(refs)
    assert [p["purl"] for p in packages] == [
        "pkg:npm/%40sentry/node@10.1.0", "pkg:npm/import-in-the-middle@1.4.0"
    ]  # fmt: skip

    # Manifests of older builds carry no SBOM: the summary comes from their packages.
    old = [BuildManifest.from_dict({**MANIFEST, "packages": [{"name": "urllib3", "version": "2"}]})]
    assert release_sbom("python", old) == (
        None, ({"name": "urllib3", "version": "2", "purl": "pkg:pypi/urllib3@2"},)
    )  # fmt: skip


MANIFEST: dict[str, Any] = {
    "layer_name": "L", "canonical": "aws-layer:node", "version": "10.1.0",
    "architectures": ["x86_64"], "layout": "per-arch", "compatible_runtimes": ["nodejs22.x"],
    "description": "d", "license": "MIT", "zip_file": "l.zip", "sha256": "0" * 64,
    "code_sha256": "x", "zip_size": 1, "unzipped_size": 1, "file_count": 1,
    "sdk_name": "@sentry/aws-serverless", "sdk_version": "10.1.0", "extensions": [],
    "source_date_epoch": 0,
}  # fmt: skip


def test_registry_show_sbom_of_a_release_without_one_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry"
    write_version(root, document("2.74.0", {"x86_64,arm64": [layer_arn("Sdk", 1)]}))
    argv = ["registry", "show", "aws-layer:python", "--sbom", "--registry", str(root)]
    assert main(argv) == 2
    assert "names no SBOM" in capsys.readouterr().err
    assert main([*argv[:2], "--sbom", "--registry", str(root)]) == 2
    assert "name the CANONICAL entry" in capsys.readouterr().err
    # The schema keeps `sbom` inside the runtime directory.
    bad = document("2.75.0", {"x86_64,arm64": [layer_arn("Sdk", 2)]})
    write_version(root, {**bad, "sbom": "../../secrets.json"})
    assert main(argv) == 2
    assert "not a layer version document: $.sbom" in capsys.readouterr().err
