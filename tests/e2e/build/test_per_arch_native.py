"""A `layout: per-arch` Node build whose SDK holds a native module (an ELF ``.node`` file)
installs it once per architecture instead of reusing the first install.

A real npm install, offline: a local package whose optional dependencies are one platform
package per CPU (``"cpu": ["x64"]`` / ``["arm64"]``, each holding a ``.node`` ELF file for its
machine), the way native npm packages ship their prebuilt binaries; ``npm install --cpu=...``
picks the one for the architecture being built. In the second variant the x64 package holds
a WebAssembly fallback instead of an ELF file: the x86_64 tree has no ELF file, yet it is
not the arm64 tree (npm's lockfile says which packages it picked by CPU).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from layer_builder.cli import main
from layer_builder.elf import read_elf_header
from tests.helpers.elf_fixtures import make_elf, write_elf
from tests.helpers.paths import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm not installed"),
]

CPUS = {"x86_64": "x64", "arm64": "arm64"}


def pack(src: Path, dest: Path) -> Path:
    """``npm pack`` of the package directory ``src`` into ``dest``; the tarball's path."""
    out = subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(dest)],
        cwd=src, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dest / out.stdout.strip().splitlines()[-1]


WASM = b"\0asm\1\0\0\0"


@pytest.fixture(scope="module", params=["elf-per-cpu", "x64-without-elf"])
def native_package(tmp_path_factory: pytest.TempPathFactory, request: Any) -> Path:
    """The tarball of ``native-demo``, whose per-CPU optional dependencies are tarballs too."""
    root = tmp_path_factory.mktemp("npm-native")
    optional = {}
    for arch, cpu in CPUS.items():
        d = root / f"native-demo-linux-{cpu}"
        d.mkdir()
        manifest = {"name": d.name, "version": "1.0.0", "os": ["linux"], "cpu": [cpu]}
        (d / "package.json").write_text(json.dumps(manifest))
        if cpu == "x64" and request.param == "x64-without-elf":
            (d / "demo.wasm").write_bytes(WASM)
        else:
            (d / "demo.node").write_bytes(make_elf(arch, kind="shared"))
        optional[d.name] = f"file:{pack(d, root)}"
    d = root / "native-demo"
    d.mkdir()
    manifest = {"name": "native-demo", "version": "1.0.0", "optionalDependencies": optional}
    (d / "package.json").write_text(json.dumps(manifest))
    (d / "index.js").write_text("module.exports = 'native-demo';\n")
    return pack(d, root)


def test_a_native_node_sdk_is_installed_for_each_architecture(
    tmp_path: Path, native_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "native.yml"
    config.write_text(
        textwrap.dedent(f"""\
            name: "Native{uuid.uuid4().hex[:8]}{{{{ arch_suffix }}}}"
            description: "native test {{{{ version }}}} ({{{{ arch }}}})"
            license: MIT
            layout: per-arch
            canonical: "aws-layer:node"
            runtime: node
            compatible_runtimes: [nodejs22.x]
            architectures: [x86_64, arm64]
            sdk:
              package: native-demo
              version: "file:{native_package}"
            extension: {REPO / "extensions" / "relay.yml"}
            registry:
              runtime_dir: node
            """)
    )
    (tmp_path / "bin").mkdir()
    ext = []
    for arch in CPUS:
        ext += ["--extension-file", f"{arch}={write_elf(tmp_path / 'bin' / arch, arch)}"]
    argv = ["build", str(config), "--version", "1.0.0", "--out", str(tmp_path / "out"), "--json"]
    code = main([*argv, *ext])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "architecture-neutral: reused" not in out.err
    layers: list[dict[str, Any]] = json.loads(out.out)["layers"]
    assert [layer["architectures"] for layer in layers] == [["x86_64"], ["arm64"]]
    for layer in layers:
        (arch,) = layer["architectures"]
        with zipfile.ZipFile(layer["zip"]) as zf:
            platform = sorted(n for n in zf.namelist() if "native-demo-linux-" in n)
            natives = {n: zf.read(n)[:64] for n in platform if n.endswith(".node")}
        # Each layer holds its own machine's platform package, and only that one.
        prefix = f"nodejs/node_modules/native-demo-linux-{CPUS[arch]}/"
        assert platform and all(n.startswith(prefix) for n in platform), platform
        for head in natives.values():
            header = read_elf_header(head)
            assert header is not None and header.machine_name == arch
