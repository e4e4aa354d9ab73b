"""Extension download URLs, the launcher, --extension-file and `extension pin`, against a
real HTTP server on loopback: exact URLs, messages and the rewritten manifest, byte for byte
(mutation testing found these unchecked; see docs/mutation-testing.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_builder.build.extension import file_url, load_manifest, parse_extension_file_args, pin
from layer_builder.build.launcher import render_launcher, resolve_extension
from layer_builder.errors import (
    ArchitectureError,
    ArgumentError,
    ChecksumError,
    ConfigError,
    DownloadError,
)
from tests.helpers.elf_fixtures import write_elf
from tests.helpers.http_server import FakeServer, Reply
from tests.helpers.manifests import ELF, SHA, write_manifest


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def registry_manifest(tmp_path: Path, server: FakeServer, *, slash: str = "") -> Path:
    text = f"""\
name: ext
version: "1.0"
source: {{registry: "{server.base}{slash}", app: relay}}
allow_http: true
files:
  x86_64:
    file: relay-Linux-x86_64
    sha256: NOT-PINNED
"""
    return write_manifest(tmp_path, text, launcher=False)


def template_manifest(tmp_path: Path, url: str, file: str = "relay-Linux-aarch64") -> Path:
    text = f"""\
name: ext
version: "2.0"
source: {{url: "{url}"}}
allow_http: true
files:
  arm64: {{file: "{file}", sha256: NOT-PINNED}}
