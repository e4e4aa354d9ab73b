"""Small real layers for the smoke tests: extensions and an SDK stand-in the tests control.

``make_layer`` writes a zip laid out as a Python layer: ``extensions/`` with the given
executables, and under ``python/`` a tiny stand-in for sentry-sdk whose wrapper handler
(``sentry_sdk.integrations.init_serverless_sdk.sentry_lambda_handler``) loads the handler in
``SENTRY_INITIAL_HANDLER`` and posts an envelope naming the request id to ``SENTRY_DSN`` when
it raises, with nothing but the standard library. The function steers it through
environment variables it sets at import: ``FAKE_SDK_SENDS`` (events per error),
``FAKE_SDK_FROM`` (the first invocation it reports, like an SDK initialised late) and
``FAKE_SDK_VIA_EXTENSION=1`` (send to the extension's local address, as the real layer does
where the launcher lists the machine). ``extension(mode)`` is a Python extension that speaks
the Extensions API and misbehaves as asked; ``standin_layer`` puts the sandbox stand-in
behind a launcher carrying the real launcher's first line.
"""

from __future__ import annotations

import json
import sys
import textwrap
import zipfile
from pathlib import Path

from tests.helpers.cli import run_subprocess
from tests.helpers.paths import REPO as ROOT

WRAPPER_PATH = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"

WRAPPER = textwrap.dedent("""\
    import importlib, json, os, traceback, urllib.parse, urllib.request

    _calls = 0

    def _send(exc, context):
        dsn = urllib.parse.urlsplit(os.environ["SENTRY_DSN"])
        host = f"{dsn.hostname}:{dsn.port}"
        if os.environ.get("FAKE_SDK_VIA_EXTENSION") == "1":
            host = "127.0.0.1:" + os.environ["SENTRY_LAYER_EXTENSION_PORT"]
        url = f"http://{host}/api{dsn.path}/envelope/"
        event = {"exception": {"values": [{"type": type(exc).__name__, "value": str(exc)}]},
                 "extra": {"lambda": {"aws_request_id": context.aws_request_id}}}
        item = json.dumps({"type": "event"}).encode()
        body = b"\\n".join([b"{}", item, json.dumps(event).encode()])
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=5)

    class HandlerConfigError(Exception):  # what the real wrapper raises
        pass

    def sentry_lambda_handler(event, context):
        global _calls
        _calls += 1
        module, _, func = os.environ["SENTRY_INITIAL_HANDLER"].rpartition(".")
        try:
            handler = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise HandlerConfigError(str(exc)) from exc
        try:
            return handler(event, context)
        except Exception as exc:
            if _calls >= int(os.environ.get("FAKE_SDK_FROM", "1")):
                for _ in range(int(os.environ.get("FAKE_SDK_SENDS", "1"))):
                    _send(exc, context)
            raise
""")


