"""`extension pin`'s in-place rewrite, the universal-layout refusal, registry URLs and
has_binary: exact texts and files (mutation testing found these unchecked; see
docs/mutation-testing.md)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from elf_fixtures import write_elf
from test_download import FakeServer, Reply
from test_extension import ELF, SHA, write_manifest

from layer_builder.build.extension import (
    file_url,
    has_binary,
    load_manifest,
    parse_extension_file_args,
    pins,
    resolve,
    resolve_binary,
)
from layer_builder.errors import ArgumentError, ConfigError, DownloadError

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


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


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


def test_rewrite_interrupted_leaves_a_hidden_file_named_for_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_manifest(tmp_path, TWO_ARCHS, launcher=False)

    def interrupted(src: object, dst: object) -> None:
        raise OSError("interrupted")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        pins._rewrite_manifest(path, "1.0", {"x86_64": "NEW-X"})
    left = [p.name for p in tmp_path.iterdir() if p.name != "ext.yml"]
    assert [name[: len(".ext.yml.")] for name in left] == [".ext.yml."]


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
