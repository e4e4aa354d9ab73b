"""The universal layer: one zip and one layer name per release, serving every architecture
it carries an extension binary for; and the per-arch layout beside it.

The SDK install is replaced by a small stand-in (pip is tested end to end elsewhere); the
extension binaries are the tiny ELF files of ``elf_fixtures`` given with
``--extension-file``, the launcher is rendered from ``extensions/relay-launcher.sh.j2`` and
run by ``/bin/sh`` with a faked ``uname`` first on ``PATH``. Publishing goes to moto's server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from layer_builder import proc
from layer_builder.build import sdk
from layer_builder.cli import main
from layer_builder.config import load_config
from layer_builder.errors import ArtifactError
from tests.helpers.elf_fixtures import make_elf, write_elf
from tests.helpers.universal import RELAY, REPO, FakeInstall, V, build, ext_args, write_config

LAUNCHER = "extensions/sentry-lambda-extension"
REGIONS = "us-east-1,eu-west-1"


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch) -> FakeInstall:
    fake = FakeInstall()
    monkeypatch.setattr(sdk, "install_sdk", fake)
    return fake


def built_ok(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    binaries: dict[str, Path],
    *archs: str,
    layout: str | None = None,
) -> tuple[dict[str, Any], str]:
    """A `build --json` with these architectures' binaries that must succeed: (doc, stderr)."""
    config = write_config(tmp_path) if layout is None else write_config(tmp_path, layout=layout)
    code, data, err = build(capsys, config, tmp_path / "out", *ext_args(binaries, *archs))
    assert code == 0 and data is not None, err
    return data, err


# ------------------------------------------------------------------------------ build


