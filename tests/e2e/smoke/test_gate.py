"""What `smoke` must catch, each with a small layer that has exactly that defect.

The layers are built by ``tests/helpers/smoke_layers.py`` (real processes: Python extensions that
speak the Extensions API, the sandbox stand-in, awslambdaric, a stand-in SDK posting to the
fake Sentry). Limits are shortened so the failures do not wait Lambda's 10 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from layer_builder.cli import main
from layer_builder.smoke import environment, runner
from layer_builder.smoke.lifecycle import Limits, error_line
from layer_builder.smoke.runner import SmokeOptions, host_architecture, smoke_zip
from tests.helpers.paths import REPO
from tests.helpers.smoke_layers import extension, make_layer, standin_layer

FAST = Limits(init_s=3.0, timeout_s=4.0)
HOST_MACHINE = os.uname().machine


@pytest.fixture(autouse=True)
def own_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's processes carry a marker of their own (other smoke runs may be going on)."""
    monkeypatch.setattr(environment, "MARKER_VAR", f"LAYER_BUILDER_SMOKE_GATE_{os.getpid()}")


def run(zip_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    opts = SmokeOptions(baseline=False, limits=kw.pop("limits", FAST), **kw)  # type: ignore[arg-type]
    (report,) = smoke_zip(zip_path, opts)
    return report


def function(tmp_path: Path, source: str) -> Path:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text(source)
    return fn


# ---- every raised invocation, the cold one first, is one event ------------------------------


def test_the_sample_raises_on_the_cold_invocation(tmp_path: Path) -> None:
    report = run(make_layer(tmp_path / "l.zip"))
    assert report.status == "passed", report.cause
    assert [i.outcome for i in report.invocations] == ["error", "response", "error"]
    assert len(report.sentry_events) == 2


def test_an_sdk_that_misses_the_first_invocation_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the lazily initialised Python wrapper did: the cold invocation's error was lost.
    monkeypatch.setattr(runner, "_SENTRY_WAIT_S", 1.0)
    fn = function(
        tmp_path,
        "import os\nos.environ['FAKE_SDK_FROM'] = '2'\n"
        "def handler(event, context):\n    raise ValueError('every time')\n",
    )
    report = run(make_layer(tmp_path / "l.zip"), function_dir=fn, handler="app.handler")
    assert (report.status, report.phase) == ("failed", "sentry")
    assert report.cause.startswith("the ValueError raised by invocation 1 (request ")
    # The later invocations did arrive: matching by exception type alone would have passed.
    assert len(report.sentry_events) == 2


def test_two_events_for_one_invocation_fail(tmp_path: Path) -> None:
    fn = function(
        tmp_path,
        "import os\nos.environ['FAKE_SDK_SENDS'] = '2'\n"
        "def handler(event, context):\n    raise ValueError('once')\n",
    )
    report = run(
        make_layer(tmp_path / "l.zip"), function_dir=fn, handler="app.handler", invocations=1
    )
    assert report.phase == "sentry"
    assert report.cause == "invocation 1 raised once but Sentry received 2 events for it"


# ---- the path: through the extension where it runs, directly elsewhere ---------------------


def test_events_through_the_standin_extension_pass(tmp_path: Path) -> None:
    fn = function(
        tmp_path,
        "import os\nos.environ['FAKE_SDK_VIA_EXTENSION'] = '1'\n"
        "def handler(event, context):\n    raise ValueError('via')\n",
    )
    z = standin_layer(tmp_path / "l.zip", [HOST_MACHINE], [host_architecture()])
    report = run(z, function_dir=fn, handler="app.handler", invocations=2)
    assert report.status == "passed", (report.cause, report.logs)
    assert [e["path"] for e in report.sentry_events] == ["extension", "extension"]
    # The stand-in says what it forwarded.
    assert (
        "stand-in: forwarded POST /api/1/envelope/"
        in report.logs["extension-sentry-lambda-extension"]
    )


def test_an_sdk_bypassing_a_running_extension_fails(tmp_path: Path) -> None:
    fn = function(tmp_path, "def handler(event, context):\n    raise ValueError('direct')\n")
    z = standin_layer(tmp_path / "l.zip", [HOST_MACHINE], [host_architecture()])
    report = run(z, function_dir=fn, handler="app.handler", invocations=1)
    assert report.phase == "sentry"
    assert report.cause == (
        "the event of invocation 1 came direct, not through the extension's local address"
    )


# ---- /opt/extensions ------------------------------------------------------------------------


def test_a_non_executable_file_in_extensions_fails_init(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip")
    with zipfile.ZipFile(z, "a") as zf:
        info = zipfile.ZipInfo("extensions/notes.txt")
        info.external_attr = 0o100644 << 16
        zf.writestr(info, "not a program\n")
    report = run(z)
    assert (report.status, report.phase) == ("failed", "extension init")
    assert report.cause.startswith(
        "notes.txt in /opt/extensions is not executable: Lambda cannot start it "
        "(Extension.LaunchError: permission denied)"
    )


def test_an_extension_registering_under_another_name_fails_at_once(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"ext-file": extension(name="other")})
    started = time.monotonic()
    report = run(z, limits=Limits(init_s=8.0, timeout_s=4.0))
    assert report.phase == "extension init"
    assert "registered as other, which is no file in /opt/extensions" in report.cause
    assert time.monotonic() - started < 8.0  # not the whole init limit


def test_an_extension_silent_after_registering_fails_init(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"mute": extension("silent-init")})
    report = run(z, limits=Limits(init_s=2.0, timeout_s=2.0))
    assert (report.status, report.phase) == ("failed", "init")
    assert report.cause == "not ready within 2 s: waiting for mute"


