"""Extension manifests, resolution into layer files, --extension-file, pin, and the stand-in."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from layer_builder.build.extension import (
    ExtensionManifest,
    load_manifest,
    parse_extension_file_args,
    pin,
)
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

REPO = Path(__file__).resolve().parent.parent
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
