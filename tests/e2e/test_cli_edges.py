"""The edges a new user hits, table-driven: each mistake is exit 2, ONE ``error:`` line naming
the argument and the cause, and nothing written anywhere (the work directory is compared
file by file before and after). With ``--json`` the same failure is a JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from layer_builder.build import sdk
from layer_builder.build.zipper import write_zip
from layer_builder.cli import main
from layer_builder.config import LayerConfig
from tests.helpers.elf_fixtures import make_elf, write_elf
from tests.helpers.paths import REPO

LAUNCHER = b"#!/bin/sh\nexec /opt/relay/relay run --mode=proxy\n"


@dataclass
class Work:
    """A work directory with the inputs the cases need."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "layer.yml"

    @property
    def a_file(self) -> Path:
        return self.root / "a-file"

    @property
    def a_dir(self) -> Path:
        return self.root / "a-dir"

    @property
    def shared_lib(self) -> Path:
        return self.root / "libext.so"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def layer_zip(self, extension: bytes, name: str) -> Path:
        tree = self.root / f"tree-{name}"
        (tree / "python/tiny").mkdir(parents=True)
        (tree / "python/tiny/__init__.py").write_text("X = 1\n")
        (tree / "extensions").mkdir()
        launcher = tree / "extensions/sentry-lambda-extension"
        launcher.write_bytes(LAUNCHER)
        launcher.chmod(0o755)
        (tree / "relay").mkdir()
        binary = tree / "relay/relay"
        binary.write_bytes(extension)
        binary.chmod(0o755)
        return write_zip(tree, self.root / f"{name}.zip").path


CONFIG = f"""\
name: "Edge{{{{ arch_suffix }}}}"
description: "edge test {{{{ version }}}}"
license: MIT
canonical: "aws-layer:python"
runtime: python
compatible_runtimes: [python3.12]
architectures: [x86_64]
sdk:
  package: tiny
extension: {REPO / "extensions" / "relay.yml"}
registry:
  runtime_dir: python
"""


@pytest.fixture
def work(tmp_path: Path) -> Work:
    w = Work(tmp_path)
    w.config.write_text(CONFIG)
    w.a_file.write_text("not a directory\n")
    w.a_dir.mkdir()
    write_elf(w.shared_lib, "x86_64", kind="shared")
    return w


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what 'nothing written' compares."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _sys_writable() -> bool:
    try:
        (Path("/sys") / ".lb-probe").touch()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Work], list[str]]
    line: Callable[[Work], str]  #: the exact error line, or a regex when it starts with ^
    needs: str = ""  #: "sys-readonly" or "not-root": skipped where it cannot be set up


