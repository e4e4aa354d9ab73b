"""Shared fixtures: moto's server on loopback, a clean fake-AWS environment, small layers.

boto3 is never patched: tests point it at the moto server (or the fault proxy in front of
it) through ``AWS_ENDPOINT_URL`` and it speaks real HTTP. moto keeps its state per process,
so every test uses its own layer names (``unique_name``) instead of resetting the server.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layer_builder.build.assemble import artifact_stem
from layer_builder.build.zipper import write_zip
from layer_builder.config import LayerConfig, load_config
from layer_builder.model import BuildManifest, ReleaseVersion

FAKE_ACCOUNT = "123456789012"

# Variables that could route a test to real AWS or real credentials.
_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)


@pytest.fixture(autouse=True)
def _output_as_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=true (set by GitHub Actions) fits every output line to the width; tests that pin
    whole lines must see the same output on every machine, and set CI themselves to test it."""
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the whole run, on 127.0.0.1 with an ephemeral port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS variables, no config or credential files, no instance metadata."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws_env(no_aws_env: None, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """Fake credentials and AWS_ENDPOINT_URL pointing at moto; returns the endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    # Keep botocore's own (real-time) backoff short; region-level sleeps are injected.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    return moto_endpoint


@pytest.fixture
def unique_name() -> str:
    """A layer-name stem no other test uses (moto's state is shared by the whole run)."""
    return f"LbTest{uuid.uuid4().hex[:10]}"


ConfigFactory = Callable[..., LayerConfig]
LayerFactory = Callable[..., tuple[Path, BuildManifest]]


@pytest.fixture
def make_config(tmp_path: Path, unique_name: str) -> ConfigFactory:
    """Write and load a layer config; ``publish`` is extra YAML for the publish section."""

    def make(
        publish: str = "",
        architectures: str = "[x86_64, arm64]",
        name: str | None = None,
        layout: str = "per-arch",
        extra: str = "",
    ) -> LayerConfig:
        section = "publish:\n" + textwrap.indent(textwrap.dedent(publish), "  ") if publish else ""
        text = (
            textwrap.dedent(f"""\
            name: "{name or unique_name}{{{{ arch_suffix }}}}"
            description: "Test layer {{{{ version }}}} ({{{{ arch }}}})"
            license: MIT
            layout: {layout}
            canonical: "aws-layer:python"
            runtime: python
            compatible_runtimes: [python3.12, python3.13]
            architectures: {architectures}
            sdk:
              package: sentry-sdk
            registry:
              runtime_dir: python
            """)
            + section
            + extra
        )
        path = tmp_path / f"layer-{uuid.uuid4().hex[:6]}.yml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)

    return make


def compile_and_zip(workdir: Path, compile_call: str, umask: int, env: dict[str, str]) -> bytes:
    """Run ``compile_call`` (``compile_tree(root, ...)``) on ``workdir`` and zip it, from a
    fresh process with that umask and environment (hash seed, TZ, interpreter settings); the
    zip's bytes."""
    script = textwrap.dedent(f"""\
        import os
        from pathlib import Path
        from layer_builder.build.bytecode import compile_tree
        from layer_builder.build.zipper import write_zip
        os.umask({umask})
        root = Path({str(workdir)!r})
        {compile_call}
        write_zip(root, root.parent / (root.name + ".zip"), source_date_epoch=315532800)
        """)
    subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, check=True)
    return workdir.with_name(workdir.name + ".zip").read_bytes()


def write_layer(
    out: Path,
    cfg: LayerConfig,
    version: ReleaseVersion,
    arch: str | tuple[str, ...],
    extra: bytes = b"",
) -> tuple[Path, BuildManifest]:
    """A small valid layer zip and its manifest beside it (``<zip>.json``); ``arch`` is
    the per-arch layer's architecture, or the universal layer's architectures."""
    out.mkdir(parents=True, exist_ok=True)
    archs = (arch,) if isinstance(arch, str) else tuple(arch)
    arch = archs[0] if len(archs) == 1 else "-".join(archs)
    name = cfg.layer_name(version, archs[0])
    files = {
        "python/lbtest/__init__.py": f"ARCH = {arch!r}\nVERSION = {version.text!r}\n".encode(),
        "python/lbtest/data.bin": extra,
    }
    tree = out / f".tree-{arch}-{uuid.uuid4().hex[:6]}"
    for rel, content in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(content)
    # The real zipper and the real artifact name, so `layer-builder publish --dist` finds it.
    zip_path = out / f"{artifact_stem(cfg, version, None if cfg.universal else arch)}.zip"
    result = write_zip(tree, zip_path)
    shutil.rmtree(tree)
    data = zip_path.read_bytes()
    digest = hashlib.sha256(data)
    manifest = BuildManifest(
        layer_name=name,
        canonical=cfg.canonical,
        version=version.text,
        architectures=archs,
        layout=cfg.layout,
        compatible_runtimes=cfg.compatible_runtimes,
        description=cfg.description_for(version, archs),
        license=cfg.license,
        zip_file=zip_path.name,
        sha256=digest.hexdigest(),
        code_sha256=base64.b64encode(digest.digest()).decode(),
        zip_size=len(data),
        unzipped_size=sum(len(v) for v in files.values()),
        file_count=result.file_count,
        sdk_name="sentry-sdk",
        sdk_version=version.text,
        extensions=(),
        source_date_epoch=315532800,
    )
    manifest_path = zip_path.with_name(zip_path.name + ".json")
    manifest_path.write_text(manifest.to_json(), encoding="utf-8")
    return manifest_path, BuildManifest.load(manifest_path)


@pytest.fixture
def make_layers(tmp_path: Path) -> Callable[..., list[tuple[Path, BuildManifest]]]:
    """Build the release's zips + manifests into ``tmp_path/dist``: one per configured
    architecture (per-arch), or one serving them all (universal)."""

    def make(
        cfg: LayerConfig, version: ReleaseVersion, extra: bytes = b""
    ) -> list[tuple[Path, BuildManifest]]:
        if cfg.universal:
            archs = cfg.select_architectures(None)
            return [write_layer(tmp_path / "dist", cfg, version, archs, extra)]
        return [write_layer(tmp_path / "dist", cfg, version, a, extra) for a in cfg.architectures]

    return make


# ------------------------------------------------------------------ bad input, table-driven


def file_tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (links not followed): mode, size, mtime in ns."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


class BadInput:
    """Runs ``layer-builder ARGV`` from a directory of its own and checks what bad input must
    give: the exit code, stderr exactly one ``error:`` line naming the input, no traceback
    (stdout may hold the progress made before the error), and nothing written or changed
    under the test's temporary directory (which holds the working directory and every
    input)."""

    def __init__(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.tmp = tmp_path
        self.capsys = capsys
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(self.cwd)

    def __call__(self, argv: list[str], *names: str, code: int = 2) -> str:
        from layer_builder.cli import main

        before = file_tree(self.tmp)
        got = main(argv)
        out, err = self.capsys.readouterr()
        lines = err.splitlines()
        assert got == code, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert "Traceback" not in out + err and "error:" not in out, (argv, out)
        for name in names:
            assert name in lines[0], (argv, name, lines[0])
        assert file_tree(self.tmp) == before, f"{argv} wrote or changed files"
        return lines[0]


@pytest.fixture
def bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> BadInput:
    return BadInput(tmp_path, capsys, monkeypatch)
