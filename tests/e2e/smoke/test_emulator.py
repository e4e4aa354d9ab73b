"""`smoke`'s emulated Lambda against its own contract, with small layers the tests build.

Each test runs real processes (Python extensions that speak the Extensions API, Lambda's
awslambdaric runtime client, a stand-in SDK that posts to the fake Sentry) in a real
environment; the limits are shortened so the failure cases do not wait Lambda's 10 s.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import textwrap
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from layer_builder.cli import main
from layer_builder.errors import ArgumentError
from layer_builder.smoke import environment, runtimes
from layer_builder.smoke.api import serve_api
from layer_builder.smoke.lifecycle import Limits
from layer_builder.smoke.runner import SmokeOptions, host_architecture, smoke_zip, zip_architectures
from layer_builder.smoke.sentry import parse_envelope
from tests.helpers.paths import REPO as ROOT
from tests.helpers.smoke_layers import extension, make_layer

FAST = Limits(init_s=3.0, timeout_s=5.0)


def run(zip_path: Path, **kw: object) -> object:
    opts = SmokeOptions(
        baseline=bool(kw.pop("baseline", False)), limits=kw.pop("limits", FAST), **kw
    )  # type: ignore[arg-type]
    (report,) = smoke_zip(zip_path, opts)
    return report


@pytest.fixture(autouse=True)
def own_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's processes carry a marker of their own (other smoke runs may be going on)."""
    monkeypatch.setattr(environment, "MARKER_VAR", f"LAYER_BUILDER_SMOKE_TEST_{os.getpid()}")


def no_leftovers(tag: str) -> bool:
    """No process started by this test's smoke runs is alive."""
    needle = f"{environment.MARKER_VAR}=".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    return False
            except OSError:
                continue
    return True


def test_a_good_layer_passes_and_is_reported(tmp_path: Path) -> None:
    report = run(make_layer(tmp_path / "good.zip"), baseline=True)
    assert report.status == "passed", (report.phase, report.cause, report.logs)
    (ext,) = report.extensions
    assert (ext.file, ext.name, ext.events) == (
        "sentry-lambda-extension",
        "sentry-lambda-extension",
        ["INVOKE", "SHUTDOWN"],
    )
    assert ext.received == ["INVOKE", "INVOKE", "INVOKE", "SHUTDOWN"]
    assert ext.exit_code == 0 and not ext.killed
    # The sample raises on the cold invocation and on the third; each error is one event.
    assert [(i.outcome, i.error_type) for i in report.invocations] == [
        ("error", "SmokeTestError"),
        ("response", None),
        ("error", "SmokeTestError"),
    ]
    assert (
        report.sentry_events
        == [{"type": "event", "exceptions": ["SmokeTestError"], "path": "direct"}] * 2
    )
    t = report.timings
    assert t.init_ms >= t.runtime_init_ms > 0 and t.cold_invoke_ms > 0 and t.warm_invoke_ms > 0
    assert report.baseline is not None and report.summary().startswith("the layer adds ")
    assert no_leftovers("good")


def test_the_layer_is_read_only_at_opt(tmp_path: Path) -> None:
    # The function writes where the layer is: Lambda's /opt is read-only.
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text(
        textwrap.dedent("""\
        import os
        def handler(event, context):
            try:
                open("/opt/python/new-file", "w")
            except OSError as exc:
                return {"opt": "read-only", "errno": exc.errno}
            return {"opt": "writable"}
    """)
    )
    report = run(
        make_layer(tmp_path / "l.zip"), function_dir=fn, handler="app.handler", invocations=1
    )
    assert report.status == "passed", report.cause
    if "mounted at /opt" not in (report.mount or ""):
        pytest.skip(f"no private mount here: {report.mount}")
    assert report.invocations[0].response["opt"] == "read-only"
    assert not Path("/opt/python/new-file").exists()


def test_the_sandbox_standin_extension_runs_through_a_launcher_at_opt(tmp_path: Path) -> None:
    machine = "aarch64" if host_architecture() == "arm64" else "x86_64"
    report = run(standin_layer(tmp_path / "standin.zip", machine, [host_architecture()]))
    assert report.status == "passed", (report.cause, report.logs)
    assert report.extensions[0].name == "sentry-lambda-extension"
    assert report.extensions[0].shutdown_ms is not None


def test_an_extension_that_never_registers_fails_init(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"lazy": extension("never-register")})
    report = run(z)
    assert (report.status, report.phase) == ("failed", "extension init")
    assert "lazy did not register within 3 s" in report.cause
    assert no_leftovers("never")


def test_an_extension_that_exits_at_once_fails_init(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"quitter": extension("exit")})
    report = run(z)
    assert report.phase == "extension init"
    assert "extension quitter exited with code 3 before registering" in report.cause


