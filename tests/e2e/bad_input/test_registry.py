"""Bad registries and registry URLs through ``registry show|latest`` and ``publish``: exit 2,
one ``error:`` line naming the registry file or URL (never its token), nothing written."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.bad_input import BadInput
from tests.helpers.registry_docs import document, write_version


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a directory of its own (outside the checked tree)."""
    root = tmp_path.parent / f"{tmp_path.name}-served"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    class QuietServer(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # A reader that stops at its size limit closes the connection mid-answer: the
            # server's broken pipe is expected, and its report would land in the test's stderr.
            if isinstance(sys.exc_info()[1], ConnectionError):
                return
            super().handle_error(request, client_address)

    server = QuietServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def _registry(tmp: Path) -> Path:
    root = tmp / "registry"
    arn = "arn:aws:lambda:us-east-1:943013980633:layer:SentryPythonServerlessSDK:12"
    write_version(root, document("2.75.0", {"x86_64": [arn]}))
    return root


def _deep_latest(tmp: Path) -> str:
    root = _registry(tmp)
    latest = root / "aws-lambda-layers/python/2.75.0.json"
    latest.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return str(root)


def _latest_loop(tmp: Path) -> str:
    root = _registry(tmp)
    latest = root / "aws-lambda-layers/python/latest.json"
    latest.unlink()
    os.symlink("latest.json", latest)
    return str(root)


def _root_loop(tmp: Path) -> str:
    loop = tmp / "registry-loop"
    os.symlink(loop, loop)
    return str(loop)


def _empty(tmp: Path) -> str:
    (tmp / "empty/aws-lambda-layers").mkdir(parents=True)
    return str(tmp / "empty")


def _not_json(tmp: Path) -> str:
    root = _registry(tmp)
    (root / "aws-lambda-layers/python/2.75.0.json").write_text("{not json")
    return str(root)


def _not_utf8(tmp: Path) -> str:
    root = _registry(tmp)
    (root / "aws-lambda-layers/python/2.75.0.json").write_bytes(b'{"a": "\xff"}')
    return str(root)


def _dangling_latest(tmp: Path) -> str:
    root = _registry(tmp)
    (root / "aws-lambda-layers/python/2.75.0.json").unlink()
    return str(root)


#: case -> (registry given the temporary directory, what the error line must say)
DIRS: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "a version document nested 100,000 deep": (_deep_latest, ("2.75.0.json", "nested")),
    "latest.json a symlink loop": (_latest_loop, ("latest.json", "symlink loop")),
    "the registry a symlink loop": (_root_loop, ("registry-loop",)),
    "no released layer": (_empty, ("empty", "holds no released layer")),
    "a version document not JSON": (_not_json, ("2.75.0.json", "not valid JSON")),
    "a version document not UTF-8": (_not_utf8, ("2.75.0.json",)),
    "latest.json dangling": (_dangling_latest, ("latest.json", "missing")),
}


@pytest.mark.parametrize("command", ["show", "latest"])
@pytest.mark.parametrize("case", sorted(DIRS))
def test_a_bad_registry_directory(
    case: str, command: str, tmp_path: Path, bad_input: BadInput
) -> None:
    make, names = DIRS[case]
    registry = make(tmp_path)
    argv = ["registry", command, "aws-layer:python", "--registry", registry]
    if command == "latest":
        argv += ["--region", "us-east-1"]
    bad_input(argv, *names)


URLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "an unclosed IPv6 address": (
        "https://[::1/?token=s3cr3t",
        ("https://[::1/", "not a valid URL"),
    ),
    "a port out of range": ("https://registry.example:99999/?token=s3cr3t", ("not a valid URL",)),
    "no host": ("https:///?token=s3cr3t", ("not a valid URL (no host)",)),
    "a port but no host": ("https://:0/?token=s3cr3t", ("not a valid URL (no host)",)),
    "plain http": ("http://registry.example/?token=s3cr3t", ("plain http://",)),
    "ftp": ("ftp://registry.example/?token=s3cr3t", ("unsupported URL scheme 'ftp'",)),
    "user info": ("ftp://user:s3cr3t@registry.example/", ("registry.example",)),
}


@pytest.mark.parametrize("case", sorted(URLS))
def test_a_bad_registry_url_never_shows_its_secret(
    case: str, tmp_path: Path, bad_input: BadInput
) -> None:
    url, names = URLS[case]
    line = bad_input(["registry", "show", "--registry", url], *names)
    assert "s3cr3t" not in line


def test_an_http_index_nested_100000_deep(
    static_server: tuple[str, Path], bad_input: BadInput
) -> None:
    base, root = static_server
    (root / "index.json").write_text("[" * 100_000 + "]" * 100_000)
    bad_input(["registry", "show", "--registry", f"{base}/index.json"], "index.json", "nested")


def test_an_http_index_that_is_html(static_server: tuple[str, Path], bad_input: BadInput) -> None:
    base, root = static_server
    (root / "index.json").write_text("<html>rate limited</html>")
    bad_input(["registry", "show", "--registry", f"{base}/index.json"], "not valid JSON")


def test_an_http_index_deeper_than_documents_are(
    static_server: tuple[str, Path], bad_input: BadInput
) -> None:
    base, root = static_server
    deep: object = 1
    for _ in range(200):  # parses fine, but no registry document is this deep
        deep = [deep]
    (root / "index.json").write_text(json.dumps({"aws-layer:python": deep}))
    bad_input(["registry", "show", "--registry", f"{base}/index.json"], "nested deeper than 32")


def test_an_http_index_without_end_is_cut_off(
    static_server: tuple[str, Path], bad_input: BadInput
) -> None:
    base, root = static_server
    with open(root / "index.json", "wb") as f:
        f.truncate(33 * 1024 * 1024)  # more than any index; read no further than the limit
    bad_input(["registry", "show", "--registry", f"{base}/index.json"], "over 33,554,432 bytes")


def test_a_huge_version_document(tmp_path: Path, bad_input: BadInput) -> None:
    root = _registry(tmp_path)
    doc = root / "aws-lambda-layers/python/2.75.0.json"
    with open(doc, "r+b") as f:
        f.truncate(5 * 1024 * 1024)
    bad_input(["registry", "show", "--registry", str(root)], str(doc), "over 4,194,304 bytes")
