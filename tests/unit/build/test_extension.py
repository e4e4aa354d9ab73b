"""Extension manifests, resolution into layer files, --extension-file, pin, and the stand-in."""

from __future__ import annotations

import hashlib
import json
import locale
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from layer_builder.build.extension import (
    DEFAULT_REGISTRY,
    ArchFile,
    ExtensionManifest,
    file_url,
    has_binary,
    load_manifest,
    parse_extension_file_args,
    pin,
    pins,
    resolve,
    resolve_binary,
)
from layer_builder.build.extension.pins import _rewrite_manifest
from layer_builder.build.launcher import render_launcher, resolve_extension
from layer_builder.errors import (
    ArchitectureError,
    ArgumentError,
    ChecksumError,
    ConfigError,
    DownloadError,
)
from layer_builder.sandbox.standin import serve_standin
from tests.helpers.elf_fixtures import NOT_ELF, write_elf
from tests.helpers.http_server import FakeServer, Reply
from tests.helpers.manifests import BASE, ELF, SHA, template_manifest, write_manifest
from tests.helpers.paths import REPO

EXTENSIONS = REPO / "extensions"
STANDIN_X86 = EXTENSIONS / "standin" / "sentry-standin-x86_64"
needs_x86_64 = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="runs the x86_64 stand-in binary",
)


# ------------------------------------------------------------------------------ manifests


def test_checked_in_manifests_load() -> None:
    relay = load_manifest(EXTENSIONS / "relay.yml")
    assert relay.name == "sentry-lambda-extension"
    assert relay.registry == "https://release-registry.services.sentry.io" and relay.app == "relay"
    assert relay.files["x86_64"].file == "relay-Linux-x86_64"
    assert relay.binary_path == "relay/relay" and relay.allow_http is False
    standin = load_manifest(EXTENSIONS / "standin.yml")
    assert set(standin.files) == {"x86_64", "arm64"}
    for arch, name in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        binary = EXTENSIONS / "standin" / f"sentry-standin-{name}"
        assert hashlib.sha256(binary.read_bytes()).hexdigest() == standin.files[arch].sha256


