"""Building from a local SDK checkout (turned into a wheel with `build`, as sentry-python
builds its own layer), and Lambda's size limits at build time."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.build.assemble import build_layer
from layer_builder.build.bytecode import find_interpreter
from layer_builder.cli import main
from layer_builder.config import load_config
from layer_builder.errors import SizeLimitError
from layer_builder.model import ReleaseVersion
from tests.helpers.paths import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_sdk_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local-sdk")
    project = root / "tiny-sdk"
    (project / "tiny_sdk").mkdir(parents=True)
    (project / "tiny_sdk" / "__init__.py").write_text("VERSION = '0.3.0'\n")
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tiny-sdk"
        version = "0.3.0"
        """)
    )
    (root / "wrapper.py").write_text("import tiny_sdk\n")
    config = root / "tiny.yml"
    config.write_text(
        textwrap.dedent("""\
        name: "TinySDK{{ arch_suffix }}"
        description: "Tiny SDK {{ version }}"
        license: MIT
        canonical: "aws-layer:tiny"
        runtime: python
        compatible_runtimes: [python3.12]
        architectures: [x86_64, arm64]
        sdk:
          package: tiny-sdk
          source: path
          path: tiny-sdk
        files:
          - from: wrapper.py
            to: python/tiny_wrapper.py
        registry:
          runtime_dir: tiny
        """)
    )
    return config


def test_layer_from_a_local_checkout(
    local_sdk_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dist"
    code = main(
        [
            "build",
            str(local_sdk_config),
            "--version",
            "0.3.0",
            "--arch",
            "arm64",
            "--out",
            str(out),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (layer,) = json.loads(captured.out)["layers"]
    assert layer["packages"] == [{"name": "tiny-sdk", "version": "0.3.0"}]
    assert layer["extensions"] == []  # no extension configured
    with zipfile.ZipFile(layer["zip"]) as zf:
        names = zf.namelist()
        record = zf.read("python/tiny_sdk-0.3.0.dist-info/RECORD").decode()
    assert "python/tiny_sdk/__init__.py" in names and "python/tiny_wrapper.py" in names
    # Nothing that records the build machine's path or interpreter; bytecode only for the
    # runtime the manifest says got it (python3.12), in __pycache__.
    assert not any(n.endswith(("direct_url.json", "INSTALLER")) for n in names)
    (info,) = layer["bytecode"]
    pycs = sorted(n for n in names if n.endswith(".pyc"))
    if info["compiled"]:
        assert pycs == [
            "python/__pycache__/tiny_wrapper.cpython-312.pyc",
            "python/tiny_sdk/__pycache__/__init__.cpython-312.pyc",
        ]
    else:
        assert pycs == [] and "LAYER_BUILDER_PYTHON3_12" in info["reason"]
    assert str(tmp_path) not in record and "direct_url.json" not in record


def test_bytecode_turned_off_leaves_the_plain_tree(local_sdk_config: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.yml"
    plain.write_text(local_sdk_config.read_text() + "optimize:\n  bytecode: false\n")
    (tmp_path / "wrapper.py").write_text((local_sdk_config.parent / "wrapper.py").read_text())
    (tmp_path / "tiny-sdk").symlink_to(local_sdk_config.parent / "tiny-sdk")
    built = build_layer(load_config(plain), ReleaseVersion.parse("0.3.0"), "x86_64", tmp_path / "d")
    assert built.manifest.bytecode == ()
    with zipfile.ZipFile(built.zip_path) as zf:
        assert not any(n.endswith(".pyc") or "__pycache__" in n for n in zf.namelist())


def test_unzipped_size_over_the_lambda_limit_is_refused(
    local_sdk_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(local_sdk_config)
    monkeypatch.setattr(aws_facts, "MAX_UNZIPPED_BYTES", 100)
    with pytest.raises(
        SizeLimitError,
        match=r"TinySDK \(x86_64\) is [\d,]+ bytes unzipped; "
        r"Lambda allows 100 for a function and all its layers",
    ):
        build_layer(cfg, ReleaseVersion.parse("0.3.0"), "x86_64", tmp_path / "dist")
    assert not list((tmp_path / "dist").glob("*.zip"))


def test_zip_over_the_direct_upload_limit_is_marked_for_s3(
    local_sdk_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = load_config(local_sdk_config)
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", 100)
    built = build_layer(cfg, ReleaseVersion.parse("0.3.0"), "x86_64", tmp_path / "dist")
    assert built.manifest.needs_s3_upload
    assert main(["verify", str(built.zip_path), "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["zips"]
    assert report["needs_s3_upload"]
    assert "over the 50 MB direct-upload limit: publishing goes through S3" in report["notes"]


@pytest.mark.skipif(find_interpreter("3.12") is None, reason="needs a Python 3.12 interpreter")
def test_the_benchmarks_upstream_style_layout_is_ours_without_the_bytecode(
    local_sdk_config: Path, tmp_path: Path
) -> None:
    # bench/smoke_bench.py compares ours with this layout: same config, SDK and inputs.
    bench_file = REPO / "bench" / "smoke_bench.py"
    spec = importlib.util.spec_from_file_location("smoke_bench", bench_file)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["smoke_bench"] = bench
    spec.loader.exec_module(bench)
    zips = bench.build_pair(load_config(local_sdk_config), "0.3.0", tmp_path / "out")
    with zipfile.ZipFile(zips[bench.OURS]) as ours, zipfile.ZipFile(zips[bench.UPSTREAM]) as up:
        mine = {i.filename: ours.read(i) for i in ours.infolist()}
        theirs = {i.filename: up.read(i) for i in up.infolist()}
    extra = sorted(set(mine) - set(theirs))
    assert [n for n in extra if not n.endswith("__pycache__/")] == [
        "python/__pycache__/tiny_wrapper.cpython-312.pyc",
        "python/tiny_sdk/__pycache__/__init__.cpython-312.pyc",
    ]
    assert all(n.endswith((".pyc", "__pycache__/")) for n in extra)
    assert set(theirs) <= set(mine)
    assert all(mine[n] == theirs[n] for n in theirs)  # the same inputs, byte for byte