BUILD = ["build"]
CASES = [
    Case(
        "out-is-a-file",
        lambda w: [*BUILD, str(w.config), "--version", "1.0.0", "--out", str(w.a_file)],
        lambda w: f"--out {w.a_file}: is a file, not a directory",
    ),
    Case(
        "out-inside-a-file",
        lambda w: [*BUILD, str(w.config), "--version", "1.0.0", "--out", f"{w.a_file}/dist"],
        lambda w: (
            f"--out {w.a_file}/dist: {w.a_file} is a file, so no directory can be made inside it"
        ),
    ),
    Case(
        "out-under-a-read-only-parent",
        lambda w: [*BUILD, str(w.config), "--version", "1.0.0", "--out", "/sys/lb-edge/dist"],
        lambda w: (
            "--out /sys/lb-edge/dist: cannot create it: /sys is not writable (Permission denied)"
        ),
        needs="sys-readonly",
    ),
    Case(
        "out-read-only",
        lambda w: [*BUILD, str(w.config), "--version", "1.0.0", "--out", str(w.a_dir)],
        lambda w: f"--out {w.a_dir}: cannot write into it: Permission denied",
        needs="not-root",
    ),
    Case(
        "release-out-is-a-file",
        lambda w: [
            "release",
            str(w.config),
            "--version",
            "1.0.0",
            "--out",
            str(w.a_file),
            "--regions",
            "us-east-1",
        ],
        lambda w: f"--out {w.a_file}: is a file, not a directory",
    ),
    Case(
        "extension-file-is-a-directory",
        lambda w: [
            *BUILD,
            str(w.config),
            "--version",
            "1.0.0",
            "--out",
            str(w.out),
            "--extension-file",
            f"x86_64={w.a_dir}",
        ],
        lambda w: f"--extension-file x86_64={w.a_dir}: is a directory, not a file",
    ),
    Case(
        "extension-file-is-a-shared-library",
        lambda w: [
            *BUILD,
            str(w.config),
            "--version",
            "1.0.0",
            "--out",
            str(w.out),
            "--extension-file",
            f"x86_64={w.shared_lib}",
        ],
        lambda w: (
            f"--extension-file {w.shared_lib}: is a shared library (ET_DYN without a "
            "program interpreter or the PIE flag), not an executable; Lambda (x86_64) cannot "
            "start it"
        ),
    ),
    Case(
        "verify-a-directory",
        lambda w: ["verify", str(w.a_dir)],
        lambda w: f"{w.a_dir}: is a directory, not a layer zip",
    ),
    Case(
        "verify-a-shared-library-extension",
        lambda w: [
            "verify",
            str(w.layer_zip(make_elf("x86_64", kind="shared"), "so")),
            "--arch",
            "x86_64",
        ],
        lambda w: (
            f"{w.root / 'so.zip'}:relay/relay: is a shared library (ET_DYN without a "
            "program interpreter or the PIE flag), not an executable; Lambda (x86_64) cannot "
            "start it"
        ),
    ),
    Case(
        "version-with-company",
        lambda w: ["--version", "2.75.0", "build", str(w.config)],
        lambda w: (
            "--version takes no other arguments (it prints the tool's version); for a "
            "release version write it after the command: layer-builder COMMAND ... --version V"
        ),
    ),
    Case(
        "publish-dist-is-a-file",
        lambda w: ["publish", str(w.config), "--version", "1.0.0", "--dist", str(w.a_file)],
        lambda w: f"--dist {w.a_file}: is a file, not a directory",
    ),
    Case(
        "publish-dist-missing",
        lambda w: ["publish", str(w.config), "--version", "1.0.0", "--dist", str(w.out)],
        lambda w: f"--dist {w.out}: no such directory",
    ),
    Case(
        "registry-region-not-a-region-name",
        lambda w: [
            "registry",
            "latest",
            "aws-layer:python",
            "--region",
            "mars-1",
            "--registry",
            str(w.a_dir),
        ],
        lambda w: (
            "layer-builder registry latest: argument --region: 'mars-1' is not an AWS region "
            "name (like eu-west-1) (see `layer-builder registry latest --help`)"
        ),
    ),
    Case(
        "unknown-option",
        lambda w: ["verify", str(w.a_dir), "--frobnicate"],
        lambda w: (
            "layer-builder verify: unrecognized arguments: --frobnicate "
            "(see `layer-builder verify --help`)"
        ),
    ),
    Case(
        "misspelt-option",
        lambda w: [
            "registry",
            "latest",
            "aws-layer:python",
            "--region",
            "eu-west-1",
            "--registy",
            str(w.a_dir),
        ],
        lambda w: (
            f"layer-builder registry latest: unrecognized arguments: --registy {w.a_dir}; "
            "did you mean '--registry'? (see `layer-builder registry latest --help`)"
        ),
    ),
    Case(
        "unknown-top-level-option",
        lambda w: ["--frobnicate", "verify", str(w.a_dir)],
        lambda w: (
            "layer-builder: unrecognized arguments: --frobnicate (see `layer-builder --help`)"
        ),
    ),
]


def _skip_unless_possible(needs: str) -> None:
    if needs == "sys-readonly" and (not Path("/sys").is_dir() or _sys_writable()):
        pytest.skip("/sys is not a read-only directory here")
    if needs == "not-root" and os.geteuid() == 0:
        pytest.skip("root can write into a mode 0555 directory")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_each_mistake_is_one_line_exit_2_and_writes_nothing(
    case: Case, as_json: bool, work: Work, capsys: pytest.CaptureFixture[str]
) -> None:
    _skip_unless_possible(case.needs)
    if case.needs == "not-root":
        work.a_dir.chmod(0o555)
    argv = case.argv(work)  # may create input zips: before the snapshot
    before = snapshot(work.root)
    code = main([*argv, "--json"] if as_json else argv)
    out, err = capsys.readouterr()
    expected = f"error: {case.line(work)}"
    assert code == 2
    # One error line, and it is the last thing said (progress before it is fine: it says
    # what was being checked; with --json it is on stderr too).
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [expected]
    assert err.endswith(expected + "\n")
    if not as_json:
        assert err == expected + "\n"
    assert snapshot(work.root) == before
    assert not Path("/sys/lb-edge").exists()
    if as_json:
        doc = json.loads(out)
        assert doc["error"] == case.line(work) and doc["exit_code"] == 2
    else:
        assert "error" not in out and "built" not in out  # no claim of work that was not done


