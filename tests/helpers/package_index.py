"""A real local Python package index for tests: wheels made here, served over loopback HTTP.

``make_wheel`` writes a small pure-Python wheel (``py3-none-any``, so it installs for every
Lambda platform) with fixed timestamps, so the same arguments give the same bytes.
``PackageIndex`` serves a PEP 503 simple index of a directory of wheels
(``/simple/<project>/`` with ``#sha256=`` of the bytes it serves now, as a compromised index
would too) and the files themselves; adding or replacing a wheel takes effect on the next
request, so a test can move the index to "another day". Responses say ``no-store`` so that
pip's HTTP cache never answers for the index.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import threading
import zipfile
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_EPOCH = (1980, 1, 1, 0, 0, 0)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    license_expression: str = "MIT",
    payload: str = "",
) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` into ``directory``; returns its path."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    meta = [
        "Metadata-Version: 2.4",
        f"Name: {name}",
        f"Version: {version}",
        f"License-Expression: {license_expression}",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n{payload}",
        f"{dist_info}/METADATA": "\n".join(meta) + "\n\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            zf.writestr(zipfile.ZipInfo(path, _EPOCH), text)
    return wheel


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PackageIndex:
    """Serves the wheels in ``directory`` as a simple index at ``url`` (``.../simple/``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if parts == ["simple"]:
                    names = sorted({_normalise(w.name.split("-")[0]) for w in outer._wheels()})
                    links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names)
                    self._send(200, f"<html><body>{links}</body></html>".encode(), "text/html")
                elif len(parts) == 2 and parts[0] == "simple":
                    wheels = [
                        w for w in outer._wheels() if _normalise(w.name.split("-")[0]) == parts[1]
                    ]
                    if not wheels:
                        self._send(404, b"not found", "text/plain")
                        return
                    links = "".join(
                        f'<a href="/files/{html.escape(w.name)}#sha256={sha256_of(w)}">'
                        f"{html.escape(w.name)}</a>\n"
                        for w in wheels
                    )
                    self._send(200, f"<html><body>{links}</body></html>".encode(), "text/html")
                elif len(parts) == 2 and parts[0] == "files":
                    path = outer.directory / parts[1]
                    if path.is_file():
                        self._send(200, path.read_bytes(), "application/octet-stream")
                    else:
                        self._send(404, b"not found", "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def _wheels(self) -> Iterator[Path]:
        return iter(sorted(self.directory.glob("*.whl")))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tiny_config(directory: Path, name: str, *, extension: Path | None = None) -> Path:
    """A layer config whose SDK (``tinysdk``) comes from the index pip is pointed at, with a
    wrapper file of ours and, optionally, an extension manifest."""
    (directory / "wrapper.py").write_text("import tinysdk\n", encoding="utf-8")
    config = directory / "tiny.yml"
    config.write_text(
        f'name: "{name}{{{{ arch_suffix }}}}"\n'
        'description: "Tiny SDK {{ version }}"\n'
        "license: MIT\n"
        'canonical: "aws-layer:tiny"\n'
        "runtime: python\n"
        "compatible_runtimes: [python3.12]\n"
        "architectures: [x86_64, arm64]\n"
        "sdk:\n  package: tinysdk\n"
        "files:\n  - from: wrapper.py\n    to: python/tiny_wrapper.py\n"
        + (f"extension: {extension}\n" if extension else "")
        + "registry:\n  runtime_dir: tiny\n",
        encoding="utf-8",
    )
    return config