"""
    return write_manifest(tmp_path, text, launcher=False)


# ------------------------------------------------------------------------------ file_url


def test_url_template_gets_every_variable_unescaped(tmp_path: Path) -> None:
    url = "https://dl.example/{{ version }}/{{ arch }}/{{ machine }}/{{ file }}"
    manifest = load_manifest(template_manifest(tmp_path, url, file="relay&<arm>"))
    assert file_url(manifest, "arm64") == "https://dl.example/2.0/arm64/aarch64/relay&<arm>"
    assert file_url(manifest, "arm64", version="2.1").startswith("https://dl.example/2.1/")


def test_url_template_with_an_unknown_variable(tmp_path: Path) -> None:
    path = template_manifest(tmp_path, "https://dl.example/{{ release }}/{{ file }}")
    with pytest.raises(ConfigError, match="bad template") as exc:
        file_url(load_manifest(path), "arm64")
    assert str(exc.value) == f"{path}: source.url: bad template: 'release' is undefined"


def test_registry_documents_old_and_new_shapes(server: FakeServer, tmp_path: Path) -> None:
    manifest = load_manifest(registry_manifest(tmp_path, server, slash="/"))
    old = {"file_urls": {"relay-Linux-x86_64": "https://dl.example/old"}}
    server.route("/apps/relay/1.0", Reply(body=json.dumps(old).encode()))
    assert file_url(manifest, "x86_64") == "https://dl.example/old"
    where = f"{server.base}/apps/relay/1.0"  # one slash, though the manifest ends in one
    other = {"file_urls": {"relay-Linux-i386": "https://dl.example/i386"}}
    server.route("/apps/relay/1.0", Reply(body=json.dumps(other).encode()))
    with pytest.raises(DownloadError, match="lists no file") as exc:
        file_url(manifest, "x86_64")
    assert str(exc.value) == (
        f"{where}: lists no file 'relay-Linux-x86_64' (files: relay-Linux-i386); "
        f"check {manifest.path} files.x86_64.file"
    )
    server.route("/apps/relay/1.0", Reply(body=b"{}"))
    with pytest.raises(DownloadError, match=r"\(files: none\)"):
        file_url(manifest, "x86_64")
    server.route("/apps/relay/1.0", Reply(body=b"[1, 2]"))
    with pytest.raises(DownloadError, match="not a release") as exc:
        file_url(manifest, "x86_64")
    assert str(exc.value) == f"{where}: not a release registry document"


# ------------------------------------------------------------------- resolve and launcher


def test_resolve_refusals_name_what_they_refuse(server: FakeServer, tmp_path: Path) -> None:
    url = f"{server.base}/{{{{ file }}}}"
    manifest = load_manifest(template_manifest(tmp_path, url))
    with pytest.raises(ArgumentError, match="unknown architecture") as exc:
        resolve_extension(manifest, "mips")
    assert str(exc.value) == "--arch mips: unknown architecture (expected x86_64 or arm64)"
    with pytest.raises(ConfigError, match="no x86_64 binary") as exc:
        resolve_extension(manifest, "x86_64")
    assert str(exc.value) == (
        f"{manifest.path}: files.x86_64: no x86_64 binary is configured; add files.x86_64 or "
        "pass --extension-file x86_64=PATH"
    )
    text = manifest.path.read_text().replace("NOT-PINNED", SHA["x86_64"])
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    server.route("/relay-Linux-aarch64", Reply(body=ELF["x86_64"]))  # the wrong binary
    with pytest.raises(ArchitectureError, match="x86_64 binary in an arm64") as exc:
        resolve_extension(manifest, "arm64", cache_dir=tmp_path / "cache")
    assert str(exc.value).startswith(f"{server.base}/relay-Linux-aarch64: is an x86_64 binary")


def test_override_keeps_the_manifest_name(tmp_path: Path) -> None:
    manifest = load_manifest(template_manifest(tmp_path, "https://dl.example/{{ file }}"))
    binary = write_elf(tmp_path / "relay", "arm64")
    info = resolve_extension(manifest, "arm64", override=binary).info
    assert (info.name, info.version, info.source) == ("ext", "unknown", str(binary))


def test_launcher_gets_every_variable_and_keeps_its_last_newline(tmp_path: Path) -> None:
    (tmp_path / "launch.sh.j2").write_text(
        "#!/bin/sh\n# {{ name }} {{ version }} {{ arch }} {{ machine }} {{ label }} {{ mode }}\n"
        "exec {{ binary }} run\n"
    )
    text = (
        "name: ext\nversion: '3.1'\nlabel: <the stand-in>\nsource: {}\n"
        "files: {arm64: {file: f}}\ninstall_path: relay/relay\n"
        "launcher: {template: launch.sh.j2, vars: {mode: a&b}}\n"
    )
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    assert render_launcher(manifest, "arm64") == (
        b"#!/bin/sh\n# ext 3.1 arm64 aarch64 <the stand-in> a&b\nexec /opt/relay/relay run\n"
    )
    (tmp_path / "launch.sh.j2").write_text("exec {{ binray }}\n")
    with pytest.raises(ConfigError, match="undefined") as exc:
        render_launcher(manifest, "arm64")
    assert str(exc.value) == f"{manifest.path}: launcher: launch.sh.j2: 'binray' is undefined"


def test_install_paths_that_leave_the_layer_are_refused(tmp_path: Path) -> None:
    for bad in ("relay\\\\relay", "."):
        text = (
            "name: ext\nversion: '1'\nsource: {}\nfiles: {arm64: {file: f}}\n"
            f'install_path: "{bad}"\nlauncher: {{template: launch.sh.j2}}\n'
        )
        path = write_manifest(tmp_path, text)
        shown = bad.replace("\\\\", "\\")
        with pytest.raises(ConfigError, match="must be a relative path") as exc:
            load_manifest(path)
        assert str(exc.value) == (
            f"{path}: install_path: {shown!r} must be a relative path inside the layer"
        )


# ------------------------------------------------------------------------ --extension-file


def test_extension_file_names_with_dots_and_equals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_elf(tmp_path / "relay", "x86_64")  # a bare name: no '=', no '/', no '.'
    write_elf(tmp_path / "relay.bin=3", "arm64")  # '=' in a name with a dot
    (tmp_path / "sub").mkdir()
    with_slash = write_elf(tmp_path / "sub" / "relay=1", "x86_64")  # '=' after a '/'
    assert parse_extension_file_args(["relay", "relay.bin=3"], ("x86_64", "arm64")) == {
        "x86_64": Path("relay"),
        "arm64": Path("relay.bin=3"),
    }
    assert parse_extension_file_args([f"x86_64={with_slash}"], ("x86_64",)) == {
        "x86_64": with_slash
    }
    assert parse_extension_file_args([str(with_slash)], ("x86_64",)) == {"x86_64": with_slash}


# ------------------------------------------------------------------------------------ pin

PIN_BEFORE = """\
# pinned by `layer-builder extension pin`
name: ext
version: "1.0.0"   # replaced: the whole line
source:
  url: "{base}/{{{{ version }}}}/relay-Linux-{{{{ machine }}}}"
allow_http: true
files:
  x86_64:
    file: relay-Linux-x86_64
    # the sha256 below: rewritten
    sha256: NOT-PINNED

  arm64:
  # note: this comment sits at the architecture's indent
    file: relay-Linux-aarch64
    sha256: NOT-PINNED"""

PIN_AFTER = """\
# pinned by `layer-builder extension pin`
name: ext
version: "2.0"
source:
  url: "{base}/{{{{ version }}}}/relay-Linux-{{{{ machine }}}}"