def test_an_extension_registering_under_another_name_is_named(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"ext-file": extension(name="other-name")})
    report = run(z)
    assert report.phase == "extension init"
    assert report.cause.startswith(
        "an extension registered as other-name, which is no file in /opt/extensions "
        "(files not registered: ext-file)"
    )


def test_an_extension_that_ignores_shutdown_is_killed_and_fails(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"stubborn": extension("ignore-shutdown")})
    report = run(z, invocations=2)
    assert (report.status, report.phase) == ("failed", "shutdown")
    assert "stubborn did not exit within 2 s of SHUTDOWN (killed)" in report.cause
    assert report.extensions[0].killed
    assert no_leftovers("stubborn")


def test_a_process_left_behind_fails_cleanup_and_is_killed(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"leaky": extension("daemon")})
    report = run(z, invocations=2)
    assert report.phase == "cleanup", report.cause
    assert "left behind" in report.cause
    assert no_leftovers("daemon")


def test_an_extension_not_registered_for_shutdown_is_stopped_without_failing(
    tmp_path: Path,
) -> None:
    z = make_layer(tmp_path / "l.zip", extensions={"inv": extension("invoke-only")})
    report = run(z, invocations=2)
    assert report.status == "passed", report.cause
    assert report.extensions[0].received == ["INVOKE", "INVOKE"]