def test_a_pie_extension_is_built_and_verified(
    work: Work, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # pip is not under test here: a one-file stand-in installs the SDK.
    def fake_install(cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path) -> None:
        (layer_root / "python/tiny").mkdir(parents=True)
        (layer_root / "python/tiny/__init__.py").write_text("X = 1\n")

    monkeypatch.setattr(sdk, "install_sdk", fake_install)
    pie = write_elf(work.root / "relay-pie", "x86_64", kind="static-pie")
    argv = ["build", str(work.config), "--version", "1.0.0", "--out", str(work.out)]
    code = main([*argv, "--extension-file", f"x86_64={pie}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (zip_path,) = work.out.glob("*.zip")
    manifest = json.loads(zip_path.with_name(zip_path.name + ".json").read_text())
    (ext,) = manifest["extensions"]
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.read(ext["path"]) == pie.read_bytes()
        launcher = zf.read("extensions/sentry-lambda-extension").decode()
    # The launcher names the version the manifest records for a local binary.
    assert ext["version"] == "unknown"
    assert re.search(r"^# sentry-lambda-extension unknown \(x86_64\)", launcher, re.M)
    assert main(["verify", str(zip_path)]) == 0
    assert capsys.readouterr().out.startswith(f"ok  {zip_path}: python layer, x86_64")


def test_verify_reports_every_problem_of_every_zip_in_json(
    work: Work, capsys: pytest.CaptureFixture[str]
) -> None:
    so = work.layer_zip(make_elf("x86_64", kind="shared"), "so")
    arm = work.layer_zip(make_elf("arm64"), "arm")
    good = work.layer_zip(make_elf("x86_64", kind="pie"), "good")
    code = main(["verify", str(so), str(good), str(arm), "--arch", "x86_64", "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == 2
    assert [(z["path"], z["ok"]) for z in doc["zips"]] == [
        (str(so), False),
        (str(good), True),
        (str(arm), False),
    ]
    assert err.splitlines()[0].startswith(f"ok  {good}: python layer, x86_64")
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {so}:relay/relay: is a shared library")
    assert lines[1].startswith(f"error: {arm}:relay/relay: is an arm64 binary")
    assert [p["severity"] for p in doc["zips"][0]["problems"]] == ["no_start"]


def test_registry_show_takes_json(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["registry", "show", "--json", "--registry", str(work.a_dir)])
    out, err = capsys.readouterr()
    # An empty directory is no registry: refused, but --json itself is accepted.
    assert code == 2 and "unrecognized arguments" not in err
    assert json.loads(out)["exit_code"] == 2


def test_version_alone_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    from layer_builder import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"layer-builder {__version__}\n"


def test_a_failed_build_leaves_no_empty_out_directory(
    work: Work, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # pip is not under test: the stand-in fails the way a missing version does.
    def failing_install(cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path) -> None:
        raise sdk.InstallError(f"pip install of tiny=={sdk_version} failed: no such version")

    monkeypatch.setattr(sdk, "install_sdk", failing_install)
    pie = write_elf(work.root / "relay-pie", "x86_64", kind="pie")
    before = snapshot(work.root)
    out = work.root / "new" / "dist"
    argv = ["build", str(work.config), "--version", "1.0.0", "--out", str(out)]
    assert main([*argv, "--extension-file", f"x86_64={pie}"]) == 2
    assert capsys.readouterr().err.endswith("failed: no such version\n")
    assert snapshot(work.root) == before  # neither new/ nor new/dist/ is left behind


@pytest.mark.parametrize("flag", [[], ["--json"]], ids=["plain", "json"])
def test_registry_show_prints_the_document_with_or_without_json(
    flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.registrations import registration, write

    write(tmp_path / "registry", registration("2.75.0"))
    argv = ["registry", "show", "aws-layer:python", "--registry", str(tmp_path / "registry")]
    assert main([*argv, *flag]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["canonical"] == "aws-layer:python" and doc["sdk_version"] == "2.75.0"


@pytest.mark.parametrize("where", ["file", "inside-file"])
def test_publish_to_a_registry_that_cannot_be_written_publishes_nothing(
    where: str,
    aws_env: str,
    make_config: Callable[..., LayerConfig],
    make_layers: Callable[..., list[Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import boto3

    from layer_builder.model import ReleaseVersion

    cfg = make_config(architectures="[x86_64]")
    (mpath, _), *_ = make_layers(cfg, ReleaseVersion.parse("3.1.0"))
    blocker = tmp_path / "registry-file"
    blocker.write_text("not a directory\n")
    registry = blocker if where == "file" else blocker / "registry"
    argv = ["publish", str(cfg.path), "--version", "3.1.0", "--dist", str(mpath.parent),
            "--regions", "us-east-1", "--registry", str(registry)]  # fmt: skip
    assert main(argv) == 2
    cause = (
        "is a file, not a directory"
        if where == "file"
        else f"{blocker} is a file, so no directory can be made inside it"
    )
    assert capsys.readouterr().err == f"error: --registry {registry}: {cause}\n"
    client = boto3.client("lambda", region_name="us-east-1", endpoint_url=aws_env)
    name = cfg.layer_name(ReleaseVersion.parse("3.1.0"), "x86_64")
    assert client.list_layer_versions(LayerName=name)["LayerVersions"] == []


def test_release_refuses_an_unwritable_registry_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "registry-file"
    blocker.write_text("not a directory\n")
    out = tmp_path / "out"
    argv = ["release", str(REPO / "configs/sentry-python.yml"), "--version", "2.75.0",
            "--sandbox", "--out", str(out), "--registry", str(blocker)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: --registry {blocker}: is a file, not a directory\n"
    assert not out.exists()  # nothing was built (nor the sandbox started: no SANDBOX line)