def test_unpinned_relay_refuses_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    manifest = load_manifest(Path("extensions/relay.yml"))
    if manifest.files["x86_64"].sha256 is not None:
        pytest.skip("relay.yml is pinned")
    with pytest.raises(ConfigError, match="not pinned") as exc:
        resolve_extension(manifest, "x86_64")
    assert str(exc.value) == (
        "extensions/relay.yml: files.x86_64.sha256: not pinned; "
        "run `layer-builder extension pin extensions/relay.yml`"
    )
    with pytest.raises(ConfigError, match=r"files\.arm64: no arm64 binary .*--extension-file"):
        resolve_extension(manifest, "arm64")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (BASE + "instal_path: x\n", "instal_path", "did you mean 'install_path'?"),
        (BASE.replace("sha256:", "sha265:"), "files.x86_64.sha265", "did you mean 'sha256'?"),
        (BASE.replace("x86_64:", "aarch64:"), "files.aarch64", "did you mean 'arm64'?"),
        (BASE.replace('"1.0"', "1.10"), "version", 'quote it: "1.1"'),
        (BASE.replace("{registry", '{url: "u", registry'), "source", "not both"),
        (BASE.replace("NOT-PINNED", "abc"), "files.x86_64.sha256", "not a sha256 hex digest"),
        (BASE.replace("name: ext", "name: ../ext"), "name", "is not a file name"),
        (BASE + "launcher: {template: launch.sh.j2}\n", "install_path", "required with a launcher"),
        (BASE + "install_path: relay/relay\n", "install_path", "only used with a launcher"),
        (
            BASE + "install_path: extensions/relay\nlauncher: {template: launch.sh.j2}\n",
            "install_path",
            "must be outside extensions/",
        ),
        (
            BASE + "install_path: ../relay\nlauncher: {template: launch.sh.j2}\n",
            "install_path",
            "relative path inside the layer",
        ),
        (
            BASE + "launcher: {template: nope.j2}\ninstall_path: r\n",
            "launcher.template",
            "not found",
        ),
        (
            BASE + "launcher: {template: launch.sh.j2, vars: {arch: 1}}\ninstall_path: r\n",
            "launcher.vars.arch",
            "is set by layer-builder",
        ),
        (
            BASE.replace("files: {x86_64: {file: f, sha256: NOT-PINNED}}", "files: {}"),
            "files",
            "lists no architecture",
        ),
        (BASE + "allow_http: yes please\n", "allow_http", "true or false"),
    ],
)
def test_manifest_errors_name_the_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = write_manifest(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        load_manifest(path)
    assert exc.value.key == key
    assert str(exc.value).startswith(f"{path}: {key}: ") and message in str(exc.value)


def test_registry_defaults_to_sentrys(tmp_path: Path) -> None:
    text = BASE.replace('{registry: "https://r.example"}', "{}")
    manifest = load_manifest(write_manifest(tmp_path, text))
    assert manifest.registry == "https://release-registry.services.sentry.io"
    assert manifest.app == "relay"


def test_manifest_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="extension manifest not found"):
        load_manifest(tmp_path / "missing.yml")
    with pytest.raises(ConfigError, match=r"invalid YAML: line 2, column 6: "):
        load_manifest(write_manifest(tmp_path, "name: x\n  bad: [\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_manifest(write_manifest(tmp_path, "- a list\n"))


# ------------------------------------------------------------------------------ resolution


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_resolve_through_the_standin(arch: str, tmp_path: Path) -> None:
    with serve_standin() as path:
        manifest = load_manifest(path)
        assert manifest.allow_http and manifest.registry.startswith("http://127.0.0.1:")  # type: ignore[union-attr]
        resolved = resolve_extension(manifest, arch, cache_dir=tmp_path)
    binary, launcher = resolved.files
    assert (binary.path, binary.mode, binary.content) == ("relay/relay", 0o755, None)
    assert binary.source is not None and binary.source.is_relative_to(tmp_path)
    assert hashlib.sha256(binary.source.read_bytes()).hexdigest() == manifest.files[arch].sha256
    assert (launcher.path, launcher.mode, launcher.source) == (
        "extensions/sentry-lambda-extension",
        0o755,
        None,
    )
    script = (launcher.content or b"").decode()
    assert script.startswith("#!/bin/sh\n")
    assert "sandbox stand-in (not Relay)" in script
    for needle in (
        f"{'x86_64' if arch == 'x86_64' else 'aarch64'}) binary=/opt/relay/relay ;;",
        'exec "$binary" run',
        "--mode=proxy",
        "--shutdown-timeout=2",
        '--aws-runtime-api="$AWS_LAMBDA_RUNTIME_API"',
        '--upstream-dsn="$SENTRY_DSN"',
    ):
        assert needle in script
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    info = resolved.info
    assert (info.name, info.version) == ("sentry-lambda-extension", "0.0.0-sandbox-standin")
    assert info.sha256 == manifest.files[arch].sha256
    assert info.source == "sandbox stand-in (not Relay)"
    assert not path.exists()  # the temporary manifest is gone with the server


def test_relay_launcher_renders_for_relay() -> None:
    script = render_launcher(load_manifest(EXTENSIONS / "relay.yml"), "x86_64").decode()
    assert "stand-in" not in script and "sentry-lambda-extension 25." in script
    assert "x86_64) binary=/opt/relay/relay ;;" in script and 'exec "$binary" run' in script
    assert '--upstream="https://sentry.io/"' in script


def test_resolve_by_url_template(server: FakeServer, tmp_path: Path) -> None:
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        server.route(f"/relay/1.0.0/relay-Linux-{machine}", Reply(body=ELF[arch]))
    manifest = load_manifest(template_manifest(tmp_path, server, SHA))
    for arch in ("x86_64", "arm64"):
        resolved = resolve_extension(manifest, arch, cache_dir=tmp_path / "cache")
        assert resolved.files[0].source is not None
        assert resolved.files[0].source.read_bytes() == ELF[arch]
        machine = "aarch64" if arch == "arm64" else arch
        assert resolved.info.source.endswith(f"/relay/1.0.0/relay-Linux-{machine}")
        assert resolved.files[1].content == b'#!/bin/sh\nexec /opt/relay/relay run "$@"\n'


def test_wrong_bytes_are_refused(server: FakeServer, tmp_path: Path) -> None:
    server.route("/relay/1.0.0/relay-Linux-x86_64", Reply(body=ELF["arm64"]))
    manifest = load_manifest(template_manifest(tmp_path, server, {"x86_64": SHA["x86_64"]}))
    with pytest.raises(ChecksumError, match=r"pinned in .*ext.yml files\.x86_64\.sha256"):
        resolve_extension(manifest, "x86_64", cache_dir=tmp_path / "cache")
    # Pinned to the wrong architecture's binary: the sha256 matches but the ELF check does not.
    manifest = load_manifest(template_manifest(tmp_path, server, {"x86_64": SHA["arm64"]}))
    with pytest.raises(ArchitectureError, match="arm64 binary in an x86_64 layer"):
        resolve_extension(manifest, "x86_64", cache_dir=tmp_path / "cache")


def test_registry_lookup(server: FakeServer, tmp_path: Path) -> None:
    server.route("/bin", Reply(body=ELF["x86_64"]))
    doc = {"version": "2.0.0", "files": {"relay-Linux-x86_64": {"url": server.base + "/bin"}}}
    server.route("/apps/relay/2.0.0", Reply(body=json.dumps(doc).encode()))
    text = f"""\
name: sentry-lambda-extension
version: "2.0.0"
source: {{registry: "{server.base}/", app: relay}}
allow_http: true
files:
  x86_64: {{file: relay-Linux-x86_64, sha256: {SHA["x86_64"]}}}
  arm64: {{file: relay-Linux-aarch64, sha256: {SHA["arm64"]}}}
"""
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    resolved = resolve_extension(manifest, "x86_64", cache_dir=tmp_path)
    # No launcher: the binary itself is the extension.
    assert [(f.path, f.mode) for f in resolved.files] == [
        ("extensions/sentry-lambda-extension", 0o755)
    ]
    listed = r"lists no file 'relay-Linux-aarch64' \(files: relay-Linux-x86_64\)"
    with pytest.raises(DownloadError, match=listed):
        resolve_extension(manifest, "arm64", cache_dir=tmp_path)


def test_local_override(tmp_path: Path) -> None:
    manifest = load_manifest(EXTENSIONS / "relay.yml")  # unpinned: an override does not care
    binary = write_elf(tmp_path / "relay", "arm64")
    resolved = resolve_extension(manifest, "arm64", override=binary)
    assert resolved.files[0].source == binary and resolved.files[0].path == "relay/relay"
    assert resolved.info.sha256 == hashlib.sha256(binary.read_bytes()).hexdigest()
    assert (resolved.info.version, resolved.info.source) == ("unknown", str(binary))
    with pytest.raises(ArchitectureError, match=r"--extension-file .*arm64 binary in an x86_64"):
        resolve_extension(manifest, "x86_64", override=binary)
    with pytest.raises(ArgumentError, match="no such file"):
        resolve_extension(manifest, "x86_64", override=tmp_path / "missing")


# ----------------------------------------------------------------------- --extension-file


def test_extension_file_args(tmp_path: Path) -> None:
    x86 = write_elf(tmp_path / "relay-x86", "x86_64")
    arm = write_elf(tmp_path / "relay-arm", "arm64")
    both = ("x86_64", "arm64")
    assert parse_extension_file_args([str(x86), f"aarch64={arm}"], both) == {
        "x86_64": x86,
        "arm64": arm,
    }
    assert parse_extension_file_args([f"x86_64={x86}"], both) == {"x86_64": x86}
    # Explicit ARCH= wins over the header; resolve_extension then refuses the mismatch.
    assert parse_extension_file_args([f"arm64={x86}"], both) == {"arm64": x86}
    assert parse_extension_file_args([], both) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x86={x86}", "unknown architecture 'x86' (expected x86_64 or arm64; did you mean"),
        ("arm64={dir}/missing", "no such file"),
        ("{script}", "not an ELF executable; cannot tell its architecture, write ARCH=PATH"),
        ("{i386}", "an ELF file for i386; cannot tell"),
        ("{arm}", "is for arm64, which this build does not include (--arch x86_64)"),
    ],
)
def test_extension_file_arg_errors(tmp_path: Path, value: str, message: str) -> None:
    script = tmp_path / "script"
    script.write_bytes(NOT_ELF)
    paths = {
        "x86": write_elf(tmp_path / "x", "x86_64"),
        "arm": write_elf(tmp_path / "a", "arm64"),
        "i386": write_elf(tmp_path / "i", "i386", bits=32),
        "script": script,
        "dir": tmp_path,
    }
    value = value.format(**paths)
    with pytest.raises(ArgumentError, match=re.escape(message)) as exc:
        parse_extension_file_args([value], ("x86_64",))
    assert str(exc.value).startswith(f"--extension-file {value}: ") and message in str(exc.value)


def test_extension_file_twice_for_one_arch(tmp_path: Path) -> None:
    a, b = write_elf(tmp_path / "a", "x86_64"), write_elf(tmp_path / "b", "x86_64")
    with pytest.raises(ArgumentError, match="a second file for x86_64"):
        parse_extension_file_args([str(a), f"x86_64={b}"], ("x86_64",))


# ------------------------------------------------------------------------------------ pin


def test_pin_rewrites_version_and_pins(server: FakeServer, tmp_path: Path) -> None:
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        server.route(f"/relay/2.10/relay-Linux-{machine}", Reply(body=ELF[arch]))
    path = template_manifest(tmp_path, server, {"x86_64": "NOT-PINNED", "arm64": "NOT-PINNED"})
    before = path.read_text()
    assert pin(path, "2.10", cache_dir=tmp_path / "cache") == SHA
    after = path.read_text()
    assert 'version: "2.10"' in after and "# header comment" in after
    assert after.count("# a comment that stays") == 0  # pinned lines are rewritten whole
    assert len(after.splitlines()) == len(before.splitlines())
    manifest = load_manifest(path)
    assert manifest.version == "2.10"
    assert {a: f.sha256 for a, f in manifest.files.items()} == SHA
    assert isinstance(manifest, ExtensionManifest)


def test_pin_latest_from_registry_and_cross_check(server: FakeServer, tmp_path: Path) -> None:
    server.route("/bin", Reply(body=ELF["x86_64"]))
    doc = {
        "version": "3.0.0",
        "files": {
            "relay-Linux-x86_64": {
                "url": server.base + "/bin",
                "checksums": {"sha256-hex": SHA["x86_64"]},
            }
        },
    }
    server.route("/apps/relay/latest", Reply(body=json.dumps(doc).encode()))
    server.route("/apps/relay/3.0.0", Reply(body=json.dumps(doc).encode()))
    text = f"""\
name: sentry-lambda-extension
version: "2.0.0"
source: {{registry: "{server.base}", app: relay}}
allow_http: true
files:
  x86_64:
    file: relay-Linux-x86_64
    sha256: NOT-PINNED
"""
    path = write_manifest(tmp_path, text, launcher=False)
    assert pin(path, None, cache_dir=tmp_path / "cache") == {"x86_64": SHA["x86_64"]}
    assert yaml.safe_load(path.read_text())["version"] == "3.0.0"

    doc["files"]["relay-Linux-x86_64"]["checksums"]["sha256-hex"] = "0" * 64  # type: ignore[index]
    server.route("/apps/relay/3.0.0", Reply(body=json.dumps(doc).encode()))
    with pytest.raises(ChecksumError, match="differs from the registry's checksum"):
        pin(path, "3.0.0", cache_dir=tmp_path / "cache")


def test_pin_refuses_wrong_arch_and_leaves_manifest(server: FakeServer, tmp_path: Path) -> None:
    server.route("/relay/2.0/relay-Linux-x86_64", Reply(body=ELF["arm64"]))
    path = template_manifest(tmp_path, server, {"x86_64": "NOT-PINNED"})
    before = path.read_text()
    with pytest.raises(ArchitectureError, match="arm64 binary in an x86_64 layer"):
        pin(path, "2.0", cache_dir=tmp_path / "cache")
    assert path.read_text() == before


# ------------------------------------------------------------------ the stand-in binary


def free_port() -> int:
    """A loopback port nobody listens on, for the stand-in's proxy (Relay's 3000 may be taken)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def extensions_api(server: FakeServer) -> str:
    """Script a Lambda Extensions API: register, one INVOKE, then SHUTDOWN."""
    server.route(
        "/2020-01-01/extension/register",
        Reply(
            200,
            b'{"functionName":"f","functionVersion":"$LATEST","handler":"h"}',
            {"Lambda-Extension-Identifier": "ext-id-42", "Content-Type": "application/json"},
        ),
    )
    server.route(
        "/2020-01-01/extension/event/next",
        Reply(body=b'{"eventType":"INVOKE","requestId":"r1","deadlineMs":1}'),
        Reply(body=b'{"eventType":"SHUTDOWN","shutdownReason":"spindown"}'),
    )
    return server.base.removeprefix("http://")


@needs_x86_64
def test_standin_speaks_the_extensions_api(server: FakeServer) -> None:
    api = extensions_api(server)
    proc = subprocess.run(
        [str(STANDIN_X86), "run", "--mode=proxy", f"--port={free_port()}"],
        capture_output=True,
        text=True,
        timeout=10,
        env={"AWS_LAMBDA_RUNTIME_API": api},
    )
    assert proc.returncode == 0, proc.stderr
    assert "layer-builder SANDBOX STAND-IN for sentry-lambda-extension (not Relay)" in proc.stdout
    assert "SHUTDOWN received" in proc.stdout
    register, *polls = server.requests
    assert (register.method, register.path) == ("POST", "/2020-01-01/extension/register")
    assert register.headers["lambda-extension-name"] == "sentry-lambda-extension"
    assert json.loads(register.body) == {"events": ["INVOKE", "SHUTDOWN"]}
    assert [(p.method, p.path) for p in polls] == [("GET", "/2020-01-01/extension/event/next")] * 2
    assert all(p.headers["lambda-extension-identifier"] == "ext-id-42" for p in polls)


@needs_x86_64
def test_standin_fails_when_registration_fails(server: FakeServer) -> None:
    server.route("/2020-01-01/extension/register", Reply(403, b"{}"))
    api = server.base.removeprefix("http://")
    proc = subprocess.run(
        [str(STANDIN_X86), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=10,
        env={"AWS_LAMBDA_RUNTIME_API": api},
    )
    assert proc.returncode == 1 and "register failed with HTTP 403" in proc.stderr
    proc = subprocess.run([str(STANDIN_X86)], capture_output=True, text=True, timeout=10, env={})
    assert proc.returncode == 1 and "AWS_LAMBDA_RUNTIME_API is unset" in proc.stderr


@needs_x86_64
@pytest.mark.parametrize("dsn", [None, "https://key@o1.ingest.sentry.io/2"])
def test_launcher_starts_the_binary(server: FakeServer, tmp_path: Path, dsn: str | None) -> None:
    """The rendered launcher, run by /bin/sh, execs the binary with Relay's arguments."""
    script = render_launcher(load_manifest(EXTENSIONS / "standin.yml"), "x86_64").decode()
    launcher = tmp_path / "sentry-lambda-extension"
    launcher.write_text(script.replace("/opt/relay/relay", str(STANDIN_X86)))
    launcher.chmod(0o755)
    port = str(free_port())
    env = {
        "AWS_LAMBDA_RUNTIME_API": extensions_api(server),
        "PATH": "/usr/bin:/bin",
        "SENTRY_LAYER_EXTENSION_PORT": port,
    }
    if dsn:
        env["SENTRY_DSN"] = dsn
    proc = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=10, env=env)
    assert proc.returncode == 0, proc.stderr
    upstream = f"--upstream-dsn={dsn}" if dsn else "--upstream=https://sentry.io/"
    expected = (
        f"{STANDIN_X86} run --mode=proxy --host=127.0.0.1 --port={port} --shutdown-timeout=2 "
        f"--aws-runtime-api={env['AWS_LAMBDA_RUNTIME_API']} {upstream}"
    )
    assert expected in proc.stdout


