"""Small real layers for the smoke tests: extensions and an SDK stand-in the tests control.

``make_layer`` writes a zip laid out as a Python layer: ``extensions/`` with the given
executables, and under ``python/`` a tiny stand-in for sentry-sdk whose wrapper handler
(``sentry_sdk.integrations.init_serverless_sdk.sentry_lambda_handler``) loads the handler in
``SENTRY_INITIAL_HANDLER`` and posts an envelope to ``SENTRY_DSN`` when it raises, with
nothing but the standard library. ``extension(mode)`` is a Python extension that speaks the
Extensions API and misbehaves as asked.
"""

from __future__ import annotations

import sys
import textwrap
import zipfile
from pathlib import Path

WRAPPER_PATH = "python/sentry_sdk/integrations/init_serverless_sdk/__init__.py"

WRAPPER = textwrap.dedent("""\
    import importlib, json, os, traceback, urllib.parse, urllib.request

    def _send(exc, context):
        dsn = urllib.parse.urlsplit(os.environ["SENTRY_DSN"])
        url = f"http://{dsn.hostname}:{dsn.port}/api{dsn.path}/envelope/"
        event = {"exception": {"values": [{"type": type(exc).__name__, "value": str(exc)}]},
                 "extra": {"lambda": {"aws_request_id": context.aws_request_id}}}
        item = json.dumps({"type": "event"}).encode()
        body = b"\\n".join([b"{}", item, json.dumps(event).encode()])
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=5)

    class HandlerConfigError(Exception):  # what the real wrapper raises
        pass

    def sentry_lambda_handler(event, context):
        module, _, func = os.environ["SENTRY_INITIAL_HANDLER"].rpartition(".")
        try:
            handler = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise HandlerConfigError(str(exc)) from exc
        try:
            return handler(event, context)
        except Exception as exc:
            for _ in range(int(os.environ.get("FAKE_SDK_SENDS", "1"))):
                _send(exc, context)
            raise
""")


def extension(mode: str = "ok", name: str | None = None) -> str:
    """An extension script: ``ok`` behaves; ``exit`` exits at once; ``never-register`` sleeps;
    ``ignore-shutdown`` stays after SHUTDOWN; ``daemon`` leaves a detached child behind;
    ``wrong-name`` registers under another name; ``invoke-only`` registers for INVOKE only."""
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
        if MODE == "daemon" and os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        while True:
            nxt = urllib.request.Request(API + "/event/next",
                                         headers={{"Lambda-Extension-Identifier": ident}})
            event = json.load(urllib.request.urlopen(nxt))
            if event["eventType"] == "SHUTDOWN":
                if MODE == "ignore-shutdown":
                    time.sleep(120)
                sys.exit(0)
    """)


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
