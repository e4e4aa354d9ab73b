"""Extension manifests: every refusal with its exact message and key, and what a valid
manifest loads into (mutation testing found most key paths and messages unchecked; see
docs/mutation-testing.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from layer_builder.build.extension import DEFAULT_REGISTRY, ArchFile, load_manifest
from layer_builder.errors import ConfigError
from tests.helpers.manifests import BASE, write_manifest

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