def test_universal_build_carries_both_binaries_and_one_launcher(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    data, _ = built_ok(capsys, tmp_path, binaries, "x86_64", "arm64")
    (layer,) = data["layers"]  # one zip per release
    assert Path(layer["zip"]).name == f"uni-{V.text}.zip"
    assert layer["layout"] == "universal" and layer["architectures"] == ["x86_64", "arm64"]
    assert not layer["layer_name"].endswith("-arm64")
    assert layer["description"] == f"Universal test {V.text} (x86_64, arm64)"
    assert fake_pip.calls == ["x86_64"]  # the SDK is installed once per release
    exts = {e["architecture"]: e for e in layer["extensions"]}
    assert exts["x86_64"]["path"] == "relay/relay-x86_64"
    assert exts["arm64"]["path"] == "relay/relay-aarch64"

    with zipfile.ZipFile(layer["zip"]) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert zf.read("relay/relay-x86_64") == binaries["x86_64"].read_bytes()
        assert zf.read("relay/relay-aarch64") == binaries["arm64"].read_bytes()
        launcher = zf.read(LAUNCHER).decode()
    assert [n for n in infos if n.startswith("extensions/") and not n.endswith("/")] == [LAUNCHER]
    for name in (LAUNCHER, "relay/relay-x86_64", "relay/relay-aarch64"):
        assert infos[name].external_attr >> 16 == 0o100755
    assert "x86_64) binary=/opt/relay/relay-x86_64 ;;" in launcher
    assert "aarch64) binary=/opt/relay/relay-aarch64 ;;" in launcher

    # verify checks each architecture's binary against its own machine.
    assert main(["verify", layer["zip"], "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["zips"]
    assert report["layout"] == "universal" and report["architectures"] == ["x86_64", "arm64"]
    assert report["elf_files"] == ["relay/relay-aarch64", "relay/relay-x86_64"]


def test_verify_refuses_a_universal_layer_missing_or_misplacing_a_binary(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    data, _ = built_ok(capsys, tmp_path, binaries, "x86_64", "arm64")
    zip_path = Path(data["layers"][0]["zip"])
    manifest_path = zip_path.with_name(zip_path.name + ".json")
    good = json.loads(manifest_path.read_text())

    # The manifest claims an arm64 binary at a path whose file is the x86_64 one.
    swapped = {**good, "extensions": [
        {**e, "path": "relay/relay-x86_64"} if e["architecture"] == "arm64" else e
        for e in good["extensions"]
    ]}  # fmt: skip
    manifest_path.write_text(json.dumps(swapped))
    assert main(["verify", str(zip_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {zip_path}:relay/relay-x86_64: is an x86_64 binary")
    assert "arm64 layer" in err

    # The manifest claims arm64 but lists no arm64 binary.
    only_x86 = {**good, "extensions": good["extensions"][:1]}
    manifest_path.write_text(json.dumps(only_x86))
    assert main(["verify", str(zip_path)]) == 2
    assert "lists no extension binary for arm64" in capsys.readouterr().err

    # --arch asks for an architecture the layer does not serve.
    manifest_path.write_text(
        json.dumps({**good, "architectures": ["x86_64"], "extensions": good["extensions"][:1]})
    )
    assert main(["verify", str(zip_path), "--arch", "arm64"]) == 2
    # verify reports every problem, the one that matters most first: here also the arm64
    # binary the x86_64-only manifest does not account for.
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"error: {zip_path}: built for x86_64, not arm64"


def test_elf_in_the_sdk_tree_is_refused_with_a_pointer_to_per_arch(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    binaries: dict[str, Path],
) -> None:
    monkeypatch.setattr(sdk, "install_sdk", FakeInstall(native=True))
    out = tmp_path / "out"
    code, data, err = build(
        capsys, write_config(tmp_path), out, *ext_args(binaries, "x86_64", "arm64")
    )
    assert code == 2
    # With --json progress goes to stderr too; the error is its last line, and the only one.
    last = err.splitlines()[-1]
    assert err.count("error:") == 1 and last.startswith("error: tiny 3.2.1: ")
    assert "python/tiny/_speedups.so" in last and "layout: per-arch" in last
    assert not list(out.glob("*.zip"))  # nothing written


def test_verify_refuses_elf_under_python_of_a_universal_zip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a manifest, binaries for two machines make the zip universal: python/ must
    then be free of ELF files."""
    tree = tmp_path / "t"
    (tree / "python" / "tiny").mkdir(parents=True)
    (tree / "python" / "tiny" / "_native.so").write_bytes(make_elf("x86_64", kind="shared"))
    (tree / "extensions").mkdir()
    (tree / LAUNCHER).write_text("#!/bin/sh\ncase $(uname -m) in *) exit 1;; esac\n")
    (tree / LAUNCHER).chmod(0o755)
    (tree / "relay").mkdir()
    write_elf(tree / "relay" / "relay-x86_64", "x86_64")
    write_elf(tree / "relay" / "relay-aarch64", "arm64")
    from layer_builder.build.zipper import write_zip

    zip_path = write_zip(tree, tmp_path / "layer.zip").path
    assert main(["verify", str(zip_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {zip_path}: holds architecture-specific (ELF) files: ")
    assert "python/tiny/_native.so" in err and "layout: per-arch" in err


def test_an_architecture_without_a_binary_is_left_out_and_said(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    # extensions/relay.yml has no arm64 entry (Relay publishes no Linux aarch64 build).
    data, err = built_ok(capsys, tmp_path, binaries, "x86_64")
    (layer,) = data["layers"]
    assert layer["architectures"] == ["x86_64"]
    assert [e["architecture"] for e in layer["extensions"]] == ["x86_64"]
    said = [line for line in err.splitlines() if line.startswith("arm64: left out")]
    assert len(said) == 1
    assert "lists no arm64 binary" in said[0] and "serves x86_64 only" in said[0]
    with zipfile.ZipFile(layer["zip"]) as zf:
        assert "relay/relay-aarch64" not in zf.namelist()
        assert "aarch64)" not in zf.read(LAUNCHER).decode()


def test_explicit_arch_without_a_binary_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_pip: FakeInstall
) -> None:
    code, _, err = build(capsys, write_config(tmp_path), tmp_path / "out", "--arch", "arm64")
    last = err.splitlines()[-1]
    assert code == 2 and err.count("error:") == 1 and last.startswith(f"error: {RELAY}: ")
    assert "files.arm64: no arm64 binary is configured" in last and "--extension-file" in last
    assert fake_pip.calls == []


def test_arch_limits_the_universal_layer(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    config = write_config(tmp_path)
    args = ["--arch", "arm64", *ext_args(binaries, "arm64")]
    code, data, err = build(capsys, config, tmp_path / "out", *args)
    assert code == 0 and data is not None, err
    (layer,) = data["layers"]
    cfg = load_config(config)
    assert layer["layer_name"] == cfg.layer_name(V)  # the same name, serving arm64 only
    assert layer["architectures"] == ["arm64"] and "left out" not in err
    assert fake_pip.calls == ["arm64"]


# ---------------------------------------------------------------------------- launcher


def run_launcher(
    tmp_path: Path, zip_path: Path, machine: str | None, api: str = "127.0.0.1:9001"
) -> subprocess.Popen[str]:
    """Unzip the layer as /opt would hold it and start its launcher with ``uname -m`` faked.

    The binaries are replaced by scripts that print which one ran: the tiny ELF fixtures
    cannot execute, and what is under test is the launcher's choice.
    """
    opt = tmp_path / f"opt-{machine}"
    if not opt.exists():
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(opt)
        for f in (opt / "relay").iterdir():
            f.write_text(f'#!/bin/sh\necho "ran {f.name} $*"\n')
            f.chmod(0o755)
        launcher = opt / LAUNCHER
        launcher.write_text(launcher.read_text().replace("/opt/", f"{opt}/"))
        launcher.chmod(0o755)
    fakebin = tmp_path / f"fakebin-{machine}"
    fakebin.mkdir(exist_ok=True)
    if machine is not None:
        uname = fakebin / "uname"
        uname.write_text(f'#!/bin/sh\n[ "$1" = "-m" ] && echo {machine} && exit 0\nexit 2\n')
        uname.chmod(0o755)
        path = f"{fakebin}:/usr/bin:/bin"
    else:
        path = str(fakebin)  # no uname at all (nor python3 or node)
    env = {"PATH": path, "AWS_LAMBDA_RUNTIME_API": api}
    return subprocess.Popen(
        ["/bin/sh", str(opt / LAUNCHER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_launcher_picks_the_binary_by_machine(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    data, _ = built_ok(capsys, tmp_path, binaries, "x86_64", "arm64")
    zip_path = Path(data["layers"][0]["zip"])

    for machine, binary in (("x86_64", "relay-x86_64"), ("aarch64", "relay-aarch64")):
        out, err = run_launcher(tmp_path, zip_path, machine).communicate(timeout=20)
        assert out.strip() == (
            f"ran {binary} run --mode=proxy --host=127.0.0.1 --port=3000 --shutdown-timeout=2 "
            "--aws-runtime-api=127.0.0.1:9001 --upstream=https://sentry.io/"
        ), err
    # The first line tells the layer's SDK set-up where the binaries run and listen.
    with zipfile.ZipFile(zip_path) as zf:
        second = zf.read(LAUNCHER).decode().splitlines()[1]
    assert second == "# sentry-layer-extension: machines=x86_64,aarch64 proxy=127.0.0.1:3000"


def test_launcher_stands_aside_on_a_machine_it_has_no_binary_for(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    """Exiting would fail the function's init (Extension.Crash); instead the launcher registers
    for SHUTDOWN only, so Lambda never waits for it in an invocation, and exits 0 on it."""
    from layer_builder.smoke.api import serve_api

    data, _ = built_ok(capsys, tmp_path, binaries, "x86_64")
    zip_path = Path(data["layers"][0]["zip"])
    with serve_api("h") as api:
        proc = run_launcher(tmp_path, zip_path, "aarch64", api.address)
        assert api.wait(lambda: any(e.idle for e in api.extensions.values()), 10), proc.poll()
        (ext,) = api.registered()
        assert (ext.name, ext.events) == ("sentry-lambda-extension", ("SHUTDOWN",))
        api.invoke(b"{}", 5)  # not for it: it stays idle, an invocation never waits for it
        assert ext.idle and ext.received == []
        api.shutdown("spindown", 2)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert ext.received == ["SHUTDOWN"] and out == ""
    assert err.splitlines()[0] == (
        "sentry-lambda-extension: no extension binary for machine 'aarch64' in this layer "
        "(it has: x86_64); standing aside, the SDK sends to Sentry directly"
    )

    # Without any interpreter to stand aside with (no uname either), it says why it fails.
    out, err = run_launcher(tmp_path, zip_path, None).communicate(timeout=20)
    assert out == "" and err.splitlines()[-1] == (
        "sentry-lambda-extension: no python3 or node interpreter to stand aside with; "
        "the function cannot start"
    )


# ------------------------------------------------------------------------ build once


def test_per_arch_shares_an_architecture_neutral_install(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    data, err = built_ok(capsys, tmp_path, binaries, "x86_64", "arm64", layout="per-arch")
    assert fake_pip.calls == ["x86_64"]  # no ELF file in the tree: installed once, shared
    assert "arm64: tiny 3.2.1 is architecture-neutral: reused" in err
    assert [layer["architectures"] for layer in data["layers"]] == [["x86_64"], ["arm64"]]


def test_per_arch_installs_native_trees_per_architecture(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    binaries: dict[str, Path],
) -> None:
    fake = FakeInstall(native=True)
    monkeypatch.setattr(sdk, "install_sdk", fake)
    data, err = built_ok(capsys, tmp_path, binaries, "x86_64", "arm64", layout="per-arch")
    assert fake.calls == ["x86_64", "arm64"]
    by_arch = {tuple(layer["architectures"]): layer for layer in data["layers"]}
    with zipfile.ZipFile(by_arch[("arm64",)]["zip"]) as zf:
        head = zf.read("python/tiny/_speedups.so")[:20]
    assert int.from_bytes(head[18:20], "little") == 183  # the arm64 layer got arm64's library


def test_pip_and_npm_keep_their_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches make the second release of the day cheap: nothing turns them off."""
    commands: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> None:
        commands.append(cmd)
        env = kwargs.get("env") or {}
        assert not any(k.upper() in ("PIP_NO_CACHE_DIR", "NPM_CONFIG_CACHE") for k in env)
        if cmd[0] == "npm":
            pkg = Path(kwargs["cwd"]) / "node_modules" / "@sentry" / "aws-serverless"
            pkg.mkdir(parents=True)
            (pkg / "package.json").write_text("{}")

    monkeypatch.setattr(proc, "run", fake_run)
    for family in ("python", "node"):
        cfg = load_config(REPO / "configs" / f"sentry-{family}.yml")
        sdk.install_sdk(cfg, "1.0.0", "x86_64", tmp_path / family)
    assert [c[0] for c in commands] == [commands[0][0], "npm"]
    for cmd in commands:
        assert not any("cache" in part for part in cmd), cmd


# ----------------------------------------------------------------------------- publish


def publish(
    capsys: pytest.CaptureFixture[str], config: Path, dist: Path, registry: Path
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["publish", str(config), "--version", V.text, "--dist", str(dist),
                 "--registry", str(registry), "--regions", REGIONS, "--json"])  # fmt: skip
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def compatible_architectures(endpoint: str, region: str, name: str, version: str) -> list[str]:
    client = boto3.client("lambda", region_name=region, endpoint_url=endpoint)
    got = client.get_layer_version(LayerName=name, VersionNumber=int(version))
    return list(got.get("CompatibleArchitectures", []))


def test_published_universal_layer_serves_what_the_document_claims(
    aws_env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    config = write_config(tmp_path)
    dist, registry = tmp_path / "dist", tmp_path / "registry"
    code, _, err = build(capsys, config, dist, *ext_args(binaries, "x86_64", "arm64"))
    assert code == 0, err
    code, data, err = publish(capsys, config, dist, registry)
    assert code == 0, err
    assert data is not None
    # One task per region: one layer, serving both architectures.
    assert sorted(r["region"] for r in data["results"]) == sorted(REGIONS.split(","))
    assert all(r["architectures"] == ["x86_64", "arm64"] for r in data["results"])

    doc = json.loads((registry / f"aws-lambda-layers/python/{V.text}.json").read_text())
    assert doc["compatible_architectures"] == ["x86_64", "arm64"]
    (entry,) = doc["layers"]
    assert entry["layer_name"] == doc["layer_name"] and "architecture" not in entry
    assert entry["compatible_architectures"] == ["x86_64", "arm64"]
    # What Sentry's integration does: layer_name + regions[].version, attached to any function.
    for r in doc["regions"]:
        served = compatible_architectures(aws_env, r["region"], doc["layer_name"], r["version"])
        assert set(doc["compatible_architectures"]) <= set(served)


def test_published_per_arch_layers_are_described_honestly(
    aws_env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    config = write_config(tmp_path, layout="per-arch")
    dist, registry = tmp_path / "dist", tmp_path / "registry"
    code, _, err = build(capsys, config, dist, *ext_args(binaries, "x86_64", "arm64"))
    assert code == 0, err
    assert sorted(p.name for p in dist.glob("*.zip")) == [
        f"uni-{V.text}-arm64.zip",
        f"uni-{V.text}-x86_64.zip",
    ]
    code, _, err = publish(capsys, config, dist, registry)
    assert code == 0, err
    doc = json.loads((registry / f"aws-lambda-layers/python/{V.text}.json").read_text())
    cfg = load_config(config)
    x86_name, arm_name = cfg.layer_name(V, "x86_64"), cfg.layer_name(V, "arm64")
    # The top-level fields describe the x86_64 layer and claim nothing more.
    assert doc["layer_name"] == x86_name and doc["compatible_architectures"] == ["x86_64"]
    assert [(e["layer_name"], e["architecture"], e["compatible_architectures"])
            for e in doc["layers"]] == [(x86_name, "x86_64", ["x86_64"]),
                                        (arm_name, "arm64", ["arm64"])]  # fmt: skip
    for r in doc["regions"]:
        served = compatible_architectures(aws_env, r["region"], doc["layer_name"], r["version"])
        assert set(doc["compatible_architectures"]) <= set(served) and served == ["x86_64"]
    for entry in doc["layers"]:
        for r in entry["regions"]:
            name, version = entry["layer_name"], r["version"]
            served = compatible_architectures(aws_env, r["region"], name, version)
            assert served == entry["compatible_architectures"]


# ------------------------------------------------------------------ node require paths


NODE_PRELOADS = (
    "@sentry/aws-serverless/awslambda-auto",
    "@sentry/aws-serverless/dist/awslambda-auto",
)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                    reason="npm/node not installed")  # fmt: skip
@pytest.mark.parametrize("preload", NODE_PRELOADS)
def test_node_layer_loads_with_every_documented_preload(
    preload: str, node_layer: Path, tmp_path: Path
) -> None:
    """``NODE_OPTIONS=-r <path>`` as Sentry documents it, with NODE_PATH as Lambda sets it."""
    opt = tmp_path / "opt"
    with zipfile.ZipFile(node_layer) as zf:
        zf.extractall(opt)
    task = tmp_path / "task"
    task.mkdir()
    (task / "index.js").write_text("exports.handler = async () => 'ok';\n")
    node_path = ":".join(
        [f"{opt}/nodejs/node_modules", f"{opt}/nodejs/node22/node_modules",
         "/var/runtime/node_modules", "/var/runtime", str(task)]
    )  # fmt: skip
    script = (
        "const loaded = Object.keys(require.cache).filter(k => k.endsWith('awslambda-auto.js'));"
        "console.log(JSON.stringify(loaded));"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NODE_PATH": node_path,
        "NODE_OPTIONS": f"-r {preload}",
        "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": "index.handler",
        "SENTRY_DSN": "",
    }
    ran = subprocess.run(["node", "-e", script], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    loaded = json.loads(ran.stdout.strip().splitlines()[-1])
    # The preload really ran, and from the layer (nothing else on this machine has it).
    assert len(loaded) == 1 and loaded[0].startswith(f"{opt}/nodejs/node_modules/@sentry/")


@pytest.fixture(scope="module")
def node_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Node layer (npm install), universal, with the stand-in as its extension."""
    work = tmp_path_factory.mktemp("node")
    standin = REPO / "extensions" / "standin"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "layer_builder",
            "build",
            str(REPO / "configs" / "sentry-node.yml"),
            "--version",
            "10.75.2",
            "--out",
            str(work / "out"),
            "--extension-file",
            f"x86_64={standin / 'sentry-standin-x86_64'}",
            "--extension-file",
            f"arm64={standin / 'sentry-standin-aarch64'}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert ran.returncode == 0, ran.stderr
    (layer,) = json.loads(ran.stdout)["layers"]
    assert layer["architectures"] == ["x86_64", "arm64"]
    return Path(layer["zip"])


# ------------------------------------------------------------------- craft, old manifests


def test_craft_publishes_the_universal_zip_as_one_layer(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_pip: FakeInstall,
    binaries: dict[str, Path],
) -> None:
    """configs/craft-python.yml selects the universal zip `build` writes, for both archs."""
    config = tmp_path / "sentry-python.yml"
    config.write_text(write_config(tmp_path).read_text())
    dist = tmp_path / "dist"
    code, _, err = build(capsys, config, dist, *ext_args(binaries, "x86_64", "arm64"))
    assert code == 0, err
    argv = ["craft", "check", "--config", str(REPO / "configs/craft-python.yml"),
            "--version", V.text, "--artifacts", str(dist), "--json", "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    (release,) = json.loads(capsys.readouterr().out)["releases"]
    (layer,) = release["layers"]
    assert layer["architectures"] == ["x86_64", "arm64"]
    assert layer["layer_name"] == "SentryPythonServerlessSDK" and not layer["manifest_computed"]


def test_a_format_1_manifest_reads_as_one_per_arch_layer() -> None:
    from layer_builder.model import BuildManifest

    old = {
        "layer_name": "L-arm64", "canonical": "aws-layer:python", "version": "1.0.0",
        "architecture": "arm64", "compatible_runtimes": ["python3.12"], "description": "d",
        "license": "MIT", "zip_file": "l.zip", "sha256": "0" * 64, "code_sha256": "x",
        "zip_size": 1, "unzipped_size": 1, "file_count": 1, "sdk_name": "s",
        "sdk_version": "1.0.0", "source_date_epoch": 0, "format": 1,
        "extension": {"name": "e", "version": "1", "sha256": "a" * 64, "source": "here"},
    }  # fmt: skip
    m = BuildManifest.from_dict(old)
    assert (m.architectures, m.layout) == (("arm64",), "per-arch")
    assert m.extension is not None and m.extension.architecture == "arm64"
    with pytest.raises(ArtifactError, match="x86_64 first"):
        BuildManifest.from_dict(
            {**{k: v for k, v in old.items() if k != "architecture"},
             "architectures": ["arm64", "x86_64"], "layout": "universal"}
        )  # fmt: skip


# ------------------------------------------------------------------ registry documents


def _registration(layers: tuple[Any, ...], layout: str | None) -> Any:
    from layer_builder.model import Registration

    return Registration(
        runtime_dir="python",
        canonical="aws-layer:python",
        version=V,
        sdk_version=V.text,
        account_number="123456789012",
        compatible_runtimes=("python3.12",),
        layers=layers,
        layout=layout,
    )


def _layer(
    name: str, archs: tuple[str, ...], regions: dict[str, int], code: str = "Y29kZQ=="
) -> Any:
    from layer_builder.model import PublishedLayer

    return PublishedLayer(
        archs,
        name,
        code,
        tuple(
            (r, v, f"arn:aws:lambda:{r}:123456789012:layer:{name}:{v}")
            for r, v in sorted(regions.items())
        ),
    )


def _doc(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / f"aws-lambda-layers/python/{V.text}.json").read_text()))


def test_universal_document_merges_a_rerun_and_refuses_a_per_arch_one(tmp_path: Path) -> None:
    from layer_builder.errors import RegistryError
    from layer_builder.registry.writer import write_release

    both = ("x86_64", "arm64")
    write_release(tmp_path, _registration((_layer("U", both, {"us-east-1": 3}),), "universal"))
    write_release(tmp_path, _registration((_layer("U", both, {"eu-west-1": 5}),), "universal"))
    doc = _doc(tmp_path)
    assert doc["layer_name"] == "U" and doc["compatible_architectures"] == ["x86_64", "arm64"]
    assert doc["regions"] == [
        {"region": "eu-west-1", "version": "5"},
        {"region": "us-east-1", "version": "3"},
    ]
    (entry,) = doc["layers"]
    assert "architecture" not in entry and entry["compatible_architectures"] == list(both)

    before = _doc(tmp_path)
    # Another layer recorded beside the universal one: a universal release has one layer.
    with pytest.raises(RegistryError, match="a universal release has one layer"):
        write_release(tmp_path, _registration((_layer("U2", both, {"us-east-1": 1}),), "universal"))
    # The same version built per-arch: other zips under the recorded name.
    per_arch = (
        _layer("U", ("x86_64",), {"us-east-1": 4}, code="eDg2"),
        _layer("U-arm64", ("arm64",), {"us-east-1": 1}, code="YXJt"),
    )
    with pytest.raises(RegistryError, match="recorded with code_sha256 Y29kZQ=="):
        write_release(tmp_path, _registration(per_arch, "per-arch"))
    assert _doc(tmp_path) == before


def test_per_arch_document_without_x86_64_claims_only_what_it_serves(tmp_path: Path) -> None:
    from layer_builder.registry.writer import write_release

    write_release(
        tmp_path, _registration((_layer("L-arm64", ("arm64",), {"us-east-1": 2}),), "per-arch")
    )
    doc = _doc(tmp_path)
    assert doc["layer_name"] == "L-arm64" and doc["compatible_architectures"] == ["arm64"]
    assert doc["layers"][0]["architecture"] == "arm64"


def test_older_per_arch_document_is_extended_in_its_shape(tmp_path: Path) -> None:
    """A document of an older version of this tool: `layers` entries with `architecture` only,
    and a top-level compatible_architectures that over-claimed. A re-run fixes the claim."""
    from layer_builder.registry.writer import write_release

    path = tmp_path / f"aws-lambda-layers/python/{V.text}.json"
    path.parent.mkdir(parents=True)
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:{}:{}"
    path.write_text(json.dumps({
        "canonical": "aws-layer:python", "sdk_version": V.text, "account_number": "123456789012",
        "layer_name": "L", "regions": [{"region": "us-east-1", "version": "4"}],
        "compatible_runtimes": ["python3.12"], "compatible_architectures": ["x86_64", "arm64"],
        "layers": [
            {"architecture": "x86_64", "layer_name": "L", "code_sha256": "Y29kZQ==",
             "regions": [{"region": "us-east-1", "version": "4", "arn": arn.format("L", 4)}]},
            {"architecture": "arm64", "layer_name": "L-arm64", "code_sha256": "Y29kZQ==",
             "regions": [{"region": "us-east-1", "version": "2", "arn": arn.format("L-arm64", 2)}]},
        ],
    }))  # fmt: skip
    write_release(
        tmp_path, _registration((_layer("L", ("x86_64",), {"eu-west-1": 7}),), "per-arch")
    )
    doc = _doc(tmp_path)
    assert doc["compatible_architectures"] == ["x86_64"]
    assert [(e["layer_name"], e["architecture"], e["compatible_architectures"],
             [r["region"] for r in e["regions"]]) for e in doc["layers"]] == [
        ("L", "x86_64", ["x86_64"], ["eu-west-1", "us-east-1"]),
        ("L-arm64", "arm64", ["arm64"], ["us-east-1"]),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name: "', 'name: "{{ arch }}',
         "name: uses {{ arch }}, but a universal layer has one name"),
        ("  attempts: 2\n", "  attempts: 2\n  s3_bucket: 'b-{{ region }}{{ arch_suffix }}'\n",
         "publish.s3_bucket: uses {{ arch_suffix }}, which a universal layer does not have"),
        ("layout: universal", "layout: fat", "layout: 'fat' is not one of universal, per-arch"),
    ],
)  # fmt: skip
def test_universal_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(old, new, 1))
    assert main(["build", str(config), "--version", V.text, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}: {message}") and err.count("\n") == 1