def test_a_runtime_that_crashes_in_init_fails_runtime_init(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", wrapper="raise RuntimeError('the SDK is broken')\n")
    report = run(z)
    assert report.phase == "runtime init"
    assert "the SDK is broken" in report.cause


def test_a_layer_without_the_wrapper_fails_runtime_init(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", wrapper=None, files={"python/other.py": ""})
    report = run(z)
    assert report.phase == "runtime init"
    assert "Runtime.ImportModuleError" in report.cause and "sentry_sdk" in report.cause


def test_a_handler_that_times_out_fails_invoke(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "slow.py").write_text("import time\ndef handler(event, context):\n    time.sleep(30)\n")
    report = run(
        make_layer(tmp_path / "l.zip"),
        function_dir=fn,
        handler="slow.handler",
        limits=Limits(init_s=3, timeout_s=1),
    )
    assert report.phase == "invoke"
    assert "no answer within the 1 s function timeout" in report.cause
    assert no_leftovers("slow")


def test_the_users_exception_reaches_sentry_and_the_run_passes(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(event, context):\n    raise KeyError(event['k'])\n")
    report = run(
        make_layer(tmp_path / "l.zip"),
        function_dir=fn,
        handler="app.handler",
        event=b'{"k": "v"}',
        invocations=1,
    )
    assert report.status == "passed", report.cause
    assert report.invocations[0].error_type == "KeyError"
    assert report.sentry_events == [{"type": "event", "exceptions": ["KeyError"], "path": "direct"}]


def test_an_error_that_never_reaches_sentry_fails(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip")
    fn = tmp_path / "fn"
    fn.mkdir()
    # The stand-in SDK skips sending when FAKE_SDK_SENDS=0; the function sets it, as a
    # misconfigured SDK would fail to send.
    (fn / "app.py").write_text(
        "import os\nos.environ['FAKE_SDK_SENDS'] = '0'\n"
        "def handler(event, context):\n    raise ValueError('lost')\n"
    )
    report = run(z, function_dir=fn, handler="app.handler", invocations=1)
    assert report.phase == "sentry"
    assert report.cause.startswith("the ValueError raised by invocation 1 (request ")
    assert "did not reach Sentry within 5 s (events received: none)" in report.cause


def test_an_unimportable_handler_fails_the_run(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    report = run(
        make_layer(tmp_path / "l.zip"), function_dir=fn, handler="missing.handler", invocations=1
    )
    assert report.phase == "invoke"
    assert "could not be loaded" in report.cause


OTHER = "arm64" if host_architecture() == "x86_64" else "x86_64"
OTHER_MACHINE = "aarch64" if OTHER == "arm64" else "x86_64"


def standin_layer(path: Path, machine: str, archs: list[str]) -> Path:
    """A layer whose launcher execs the sandbox stand-in for ``machine`` at /opt/relay/relay."""
    launcher = (
        '#!/bin/sh\nexec /opt/relay/relay run --port="$SENTRY_LAYER_EXTENSION_PORT" '
        '--aws-runtime-api="$AWS_LAMBDA_RUNTIME_API"\n'
    )
    z = make_layer(path, extensions={"sentry-lambda-extension": launcher})
    binary = ROOT / "extensions" / "standin" / f"sentry-standin-{machine}"
    with zipfile.ZipFile(z, "a") as zf:
        info = zipfile.ZipInfo("relay/relay")
        info.external_attr = 0o100755 << 16
        zf.writestr(info, binary.read_bytes())
    z.with_name(z.name + ".json").write_text(json.dumps({"architectures": archs}))
    return z


def test_another_architecture_without_qemu_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtimes, "other_arch_runner", lambda arch: None)
    z = standin_layer(tmp_path / "other.zip", OTHER_MACHINE, [OTHER])
    (report,) = smoke_zip(z, SmokeOptions())
    assert report.status == "skipped" and report.architecture == OTHER
    assert f"qemu-user for {OTHER} is not installed" in report.cause
    assert main(["smoke", str(z)]) == 0


def universal_layer(path: Path) -> Path:
    """Both stand-ins, and a launcher picking one by `uname -m` as universal layers do."""
    launcher = (
        "#!/bin/sh\n"
        'exec /opt/relay/relay-$(uname -m) run --port="$SENTRY_LAYER_EXTENSION_PORT" '
        '--aws-runtime-api="$AWS_LAMBDA_RUNTIME_API"\n'
    )
    z = make_layer(path, extensions={"sentry-lambda-extension": launcher})
    with zipfile.ZipFile(z, "a") as zf:
        for machine in ("x86_64", "aarch64"):
            info = zipfile.ZipInfo(f"relay/relay-{machine}")
            info.external_attr = 0o100755 << 16
            zf.writestr(
                info, (ROOT / "extensions/standin" / f"sentry-standin-{machine}").read_bytes()
            )
    z.with_name(z.name + ".json").write_text(json.dumps({"architectures": ["x86_64", "arm64"]}))
    return z


def test_a_universal_layer_without_qemu_runs_the_host_and_skips_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtimes, "other_arch_runner", lambda arch: None)
    reports = smoke_zip(
        universal_layer(tmp_path / "uni.zip"), SmokeOptions(baseline=False, limits=FAST)
    )
    by_arch = {r.architecture: r for r in reports}
    assert by_arch[host_architecture()].status == "passed", by_arch[host_architecture()].cause
    assert by_arch[OTHER].status == "skipped"


@pytest.mark.skipif(
    shutil.which(f"qemu-{OTHER_MACHINE}") is None, reason=f"qemu-user for {OTHER} not installed"
)
def test_a_universal_layer_runs_both_binaries_with_qemu(tmp_path: Path) -> None:
    reports = smoke_zip(
        universal_layer(tmp_path / "uni.zip"), SmokeOptions(baseline=False, limits=FAST)
    )
    by_arch = {r.architecture: r for r in reports}
    assert {r.status for r in reports} == {"passed"}, [(r.phase, r.cause) for r in reports]
    assert f"playing {OTHER_MACHINE}" in by_arch[OTHER].mount
    # The launcher took the other machine's binary: the stand-in logs the path it ran as.
    log = by_arch[OTHER].logs["extension-sentry-lambda-extension"]
    assert f"relay-{OTHER_MACHINE}" in log and "playing" not in by_arch[host_architecture()].mount


@pytest.mark.skipif(
    shutil.which(f"qemu-{OTHER_MACHINE}") is None, reason=f"qemu-user for {OTHER} not installed"
)
def test_another_architecture_runs_through_qemu_user(tmp_path: Path) -> None:
    z = standin_layer(tmp_path / "other.zip", OTHER_MACHINE, [OTHER])
    (report,) = smoke_zip(z, SmokeOptions(baseline=False, limits=FAST))
    assert (report.status, report.architecture) == ("passed", OTHER), (report.cause, report.logs)
    assert "playing aarch64" in report.mount or "playing x86_64" in report.mount
    assert "1 executable(s) run through" in report.mount
    assert report.extensions[0].name == "sentry-lambda-extension"


def test_options_are_checked() -> None:
    with pytest.raises(ArgumentError, match="--function and --handler go together"):
        SmokeOptions(handler="app.handler")
    with pytest.raises(ArgumentError, match="at least 2"):
        SmokeOptions(invocations=1)


# ---- the CLI ------------------------------------------------------------------------------


def test_cli_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make_layer(tmp_path / "good.zip")
    assert main(["smoke", str(good), "--json", "--no-baseline"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (
        doc["passed"] is True
        and doc["layers"][0]["extensions"][0]["name"] == "sentry-lambda-extension"
    )
    bad = make_layer(tmp_path / "bad.zip", extensions={"quitter": extension("exit")})
    assert main(["smoke", str(bad), "--no-baseline"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: smoke: {bad} (")
    assert "extension init failed: extension quitter exited with code 3" in err[0]


def test_cli_arch_that_no_zip_serves_is_an_error_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_layer(tmp_path / "good.zip")
    other = "arm64" if zip_architectures(good) == ["x86_64"] else "x86_64"
    assert main(["smoke", str(good), "--arch", other, "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["exit_code"] == 2
    assert err == f"error: --arch: {good} serves none of {other}; nothing to test\n"


def test_cli_event_from_file_and_bad_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "echo.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "ev.json").write_text('{"hello": "lambda"}')
    code = main(
        [
            "smoke",
            str(make_layer(tmp_path / "l.zip")),
            "--function",
            str(fn),
            "--handler",
            "echo.handler",
            "--event",
            f"@{tmp_path / 'ev.json'}",
            "--invocations",
            "1",
            "--no-baseline",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["invocations"][0]["response"] == {
        "hello": "lambda"
    }
    assert main(["smoke", "x.zip", "--event", "{nope"]) == 2
    assert "error: --event: not a JSON document" in capsys.readouterr().err


# ---- the APIs and the fake Sentry on their own ----------------------------------------------


def _call(
    api_addr: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(
        f"http://{api_addr}{path}",
        data=body,
        headers=headers or {},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_extensions_api_refuses_what_lambda_refuses() -> None:
    with serve_api("app.handler") as api:
        reg = "/2020-01-01/extension/register"
        assert (
            _call(api.address, reg, b'{"events": ["BOGUS"]}', {"Lambda-Extension-Name": "x"})[0]
            == 400
        )
        assert _call(api.address, reg, b'{"events": []}')[0] == 400  # no name
        status, body = _call(
            api.address, reg, b'{"events": ["INVOKE"]}', {"Lambda-Extension-Name": "x"}
        )
        assert status == 200 and body["functionName"] == "layer-builder-smoke"
        assert _call(api.address, reg, b'{"events": []}', {"Lambda-Extension-Name": "x"})[0] == 403
        status, body = _call(
            api.address,
            "/2020-01-01/extension/event/next",
            None,
            {"Lambda-Extension-Identifier": "nope"},
        )
        assert (status, body["errorType"]) == (403, "Extension.UnknownExtensionIdentifier")
        api.phase = "invoke"
        status, body = _call(api.address, reg, b'{"events": []}', {"Lambda-Extension-Name": "late"})
        assert (status, body["errorType"]) == (403, "Extension.RegistrationNotAllowed")
        assert (
            _call(api.address, "/2018-06-01/runtime/invocation/unknown/response", b"{}")[0] == 400
        )


def test_envelopes_are_parsed_with_and_without_lengths() -> None:
    event = json.dumps({"exception": {"values": [{"type": "E1"}]}}).encode()
    body = (
        b'{"dsn": "x"}\n'
        + json.dumps({"type": "event", "length": len(event)}).encode()
        + b"\n"
        + event
        + b"\n"
    )
    body += b'{"type": "session"}\n{"sid": "1"}\n'
    items = parse_envelope(gzip.decompress(gzip.compress(body)))
    assert [(i.type, i.exception_types) for i in items] == [("event", ["E1"]), ("session", [])]


def test_without_namespaces_the_layer_paths_are_rewritten_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from layer_builder.smoke import environment

    monkeypatch.setattr(
        environment, "_namespace_blocker", lambda tools: "namespaces off for the test"
    )
    monkeypatch.setenv(environment.UNISOLATED_VAR, "1")  # as root, refused without it
    launcher = "#!/bin/sh\nexec /opt/relay/ext\n"
    z = make_layer(
        tmp_path / "l.zip",
        extensions={"sentry-lambda-extension": launcher},
        files={"relay/ext": extension(name="sentry-lambda-extension")},
    )
    report = run(z, invocations=2)
    assert report.status == "passed", (report.cause, report.logs)
    assert "NOT mounted at /opt (namespaces off for the test)" in report.mount
    assert "/opt/ rewritten in 1 script(s)" in report.mount


def test_an_extension_reporting_init_error_is_named_with_its_error(tmp_path: Path) -> None:
    init_error = (
        "urllib.request.urlopen(urllib.request.Request(API + '/init/error', data=b'{}', headers={\n"
        "    'Lambda-Extension-Identifier': ident,\n"
        "    'Lambda-Extension-Function-Error-Type': 'Extension.ConfigInvalid'}))\n"
        "sys.exit(1)\n"
    )
    script = extension().replace("\nwhile True:", "\n" + init_error + "while True:")
    assert init_error in script
    report = run(make_layer(tmp_path / "l.zip", extensions={"picky": script}))
    assert report.phase == "extension init"
    assert report.cause == "extension picky reported init/error Extension.ConfigInvalid"
