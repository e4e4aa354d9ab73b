"""`smoke` on the reference layers, built from real pip / npm installs with the sandbox's
stand-in extension, and the release gate: a layer that fails is never published."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from layer_builder.smoke.runner import host_architecture
from tests.helpers.elf_fixtures import write_elf
from tests.helpers.paths import REPO as ROOT
from tests.helpers.smoke_layers import build, run_subprocess, smoke

ARCH = host_architecture()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def python_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("sentry-python.yml", "2.75.0", tmp_path_factory.mktemp("py") / "dist", [ARCH])


def test_python_layer_passes_end_to_end(python_zip: Path, tmp_path: Path) -> None:
    code, doc, err = smoke(str(python_zip), "--arch", ARCH, cwd=tmp_path)
    assert code == 0, err
    (layer,) = doc["layers"]
    assert layer["status"] == "passed" and layer["runtime"] == "python"
    assert "awslambdaric" in layer["mount"]
    assert [e["name"] for e in layer["extensions"]] == ["sentry-lambda-extension"]
    assert layer["extensions"][0]["received"][-1] == "SHUTDOWN"
    # The real sentry-sdk, loaded through the layer's wrapper, sent both errors (the cold
    # invocation's first) through the stand-in extension to the fake Sentry.
    assert (
        layer["sentry_events"]
        == [{"type": "event", "exceptions": ["SmokeTestError"], "path": "extension"}] * 2
    )
    assert layer["added_cold_start_ms"] is not None and layer["summary"].startswith(
        "the layer adds"
    )


def _replace(zip_path: Path, dest: Path, name: str, text: str) -> Path:
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            out.writestr(info, text if info.filename == name else src.read(info))
    return dest


def test_python_layer_whose_extension_exits_at_once_fails(python_zip: Path, tmp_path: Path) -> None:
    broken = _replace(
        python_zip,
        tmp_path / "broken.zip",
        "extensions/sentry-lambda-extension",
        "#!/bin/sh\necho 'relay: cannot start' >&2\nexit 1\n",
    )
    code, doc, err = smoke(str(broken), "--no-baseline", "--arch", ARCH, cwd=tmp_path)
    assert code == 2
    assert doc["layers"][0]["phase"] == "extension init"
    assert "extension init failed: extension sentry-lambda-extension exited with code 1" in err
    assert "relay: cannot start" in err


def test_python_wrapper_pointing_at_a_missing_handler_fails(
    python_zip: Path, tmp_path: Path
) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(event, context):\n    return 1\n")
    code, doc, err = smoke(
        str(python_zip),
        "--function",
        str(fn),
        "--handler",
        "app.no_such_function",
        "--no-baseline",
        "--arch",
        ARCH,
        cwd=tmp_path,
    )
    # Loaded at init, as Lambda loads a handler: the init fails naming the variable.
    assert code == 2
    assert doc["layers"][0]["phase"] == "runtime init"
    assert (
        "runtime init failed: HandlerConfigError: SENTRY_INITIAL_HANDLER='app.no_such_function': "
        "'app' has no function 'no_such_function'" in err
    )
    # The SDK, initialised first, sent the init error too (through the stand-in).
    assert doc["layers"][0]["sentry_events"] == [
        {"type": "event", "exceptions": ["HandlerConfigError"], "path": "extension"}
    ]


def test_sandbox_release_does_not_publish_a_layer_that_fails_smoke(tmp_path: Path) -> None:
    # An extension "binary" with the right ELF machine that cannot run: build and verify
    # accept it, only running the layer shows it is broken.
    bad = write_elf(tmp_path / "bad-relay", ARCH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path / "home")
    proc = run_subprocess(
        "release",
        str(ROOT / "configs/sentry-python.yml"),
        "--version",
        "2.75.0",
        "--sandbox",
        "--arch",
        ARCH,
        "--regions",
        "us-east-1",
        "--extension-file",
        f"{ARCH}={bad}",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: smoke: ") and "extension init failed" in last
    assert "nothing was published" in last
    assert not (tmp_path / "sandbox" / "registry" / "aws-lambda-layers").exists()
