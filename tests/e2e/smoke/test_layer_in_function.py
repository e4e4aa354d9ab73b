"""The layer as it runs inside a user's function, through `layer-builder smoke`: the
reference layers built from real pip / npm installs with the sandbox's stand-in extension.

- the cold invocation's error reaches Sentry (the sample raises on invocations 1 and 3);
- where the extension runs, events travel through its local address (the stand-in forwards
  them and marks them); where the layer has no binary for the machine, the launcher stands
  aside, the function still starts and its errors go to Sentry directly;
- Node layers work enabled both ways Sentry enables them (`-r` and `--import`), and a layer
  without its preload fails with the line Node printed.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from layer_builder.smoke.runner import SmokeOptions, host_architecture, smoke_zip
from tests.helpers.smoke_layers import build, smoke

pytestmark = pytest.mark.slow

ARCH = host_architecture()
OTHER = "arm64" if ARCH == "x86_64" else "x86_64"
QEMU = shutil.which(f"qemu-{'aarch64' if OTHER == 'arm64' else 'x86_64'}") is not None
needs_qemu = pytest.mark.skipif(not QEMU, reason=f"qemu-user for {OTHER} not installed")
needs_node = pytest.mark.skipif(
    shutil.which("npm") is None or shutil.which("node") is None, reason="no npm/node"
)
EVENT = {"type": "event", "exceptions": ["SmokeTestError"]}


def events(layer: object, path: str) -> list[dict[str, object]]:
    return [{**EVENT, "path": path}] * 2


@pytest.fixture(scope="module")
def python_universal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("py-universal") / "dist"
    return build("sentry-python.yml", "2.75.0", out, ["x86_64", "arm64"])


@needs_qemu
def test_python_layer_sends_through_the_extension_on_both_architectures(
    python_universal: Path, tmp_path: Path
) -> None:
    code, doc, err = smoke(str(python_universal), "--no-baseline", cwd=tmp_path)
    assert code == 0, err
    layers = doc["layers"]
    assert [la["architecture"] for la in layers] == ["x86_64", "arm64"]
    for layer in layers:
        assert [i["outcome"] for i in layer["invocations"]] == ["error", "response", "error"]
        assert layer["sentry_events"] == events(layer, "extension")
        assert layer["extensions"][0]["events"] == ["INVOKE", "SHUTDOWN"]


@needs_qemu
def test_an_arm64_function_starts_with_an_x86_64_only_layer(tmp_path: Path) -> None:
    # What a real release is today: Relay has no aarch64 build, so the layer carries x86_64
    # only, and Sentry's integration still attaches it to arm64 functions.
    zip_path = build("sentry-python.yml", "2.75.0", tmp_path / "dist", ["x86_64"])
    code, doc, err = smoke(str(zip_path), "--no-baseline", "--arch", "arm64", cwd=tmp_path)
    assert code == 0, err
    (layer,) = doc["layers"]
    assert layer["architecture"] == "arm64" and layer["status"] == "passed"
    (ext,) = layer["extensions"]
    assert (ext["name"], ext["events"], ext["received"]) == (
        "sentry-lambda-extension",
        ["SHUTDOWN"],
        ["SHUTDOWN"],
    )
    # The first invocation's error, and the third's, went straight to Sentry.
    assert layer["sentry_events"] == events(layer, "direct")


@pytest.fixture(scope="module")
def node_universal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("node-universal") / "dist"
    return build("sentry-node.yml", "10.75.2", out, ["x86_64", "arm64"])


@needs_node
def test_node_layer_with_require_and_import(node_universal: Path, tmp_path: Path) -> None:
    code, doc, err = smoke(str(node_universal), "--no-baseline", "--arch", ARCH, cwd=tmp_path)
    assert code == 0, err
    layers = doc["layers"]
    assert [la["enable"] for la in layers] == [
        "NODE_OPTIONS=-r @sentry/aws-serverless/awslambda-auto",
        "NODE_OPTIONS=--import @sentry/aws-serverless/awslambda-auto",
    ]
    for layer in layers:
        assert [i["outcome"] for i in layer["invocations"]] == ["error", "response", "error"]
        assert layer["sentry_events"] == events(layer, "extension")


@needs_node
def test_a_node_layer_can_be_run_one_way_only(node_universal: Path) -> None:
    """What the benchmark measures: only the --import run, so its timings and peak memory are
    that run's alone."""
    only = SmokeOptions(architectures=(ARCH,), baseline=False, enable_modes=("import",))
    (report,) = smoke_zip(node_universal, only)
    assert report.status == "passed", report.cause
    assert report.enable == "NODE_OPTIONS=--import @sentry/aws-serverless/awslambda-auto"
    assert [i.outcome for i in report.invocations] == ["error", "response", "error"]


@needs_node
@needs_qemu
def test_node_layer_on_the_other_architecture(node_universal: Path, tmp_path: Path) -> None:
    code, doc, err = smoke(str(node_universal), "--no-baseline", "--arch", OTHER, cwd=tmp_path)
    assert code == 0, err
    assert [la["status"] for la in doc["layers"]] == ["passed", "passed"]
    assert all(la["sentry_events"] == events(la, "extension") for la in doc["layers"])


@needs_node
def test_node_layer_without_its_preload_names_nodes_error(
    node_universal: Path, tmp_path: Path
) -> None:
    build_dir = "nodejs/node_modules/@sentry/aws-serverless/build/npm"
    preloads = {f"{build_dir}/cjs/awslambda-auto.js", f"{build_dir}/esm/awslambda-auto.js"}
    broken = tmp_path / "no-preload.zip"
    with zipfile.ZipFile(node_universal) as src, zipfile.ZipFile(broken, "w") as out:
        for info in src.infolist():
            if info.filename not in preloads:
                out.writestr(info, src.read(info))
    code, doc, err = smoke(str(broken), "--no-baseline", "--arch", ARCH, cwd=tmp_path)
    assert code == 2
    causes = [(la["phase"], la["cause"]) for la in doc["layers"]]
    prefix = "the runtime exited with code 1 during init: "
    # The -r run: CommonJS's line; the --import run: the ES module loader's.
    assert causes[0][0] == causes[1][0] == "runtime init"
    assert causes[0][1].startswith(prefix + "Error: Cannot find module '")
    assert causes[0][1].endswith("/cjs/awslambda-auto.js'")  # at /opt, or the unpacked tree
    assert causes[1][1].startswith(prefix + "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '")
    assert "/esm/awslambda-auto.js' imported from " in causes[1][1]  # found in NODE_PATH
    assert "Node.js v" not in err  # the footer is not the reason
