"""The launcher and the files a layer gets for its extension, per-arch and universal: every
template variable, the version it names, and the refusals word for word."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from layer_builder.build.extension import resolve_binary
from layer_builder.build.launcher import layer_files, render_launcher
from layer_builder.errors import ConfigError
from tests.helpers.elf_fixtures import write_elf
from tests.helpers.manifests import manifest


def test_universal_launcher_variables(tmp_path: Path) -> None:
    m = manifest(tmp_path)
    assert render_launcher(m, ["arm64", "x86_64"], layout="universal") == (
        b"x86_64 x86_64 /opt/relay/relay-x86_64\n"
        b"arm64 aarch64 /opt/relay/relay-aarch64\n"
        b"x86_64,arm64 universal [x86_64, arm64] 1.0 ext stand-in proxy\n"
    )
    assert render_launcher(m, ["x86_64"], layout="universal", version="9.9").endswith(
        b"x86_64 universal [x86_64] 9.9 ext stand-in proxy\n"
    )


def test_per_arch_launcher_variables(tmp_path: Path) -> None:
    m = manifest(tmp_path, "{{ arch }} {{ machine }} {{ binary }} {{ layout }}\n")
    assert render_launcher(m, "arm64") == b"arm64 aarch64 /opt/relay/relay per-arch\n"


def test_a_universal_launcher_must_pick_by_machine(tmp_path: Path) -> None:
    m = manifest(tmp_path, "exec {{ binary }}\n")
    with pytest.raises(ConfigError, match="does not use `binaries`") as exc:
        render_launcher(m, ["x86_64", "arm64"], layout="universal")
    assert str(exc.value) == (
        f"{m.path}: launcher.template: launch.sh.j2 does not use `binaries`; a universal "
        "layer's launcher must pick the binary by machine (see extensions/relay-launcher.sh.j2)"
    )


def binaries(tmp_path: Path, m, versions: dict[str, str]) -> list:  # type: ignore[no-untyped-def]
    out = []
    for arch, version in versions.items():
        path = write_elf(tmp_path / f"bin-{arch}", arch)
        b = resolve_binary(m, arch, override=path)
        out.append(dataclasses.replace(b, info=dataclasses.replace(b.info, version=version)))
    return out


def test_layer_files_per_arch_and_universal(tmp_path: Path) -> None:
    m = manifest(tmp_path, "{% for b in binaries %}{{ b.path }} {% endfor %}{{ version }}\n")
    one = layer_files(binaries(tmp_path, m, {"arm64": "1.0"}), "per-arch")
    assert [(f.path, f.mode) for f in one.files] == [
        ("relay/relay", 0o755),
        ("extensions/ext", 0o755),
    ]
    assert [i.path for i in one.infos] == ["relay/relay"]
    assert one.files[1].content == b"/opt/relay/relay 1.0\n"

    both = layer_files(binaries(tmp_path, m, {"arm64": "2.0", "x86_64": "1.0"}), "universal")
    assert [i.path for i in both.infos] == ["relay/relay-x86_64", "relay/relay-aarch64"]
    assert both.architectures == ("x86_64", "arm64")
    assert both.files[-1].content == (
        b"/opt/relay/relay-x86_64 /opt/relay/relay-aarch64 1.0 (x86_64), 2.0 (arm64)\n"
    )
    same = layer_files(binaries(tmp_path, m, {"arm64": "3.0", "x86_64": "3.0"}), "universal")
    assert same.files[-1].content.endswith(b" 3.0\n")


def test_layer_files_refusals(tmp_path: Path) -> None:
    m = manifest(tmp_path)
    with pytest.raises(ValueError, match="^layer_files needs at least one binary$"):
        layer_files([], "per-arch")
    with pytest.raises(ValueError, match="^a per-arch layer carries one binary, not 2$"):
        layer_files(binaries(tmp_path, m, {"x86_64": "1", "arm64": "1"}), "per-arch")


# ------------------------------------------------------------------------------------------------
# The launcher template is UTF-8 whatever the machine's locale.


def test_a_utf8_template_renders_under_an_ascii_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path, "")
    (tmp_path / "launch.sh.j2").write_bytes("# démarre {{ binary }}\n".encode())
    real = io.text_encoding

    def ascii_locale(encoding: str | None, stacklevel: int = 2) -> str:
        # What open() resolves "no encoding given" to on a machine with an ASCII locale.
        return "ascii" if encoding is None else real(encoding)

    monkeypatch.setattr(io, "text_encoding", ascii_locale)
    assert render_launcher(m, "x86_64") == "# démarre /opt/relay/relay\n".encode()