# ------------------------------------------------------------------------------------------------
# Extension manifests: every refusal with its exact message and key, and what a valid
# manifest loads into.


LAUNCH = "launcher: {template: launch.sh.j2}\ninstall_path: relay/relay\n"
FILES = "files: {x86_64: {file: f, sha256: NOT-PINNED}}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # required values and their types, at every place a string is read
        (BASE.replace("name: ext\n", ""), "name: is required"),
        (BASE.replace("name: ext", "name: 7"), 'name: must be a string; quote it: "7"'),
        (BASE.replace("name: ext", "name: [a]"), "name: must be a string"),
        (BASE.replace('version: "1.0"', "version: ''"), "version: is required"),
        (BASE.replace('{registry: "https://r.example"}', "{url: 5}"),
         'source.url: must be a string; quote it: "5"'),
        (BASE.replace('"https://r.example"', "[x]"), "source.registry: must be a string"),
        (BASE.replace('{registry: "https://r.example"}', "{app: {a: 1}}"),
         "source.app: must be a string"),
        (BASE.replace("file: f, ", ""), "files.x86_64.file: is required"),
        (BASE + "launcher: {template: [x]}\ninstall_path: r\n",
         "launcher.template: must be a string"),
        (BASE + "launcher: {template: launch.sh.j2}\ninstall_path: 1\n",
         'install_path: must be a string; quote it: "1"'),
        (BASE + "label: 2.5\n", 'label: must be a string; quote it: "2.5"'),
        # mappings
        ("- a list\n", "must be a mapping"),
        ("", "is empty; an extension manifest is a mapping (name, version, files)"),
        (BASE.replace('{registry: "https://r.example"}', "somewhere"),
         "source: must be a mapping"),
        (BASE.replace('source: {registry: "https://r.example"}\n', ""), "source: is required"),
        (BASE.replace(FILES, "files: [x86_64]"), "files: must be a mapping"),
        (BASE.replace(FILES, "files: {x86_64: f}"), "files.x86_64: must be a mapping"),
        (BASE + "launcher: somewhere\n", "launcher: must be a mapping"),
        (BASE + "launcher: {template: launch.sh.j2, vars: [1]}\ninstall_path: r\n",
         "launcher.vars: must be a mapping"),
        # keys
        (BASE.replace("{registry", "{regsitry"),
         "source.regsitry: unknown key; did you mean 'registry'? (allowed: registry, app, url)"),
        (BASE + "launcher: {templat: x}\n",
         "launcher.templat: unknown key; did you mean 'template'? (allowed: template, vars)"),
        (BASE + "zzz: 1\n",
         "zzz: unknown key (allowed: name, version, label, source, allow_http, files, "
         "install_path, launcher)"),
        (BASE.replace('{registry: "https://r.example"}', '{url: "u", app: relay}'),
         "source: set either `url` (a template) or `registry`/`app`, not both"),
        # architectures
        (BASE.replace("x86_64:", "x86-64:"),
         "files.x86-64: unknown architecture; did you mean 'x86_64'? (expected x86_64 or arm64)"),
        (BASE.replace("x86_64:", "aarch64:"),
         "files.aarch64: unknown architecture; did you mean 'arm64'? (expected x86_64 or arm64)"),
        (BASE.replace("x86_64:", "mips:"),
         "files.mips: unknown architecture (expected x86_64 or arm64)"),
        (BASE.replace(FILES, "files: {}"), "files: lists no architecture"),
        # values
        (BASE + "allow_http: 1\n", "allow_http: must be true or false"),
        (BASE.replace("NOT-PINNED", "abc"),
         "files.x86_64.sha256: 'abc' is not a sha256 hex digest (or NOT-PINNED)"),
        (BASE.replace("name: ext", "name: .ext"),
         "name: '.ext' is not a file name (letters, digits, '.', '_', '-')"),
        (BASE + "launcher: {template: launch.sh.j2, vars: {binary: x}}\ninstall_path: r\n",
         "launcher.vars.binary: is set by layer-builder; pick another name"),
        (BASE + "install_path: relay/relay\n",
         "install_path: only used with a launcher; without one the binary is extensions/ext"),
        (BASE + "launcher: {template: launch.sh.j2}\ninstall_path: extensions/x\n",
         "install_path: must be outside extensions/: Lambda would start the binary there "
         "directly, without the launcher's arguments"),
        (BASE + "launcher: {template: launch.sh.j2}\ninstall_path: /opt/relay\n",
         "install_path: '/opt/relay' must be a relative path inside the layer"),
        (BASE + "launcher: {template: launch.sh.j2}\n",
         "install_path: required with a launcher (e.g. relay/relay)"),
        # not YAML
        ("name: [ext\n",
         "invalid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        # a reader error has no line mark
        ("name: \x07\n",
         "invalid YAML: unacceptable character #x0007: special characters are not allowed"),
    ],
)  # fmt: skip
def test_manifest_refusals_word_for_word(tmp_path: Path, text: str, expected: str) -> None:
    path = write_manifest(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_manifest(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_unreadable_manifests(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError, match="extension manifest not found$") as exc:
        load_manifest(missing)
    assert (str(exc.value), exc.value.key) == (f"{missing}: extension manifest not found", None)
    with pytest.raises(ConfigError, match=r": cannot read: Is a directory$") as exc:
        load_manifest(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path}: cannot read: ") and exc.value.key is None
    latin = tmp_path / "latin.yml"
    latin.write_bytes(BASE.replace("ext", "caf\xe9").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text: 'utf-8' codec can't decode") as exc:
        load_manifest(latin)


def test_a_minimal_manifest_loads_with_its_defaults(tmp_path: Path) -> None:
    text = BASE.replace('source: {registry: "https://r.example"}', "source: {}")
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    assert (manifest.name, manifest.version, manifest.app) == ("ext", "1.0", "relay")
    assert (manifest.registry, manifest.url_template) == (DEFAULT_REGISTRY, None)
    assert manifest.files == {"x86_64": ArchFile("f", None)}
    assert (manifest.allow_http, manifest.install_path, manifest.label) == (False, None, None)
    assert (manifest.launcher_template, dict(manifest.launcher_vars)) == (None, {})
    assert manifest.binary_path == "extensions/ext"


def test_a_full_manifest_loads_every_field(tmp_path: Path) -> None:
    sha = "AB" * 32
    text = (
        "name: ext\nversion: '2.0'\nlabel: the stand-in\nallow_http: true\n"
        "source: {registry: 'https://r.example', app: relay-mini}\n"
        f"files: {{arm64: {{file: f-arm, sha256: {sha}}}, x86_64: {{file: f-x86}}}}\n"
        "launcher: {template: launch.sh.j2, vars: {mode: proxy}}\ninstall_path: ./relay//bin\n"
    )
    manifest = load_manifest(write_manifest(tmp_path, text))
    assert (manifest.registry, manifest.app, manifest.label) == (
        "https://r.example",
        "relay-mini",
        "the stand-in",
    )
    assert manifest.files == {
        "arm64": ArchFile("f-arm", "ab" * 32),
        "x86_64": ArchFile("f-x86", None),
    }
    assert manifest.allow_http is True
    assert (manifest.install_path, manifest.binary_path) == ("relay/bin", "relay/bin")
    assert manifest.launcher_template == tmp_path / "launch.sh.j2"
    assert dict(manifest.launcher_vars) == {"mode": "proxy"}


# ------------------------------------------------------------------------------------------------
# Extension download URLs, the launcher, --extension-file and `extension pin`, against a
# real HTTP server on loopback: exact URLs, messages and the rewritten manifest, byte for byte.


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


def url_template_manifest(tmp_path: Path, url: str, file: str = "relay-Linux-aarch64") -> Path:
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
    manifest = load_manifest(url_template_manifest(tmp_path, url, file="relay&<arm>"))
    assert file_url(manifest, "arm64") == "https://dl.example/2.0/arm64/aarch64/relay&<arm>"
    assert file_url(manifest, "arm64", version="2.1").startswith("https://dl.example/2.1/")


def test_url_template_with_an_unknown_variable(tmp_path: Path) -> None:
    path = url_template_manifest(tmp_path, "https://dl.example/{{ release }}/{{ file }}")
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
    manifest = load_manifest(url_template_manifest(tmp_path, url))
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
    manifest = load_manifest(url_template_manifest(tmp_path, "https://dl.example/{{ file }}"))
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
    path = url_template_manifest(tmp_path, server.base + "/{{ version }}/relay-Linux-{{ machine }}")
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


# ------------------------------------------------------------------------------------------------
# `extension pin`'s in-place rewrite, the universal-layout refusal, registry URLs and
# has_binary: exact texts and files.


TWO_ARCHS = """\
name: ext
version: "1.0"
source: {url: "https://dl.example/{{ file }}"}
files:
  x86_64:
    file: relay-Linux-x86_64
    sha256: OLD-X
  arm64:
    file: relay-Linux-aarch64
    sha256: OLD-A
install_path: relay/relay
"""

ONE_ARCH = (
    'name: ext\nversion: "1.0"\nsource: {url: "https://dl.example/{{ file }}"}\n'
    "files: {arm64: {file: f}}\n"
)


def test_universal_layout_without_a_launcher_is_refused(tmp_path: Path) -> None:
    text = TWO_ARCHS.replace("OLD-X", "NOT-PINNED").replace("OLD-A", "NOT-PINNED")
    text = text.replace("install_path: relay/relay\n", "")
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    assert manifest.binary_path_for("arm64", "per-arch") == "extensions/ext"
    with pytest.raises(ConfigError, match="needs a launcher") as exc:
        manifest.binary_path_for("arm64", "universal")
    assert str(exc.value) == (
        f"{manifest.path}: launcher: a universal layer needs a launcher that picks the binary "
        "by machine; add launcher: (see extensions/README.md) or set layout: per-arch in the "
        "layer config"
    )


def test_has_binary_follows_the_files_table(tmp_path: Path) -> None:
    text = TWO_ARCHS.replace("  arm64:\n    file: relay-Linux-aarch64\n    sha256: OLD-A\n", "")
    text = text.replace("OLD-X", "NOT-PINNED").replace("install_path: relay/relay\n", "")
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    assert (has_binary(manifest, "x86_64"), has_binary(manifest, "arm64")) == (True, False)


def test_registry_url_strips_only_slashes(tmp_path: Path) -> None:
    text = 'name: ext\nversion: "1.0"\nsource: {registry: "https://reg.example/X/", app: relay}\n'
    text += "files: {x86_64: {file: f}}\n"
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    assert resolve.registry_url(manifest, "1.0") == "https://reg.example/X/apps/relay/1.0"


def test_registry_document_listing_several_files(server: FakeServer, tmp_path: Path) -> None:
    text = f'name: ext\nversion: "1.0"\nsource: {{registry: "{server.base}", app: relay}}\n'
    text += "allow_http: true\nfiles: {x86_64: {file: relay-Linux-x86_64}}\n"
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    doc = {"files": {"relay-Linux-i386": {"url": "u"}, "relay-Darwin": {"url": "v"}}}
    server.route("/apps/relay/1.0", Reply(body=json.dumps(doc).encode()))
    with pytest.raises(DownloadError, match="lists no file") as exc:
        file_url(manifest, "x86_64")
    assert "(files: relay-Darwin, relay-Linux-i386);" in str(exc.value)


def test_rewrite_escapes_backslashes_and_quotes_in_the_version(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, TWO_ARCHS, launcher=False)
    pins._rewrite_manifest(path, 'v\\2"b', {"arm64": "NEW-A"})
    expected = TWO_ARCHS.replace('version: "1.0"', 'version: "v\\\\2\\"b"')
    assert path.read_text() == expected.replace("OLD-A", "NEW-A")


def test_rewrite_refusal_lists_every_pin(tmp_path: Path) -> None:
    text = TWO_ARCHS.replace(
        "  x86_64:\n    file: relay-Linux-x86_64\n    sha256: OLD-X\n",
        "  x86_64: {file: relay-Linux-x86_64, sha256: OLD-X}\n",
    )
    path = write_manifest(tmp_path, text, launcher=False)
    with pytest.raises(ConfigError, match="cannot update the pins") as exc:
        pins._rewrite_manifest(path, "1.0", {"x86_64": "NEW-X", "arm64": "NEW-A"})
    assert str(exc.value) == (
        f"{path}: cannot update the pins in place; edit them by hand: "
        "files.x86_64.sha256: NEW-X, files.arm64.sha256: NEW-A"
    )


def test_rewrite_writes_beside_the_manifest_not_in_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_manifest(tmp_path, TWO_ARCHS, launcher=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    pins._rewrite_manifest(path, "1.0", {"x86_64": "NEW-X"})
    assert path.read_text() == TWO_ARCHS.replace("OLD-X", "NEW-X")


def test_an_interrupted_rewrite_leaves_the_manifest_as_it_was_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_manifest(tmp_path, TWO_ARCHS, launcher=False)
    before = path.read_bytes()

    def interrupted(src: object, dst: object) -> None:
        raise OSError("interrupted")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        pins._rewrite_manifest(path, "1.0", {"x86_64": "NEW-X"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ext.yml"]


def test_rewrite_keeps_a_quoted_continuation_line(tmp_path: Path) -> None:
    # A double-quoted file name folded over two lines: its second line is text, not a key.
    text = TWO_ARCHS.replace(
        "    file: relay-Linux-x86_64\n", '    file: "relay-Linux\n      Xsha256: x86_64"\n'
    )
    path = write_manifest(tmp_path, text, launcher=False)
    pins._rewrite_manifest(path, "1.0", {"x86_64": "NEW-X"})
    assert path.read_text() == text.replace("OLD-X", "NEW-X")


def test_extension_file_that_is_a_directory_or_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ArgumentError, match="directory") as exc:
        parse_extension_file_args(["arm64=dir"], ("arm64",))
    assert str(exc.value) == "--extension-file arm64=dir: is a directory, not a file"
    with pytest.raises(ArgumentError, match="no such file") as exc:
        parse_extension_file_args(["gone"], ("arm64",))
    assert str(exc.value) == "--extension-file gone: no such file"


def test_extension_file_for_an_arch_not_built_lists_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_elf(tmp_path / "relay", "x86_64")
    with pytest.raises(ArgumentError, match="does not include") as exc:
        parse_extension_file_args(["relay"], ("arm64", "arm64"))
    assert str(exc.value) == (
        "--extension-file relay: is for x86_64, which this build does not include "
        "(--arch arm64 --arch arm64)"
    )


def test_override_that_is_a_directory_or_missing(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, ONE_ARCH, launcher=False))
    with pytest.raises(ArgumentError, match="directory") as exc:
        resolve_binary(manifest, "arm64", override=tmp_path)
    assert str(exc.value) == f"--extension-file {tmp_path}: is a directory, not a file"
    with pytest.raises(ArgumentError, match="no such file") as exc:
        resolve_binary(manifest, "arm64", override=tmp_path / "gone")
    assert str(exc.value) == f"--extension-file {tmp_path / 'gone'}: no such file"


def test_override_info_names_its_architecture(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, ONE_ARCH, launcher=False))
    binary = write_elf(tmp_path / "relay", "arm64")
    assert resolve_binary(manifest, "arm64", override=binary).info.architecture == "arm64"


def test_downloaded_binary_info_names_its_architecture(server: FakeServer, tmp_path: Path) -> None:
    text = (
        f'name: ext\nversion: "1.0"\nsource: {{url: "{server.base}/{{{{ file }}}}"}}\n'
        f"allow_http: true\nfiles: {{arm64: {{file: relay-arm, sha256: {SHA['arm64']}}}}}\n"
    )
    manifest = load_manifest(write_manifest(tmp_path, text, launcher=False))
    server.route("/relay-arm", Reply(body=ELF["arm64"]))
    info = resolve_binary(manifest, "arm64", cache_dir=tmp_path / "cache").info
    assert (info.architecture, info.sha256) == ("arm64", SHA["arm64"])


# ------------------------------------------------------------------------------------------------
# `extension pin` rewrites a manifest line by line: a line inside a multi-line quoted value
# that looks like a key is not one. A tab-led line (YAML indents with spaces only, so it can
# only be value text) was read as a top-level key and rewritten, and the re-read of the
# broken result raised a raw yaml ParserError (a traceback); a column-0 one is refused with
# the usual hand-edit message.


DIGEST = "a" * 64


def _manifest(tmp_path: Path, continuation: str) -> Path:
    path = tmp_path / "relay.yml"
    path.write_text(
        'name: relay\ndescription: "first\n'
        f'{continuation}version: 1"\nversion: "25.1.0"\n'
        'files:\n  x86_64:\n    url: "https://x/y"\n    sha256: NOT-PINNED\n',
        encoding="utf-8",
    )
    return path


def test_a_tab_led_line_inside_a_quoted_value_is_left_alone(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "\t")
    _rewrite_manifest(path, "25.2.0", {"x86_64": DIGEST})
    assert path.read_text(encoding="utf-8") == (
        'name: relay\ndescription: "first\n\tversion: 1"\nversion: "25.2.0"\n'
        f'files:\n  x86_64:\n    url: "https://x/y"\n    sha256: {DIGEST}\n'
    )
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["description"] == "first version: 1"


def test_a_key_like_line_at_column_0_inside_a_value_is_refused_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = _manifest(tmp_path, "")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot update the pins in place") as info:
        _rewrite_manifest(path, "25.2.0", {"x86_64": DIGEST})
    assert str(info.value) == (
        f"{path}: cannot update the pins in place; edit them by hand: files.x86_64.sha256: {DIGEST}"
    )
    assert path.read_text(encoding="utf-8") == before


# ------------------------------------------------------------------------------------------------
# Manifests and launcher templates are UTF-8 whatever the locale: under LC_CTYPE=C (an ASCII
# locale, as in many minimal containers) a non-ASCII comment or label must still load, render
# and survive `extension pin`'s rewrite.


MANIFEST = """\
# Relay — the Sentry Lambda extension (pinned by `extension pin`)
name: ext
version: "1.0"
label: Relay für Lambda
source: {url: "https://dl.example/{{ file }}"}
files:
  arm64:
    file: relay-Linux-aarch64
    sha256: OLD
"""


def write_utf8_manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ext.yml"
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    if sys.flags.utf8_mode:
        pytest.skip("Python's UTF-8 mode ignores the locale's encoding")
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    assert locale.getencoding().lower() in {"ansi_x3.4-1968", "ascii", "us-ascii"}
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)


@pytest.mark.usefixtures("ascii_locale")
def test_a_manifest_label_outside_ascii_loads(tmp_path: Path) -> None:
    text = MANIFEST.replace("sha256: OLD\n", "")
    manifest = load_manifest(write_utf8_manifest(tmp_path, text))
    assert manifest.label == "Relay für Lambda"


@pytest.mark.usefixtures("ascii_locale")
def test_pin_rewrites_a_manifest_with_non_ascii_comments(tmp_path: Path) -> None:
    path = write_utf8_manifest(tmp_path, MANIFEST)
    pins._rewrite_manifest(path, "1.1", {"arm64": "NEW"})
    expected = MANIFEST.replace('"1.0"', '"1.1"').replace("OLD", "NEW")
    assert path.read_bytes() == expected.encode("utf-8")


@pytest.mark.usefixtures("ascii_locale")
def test_a_launcher_template_outside_ascii_renders(tmp_path: Path) -> None:
    template = "#!/bin/sh\n# für {{ arch }}\nexec {{ binary }}\n"
    (tmp_path / "launch.sh.j2").write_bytes(template.encode("utf-8"))
    text = (
        "name: ext\nversion: '1'\nsource: {}\nfiles: {arm64: {file: f}}\n"
        "install_path: relay/relay\nlauncher: {template: launch.sh.j2}\n"
    )
    manifest = load_manifest(write_utf8_manifest(tmp_path, text))
    assert render_launcher(manifest, "arm64") == (
        "#!/bin/sh\n# für arm64\nexec /opt/relay/relay\n".encode()
    )