def extension(mode: str = "ok", name: str | None = None) -> str:
    """An extension script: ``ok`` behaves; ``exit`` exits at once; ``never-register`` sleeps;
    ``ignore-shutdown`` stays after SHUTDOWN; ``daemon`` leaves a detached child behind;
    ``wrong-name`` registers under another name; ``invoke-only`` registers for INVOKE only;
    ``silent-init`` registers and never calls Next; ``silent-invoke`` stops calling Next
    after its first INVOKE."""
    return textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys, time, urllib.request
        MODE = {mode!r}
        API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension"
        NAME = {name!r} or os.path.basename(sys.argv[0])
        if MODE == "exit":
            sys.exit(3)
        if MODE == "never-register":
            time.sleep(120)
        events = ["INVOKE"] if MODE == "invoke-only" else ["INVOKE", "SHUTDOWN"]
        body = json.dumps({{"events": events}}).encode()
        req = urllib.request.Request(API + "/register", data=body, method="POST",
                                     headers={{"Lambda-Extension-Name": NAME}})
        ident = urllib.request.urlopen(req).headers["Lambda-Extension-Identifier"]
        if MODE == "silent-init":
            time.sleep(120)
        if MODE == "daemon" and os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        while True:
            nxt = urllib.request.Request(API + "/event/next",
                                         headers={{"Lambda-Extension-Identifier": ident}})
            event = json.load(urllib.request.urlopen(nxt))
            if MODE == "silent-invoke" and event["eventType"] == "INVOKE":
                time.sleep(120)
            if event["eventType"] == "SHUTDOWN":
                if MODE == "ignore-shutdown":
                    time.sleep(120)
                sys.exit(0)
    """)


# The fake wrapper as the real layer behaves where its extension runs: it always sends through
# the extension's local address (for layers whose launcher names every machine they run on).
WRAPPER_VIA_EXTENSION = WRAPPER.replace('os.environ.get("FAKE_SDK_VIA_EXTENSION") == "1"', "True")
assert WRAPPER_VIA_EXTENSION != WRAPPER


def make_layer(
    path: Path,
    *,
    extensions: dict[str, str] | None = None,
    wrapper: str | None = WRAPPER,
    files: dict[str, str] | None = None,
) -> Path:
    """Write a Python layer zip at ``path``; ``extensions`` maps file name -> script text."""
    exts = {"sentry-lambda-extension": extension()} if extensions is None else extensions
    entries: dict[str, tuple[str, int]] = {}
    for name, text in exts.items():
        entries[f"extensions/{name}"] = (text, 0o755)
    if wrapper is not None:
        entries["python/sentry_sdk/__init__.py"] = ("", 0o644)
        entries["python/sentry_sdk/integrations/__init__.py"] = ("", 0o644)
        entries[WRAPPER_PATH] = (wrapper, 0o644)
    for name, text in (files or {}).items():
        entries[name] = (text, 0o755 if text.startswith("#!") else 0o644)
    with zipfile.ZipFile(path, "w") as zf:
        for name, (text, mode) in sorted(entries.items()):
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, text)
    return path


STANDIN_DIR = ROOT / "extensions" / "standin"


def standin_layer(path: Path, machines: list[str], archs: list[str]) -> Path:
    """A universal-style layer: the stand-in for each of ``machines`` at
    ``/opt/relay/relay-<machine>`` and a launcher that starts the one for ``uname -m`` with
    the proxy arguments, under the real launcher's first line (which the SDK reads)."""
    launcher = (
        "#!/bin/sh\n"
        f"# sentry-layer-extension: machines={','.join(machines)} proxy=127.0.0.1:3000\n"
        'exec /opt/relay/relay-$(uname -m) run --port="$SENTRY_LAYER_EXTENSION_PORT" '
        '--upstream-dsn="$SENTRY_DSN" --aws-runtime-api="$AWS_LAMBDA_RUNTIME_API"\n'
    )
    z = make_layer(path, extensions={"sentry-lambda-extension": launcher})
    with zipfile.ZipFile(z, "a") as zf:
        for machine in machines:
            info = zipfile.ZipInfo(f"relay/relay-{machine}")
            info.external_attr = 0o100755 << 16
            zf.writestr(info, (STANDIN_DIR / f"sentry-standin-{machine}").read_bytes())
    z.with_name(z.name + ".json").write_text(json.dumps({"architectures": archs}))
    return z


MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


def build(config: str, version: str, out: Path, archs: list[str]) -> Path:
    """Build a reference config (real pip/npm install) with the stand-in for ``archs``."""
    args = ["build", str(ROOT / "configs" / config), "--version", version, "--out", str(out)]
    for arch in archs:
        binary = STANDIN_DIR / f"sentry-standin-{MACHINES[arch]}"
        args += ["--arch", arch, "--extension-file", f"{arch}={binary}"]
    proc = run_subprocess(*args, "--json", cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    (layer,) = json.loads(proc.stdout)["layers"]
    return Path(layer["zip"])


def smoke(*args: str, cwd: Path) -> tuple[int, dict[str, object], str]:
    """``layer-builder smoke ARGS --json``: exit code, document, stderr."""
    proc = run_subprocess("smoke", *args, "--json", cwd=cwd)
    return proc.returncode, json.loads(proc.stdout), proc.stderr