allow_http: true
files:
  x86_64:
    file: relay-Linux-x86_64
    # the sha256 below: rewritten
    sha256: {x86}

  arm64:
  # note: this comment sits at the architecture's indent
    file: relay-Linux-aarch64
    sha256: {arm}"""


def test_pin_rewrites_exactly_the_version_and_sha256_lines(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAYER_BUILDER_CACHE", str(tmp_path / "default-cache"))
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        server.route(f"/2.0/relay-Linux-{machine}", Reply(body=ELF[arch]))
    path = write_manifest(tmp_path, PIN_BEFORE.format(base=server.base), launcher=False)
    os.chmod(path, 0o640)
    assert pin(path, "2.0", cache_dir=tmp_path / "cache") == SHA
    assert path.read_text() == PIN_AFTER.format(
        base=server.base, x86=SHA["x86_64"], arm=SHA["arm64"]
    )
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in (tmp_path / "cache" / "sha256").iterdir()) == sorted(SHA.values())
    assert not (tmp_path / "default-cache").exists()


def test_pin_refuses_a_manifest_it_cannot_rewrite_in_place(
    server: FakeServer, tmp_path: Path
) -> None:
    server.route("/2.0/relay-Linux-aarch64", Reply(body=ELF["arm64"]))
    path = template_manifest(tmp_path, server.base + "/{{ version }}/relay-Linux-{{ machine }}")
    before = path.read_text()  # files in flow style: the sha256 is not on a line of its own
    with pytest.raises(ConfigError, match="cannot update the pins in place") as exc:
        pin(path, "2.0", cache_dir=tmp_path / "cache")
    assert str(exc.value) == (
        f"{path}: cannot update the pins in place; edit them by hand: "
        f"files.arm64.sha256: {SHA['arm64']}"
    )
    assert path.read_text() == before


def test_pin_without_a_version_in_the_registry(server: FakeServer, tmp_path: Path) -> None:
    path = registry_manifest(tmp_path, server)
    server.route("/apps/relay/latest", Reply(body=b'{"version": 3}'))
    with pytest.raises(DownloadError, match="no version") as exc:
        pin(path, None, cache_dir=tmp_path / "cache")
    assert str(exc.value) == f"{server.base}/apps/relay/latest: no version in the registry document"


def test_pin_with_a_template_keeps_the_manifest_version(server: FakeServer, tmp_path: Path) -> None:
    server.route("/2.0/relay-Linux-aarch64", Reply(body=ELF["arm64"]))
    text = f"""\
name: ext
version: "2.0"
source: {{url: "{server.base}/{{{{ version }}}}/relay-Linux-{{{{ machine }}}}"}}
allow_http: true
files:
  arm64:
    file: relay-Linux-aarch64
    sha256: NOT-PINNED
"""
    path = write_manifest(tmp_path, text, launcher=False)
    assert pin(path, None, cache_dir=tmp_path / "cache") == {"arm64": SHA["arm64"]}
    assert load_manifest(path).version == "2.0"


@pytest.mark.parametrize(
    "entry",
    [
        "a plain string",  # not a mapping: the URL comes from file_urls
        {"url": "{bin}", "checksums": "not a mapping"},
        {"url": "{bin}", "checksums": {"sha256-hex": 12345}},
    ],
)
def test_pin_ignores_registry_checksums_it_cannot_read(
    server: FakeServer, tmp_path: Path, entry: object
) -> None:
    server.route("/bin", Reply(body=ELF["x86_64"]))
    text = json.dumps(entry).replace("{bin}", server.base + "/bin")
    doc = {
        "version": "1.0",
        "files": {"relay-Linux-x86_64": json.loads(text)},
        "file_urls": {"relay-Linux-x86_64": server.base + "/bin"},
    }
    server.route("/apps/relay/1.0", Reply(body=json.dumps(doc).encode()))
    path = registry_manifest(tmp_path, server)
    assert pin(path, "1.0", cache_dir=tmp_path / "cache") == {"x86_64": SHA["x86_64"]}


def test_pin_names_the_url_of_a_mismatch_and_a_wrong_binary(
    server: FakeServer, tmp_path: Path
) -> None:
    server.route("/bin", Reply(body=ELF["x86_64"]))
    files = {"relay-Linux-x86_64": {"url": server.base + "/bin", "checksums": {}}}
    files["relay-Linux-x86_64"]["checksums"] = {"sha256-hex": "F" * 64}
    server.route("/apps/relay/1.0", Reply(body=json.dumps({"files": files}).encode()))
    path = registry_manifest(tmp_path, server)
    with pytest.raises(ChecksumError, match="differs") as exc:
        pin(path, "1.0", cache_dir=tmp_path / "cache")
    assert str(exc.value) == (
        f"{server.base}/bin: sha256 {SHA['x86_64']} differs from the registry's checksum "
        + "f" * 64
    )
    server.route("/bin", Reply(body=ELF["arm64"]))
    with pytest.raises(ArchitectureError, match="arm64 binary") as exc:
        pin(path, "1.0", cache_dir=tmp_path / "cache")
    assert str(exc.value).startswith(f"{server.base}/bin: is an arm64 binary;")