def test_an_extension_silent_after_an_invoke_fails_like_a_timeout(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"mute": extension("silent-invoke")})
    report = run(z, limits=Limits(init_s=3.0, timeout_s=2.0))
    assert (report.status, report.phase) == ("failed", "invoke")
    assert report.cause == (
        "invocation 1: extension mute did not call Next within the function timeout"
    )


# ---- the failure reason names the error line -------------------------------------------------


NODE_CRASH = """\
node:internal/modules/cjs/loader:1228
  throw err;
  ^

Error: Cannot find module '@sentry/aws-serverless/awslambda-auto'
Require stack:
- internal/preload
    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15) {
  code: 'MODULE_NOT_FOUND',
  requireStack: [ 'internal/preload' ]
}

Node.js v20.20.2
"""


def test_the_error_line_is_found_in_node_and_python_output() -> None:
    assert error_line(NODE_CRASH) == (
        "Error: Cannot find module '@sentry/aws-serverless/awslambda-auto'"
    )
    esm = "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'x' imported from /var/task/\n"
    assert error_line("  ^\n\n" + esm + "    at x\n\nNode.js v20\n") == esm.strip()
    traceback = (
        "Traceback (most recent call last):\n  File 'a.py', line 1\nImportError: first\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n  File 'b.py', line 2\n"
        "mod.HandlerConfigError: SENTRY_INITIAL_HANDLER is not set\n"
    )
    assert error_line(traceback) == "mod.HandlerConfigError: SENTRY_INITIAL_HANDLER is not set"
    assert error_line("all is well\n") is None


def test_a_crash_is_reported_by_its_error_line_not_the_last_lines(tmp_path: Path) -> None:
    script = "#!/bin/sh\ncat <<'EOF' >&2\n" + NODE_CRASH + "EOF\nexit 1\n"
    z = make_layer(tmp_path / "l.zip", extensions={"crashy": script})
    report = run(z)
    assert report.phase == "extension init"
    assert report.cause == (
        "extension crashy exited with code 1 before registering: "
        "Error: Cannot find module '@sentry/aws-serverless/awslambda-auto'"
    )


# ---- through the CLI -------------------------------------------------------------------------


def test_cli_names_the_defect_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"stranger": extension(name="other")})
    code = main(["smoke", str(z), "--no-baseline"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: smoke: {z} (")
    assert "extension init failed: an extension registered as other" in err[0]


# ---- the stand-in on its own: what Relay does on the SDK's path -----------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(HOST_MACHINE not in ("x86_64", "aarch64"), reason="no stand-in build")
def test_the_standin_forwards_chunked_and_gzipped_envelopes_with_via(tmp_path: Path) -> None:
    import gzip
    import http.client
    import json

    from layer_builder.smoke.api import serve_api
    from layer_builder.smoke.sentry import fake_sentry

    binary = REPO / "extensions/standin"
    binary = binary / f"sentry-standin-{HOST_MACHINE}"
    port = _free_port()
    event = {"exception": {"values": [{"type": "E"}]}, "extra": {"lambda": {"aws_request_id": "r"}}}
    body = gzip.compress(b'{}\n{"type":"event"}\n' + json.dumps(event).encode() + b"\n")
    with serve_api("h") as api, fake_sentry() as sentry:
        proc = subprocess.Popen(
            [str(binary), "run", f"--port={port}", f"--upstream-dsn={sentry.dsn}"],
            env={"AWS_LAMBDA_RUNTIME_API": api.address},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert api.wait(lambda: any(e.idle for e in api.extensions.values()), 10)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/api/1/envelope/")
        conn.putheader("Content-Encoding", "gzip")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("X-Sentry-Auth", "Sentry sentry_key=k, sentry_version=7")
        conn.endheaders()
        for start in range(0, len(body), 50):  # several chunks
            part = body[start : start + 50]
            conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.send(b"0\r\n\r\n")
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())) == (200, {"id": "0" * 32})
        api.shutdown("spindown", 2)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    (item,) = sentry.events()
    assert (item.exception_types, item.path, item.request_ids) == (["E"], "extension", {"r"})
    assert f"stand-in: listening on 127.0.0.1:{port}" in out


def test_every_failed_run_says_why_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two failing layers: the closing error line names the first; each report block names
    its own reason, so the second's is not hidden behind "(and 1 more)"."""
    zips = []
    for name, word in (("one", "first"), ("two", "second")):
        script = f"#!/bin/sh\necho 'the {word} extension gives up' >&2\nexit 1\n"
        zips.append(
            make_layer(tmp_path / f"{name}.zip", extensions={"sentry-lambda-extension": script})
        )
    argv = ["smoke", *map(str, zips), "--arch", host_architecture(), "--no-baseline"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("error: ") == 1 and "(and 1 more)" in err
    for word in ("first", "second"):
        assert "extension init failed: " in out and f"the {word} extension gives up" in out, out
