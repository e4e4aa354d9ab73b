"""A universal layer built through the CLI with pip replaced by a stand-in (``FakeInstall``)
and real tiny ELF binaries: ``build``, the ``universal_layer`` fixture (zip, manifest), and
ways to change one thing in it (``rewrite``, ``edit_manifest``) before ``verify``."""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from layer_builder.build import sdk
from layer_builder.cli import main
from layer_builder.config import LayerConfig
from layer_builder.model import ReleaseVersion
from tests.helpers.elf_fixtures import make_elf, write_elf
from tests.helpers.paths import REPO

RELAY = REPO / "extensions" / "relay.yml"


V = ReleaseVersion.parse("3.2.1")


def write_config(tmp_path: Path, *, layout: str = "universal", name: str | None = None) -> Path:
    path = tmp_path / "uni.yml"
    path.write_text(
        textwrap.dedent(f"""\
            name: "{name or "Uni" + uuid.uuid4().hex[:8]}{{{{ arch_suffix }}}}"
            description: "Universal test {{{{ version }}}} ({{{{ arch }}}})"
            license: MIT
            layout: {layout}
            canonical: "aws-layer:python"
            runtime: python
            compatible_runtimes: [python3.12, python3.13]
            architectures: [x86_64, arm64]
            sdk:
              package: tiny
            extension: {RELAY}
            publish:
              max_workers: 8
              region_timeout: 20
              attempts: 2
            registry:
              runtime_dir: python
            """),
        encoding="utf-8",
    )
    return path


class FakeInstall:
    """Stands in for pip: a pure-Python package, plus a native library when ``native``."""

    def __init__(self, native: bool = False) -> None:
        self.native = native
        self.calls: list[str] = []

    def __call__(self, cfg: LayerConfig, sdk_version: str, arch: str, root: Path) -> None:
        self.calls.append(arch)
        pkg = root / "python" / "tiny"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(f"VERSION = {sdk_version!r}\n")
        if self.native:
            (pkg / "_speedups.so").write_bytes(make_elf(arch, kind="shared"))


@pytest.fixture
def binaries(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "bin").mkdir()
    return {
        "x86_64": write_elf(tmp_path / "bin" / "relay-x86", "x86_64", payload=b"x86" * 20),
        "arm64": write_elf(tmp_path / "bin" / "relay-arm", "arm64", payload=b"arm" * 20),
    }


def ext_args(binaries: dict[str, Path], *archs: str) -> list[str]:
    return [a for arch in archs for a in ("--extension-file", f"{arch}={binaries[arch]}")]


def build(
    capsys: pytest.CaptureFixture[str], config: Path, out: Path, *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["build", str(config), "--version", V.text, "--out", str(out), "--json", *args])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


LAUNCHER = "extensions/sentry-lambda-extension"


@pytest.fixture
def universal_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """A good universal layer: (zip, manifest)."""
    monkeypatch.setattr(sdk, "install_sdk", FakeInstall())
    (tmp_path / "bin").mkdir()
    binaries = {
        "x86_64": write_elf(tmp_path / "bin" / "relay-x86", "x86_64", payload=b"x86" * 20),
        "arm64": write_elf(tmp_path / "bin" / "relay-arm", "arm64", payload=b"arm" * 20),
    }
    code, data, err = build(
        capsys, write_config(tmp_path), tmp_path / "out", *ext_args(binaries, "x86_64", "arm64")
    )
    assert code == 0 and data is not None, err
    zip_path = Path(data["layers"][0]["zip"])
    return zip_path, zip_path.with_name(zip_path.name + ".json")


def rewrite(zip_path: Path, manifest_path: Path, **changes: tuple[int, bytes]) -> None:
    """Rewrite members (name -> (mode, content)) keeping order and markers; the manifest is
    updated to the new zip, so only the change itself is a finding."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(zip_path, "w") as out:
        for info, data in members:
            if info.filename in changes:
                mode, data = changes[info.filename]
                info.external_attr = mode << 16
            out.writestr(info, data, compress_type=info.compress_type)
    manifest = json.loads(manifest_path.read_text())
    digest = hashlib.sha256(zip_path.read_bytes()).digest()
    manifest.update(
        sha256=digest.hex(),
        code_sha256=base64.b64encode(digest).decode(),
        zip_size=zip_path.stat().st_size,
    )
    manifest_path.write_text(json.dumps(manifest))


def edit_manifest(manifest_path: Path, **fields: Any) -> None:
    manifest = json.loads(manifest_path.read_text())
    manifest.update(fields)
    manifest_path.write_text(json.dumps(manifest))


def verify_err(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["verify", *args]) == 2
    return capsys.readouterr().err.splitlines()
