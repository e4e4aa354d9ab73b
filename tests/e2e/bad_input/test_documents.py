"""Bad extension manifests (``extension pin``) and craft configs (``craft check|publish``): exit
2, one ``error:`` line naming the file and the key or line, nothing written. Both are read by
the same YAML reader as layer configs (duplicate keys, depth, numbers that are not finite)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.bad_input import CRAFT, BadInput
from tests.helpers.paths import REPO

EXTENSIONS = REPO / "extensions"
RELAY = (EXTENSIONS / "relay.yml").read_text()


def _first_key(text: str) -> str:
    """The document's first top-level line again (a key that is then given twice)."""
    return next(ln for ln in text.splitlines() if ln and not ln.startswith("#")) + "\n"


DEEP = "a: " + "[" * 20000 + "]" * 20000 + "\n"

#: case -> (text from the valid one, what the error line must say)
DOCUMENT_CASES: dict[str, tuple[Callable[[str], str | bytes], tuple[str, ...]]] = {
    "empty": (lambda valid: "", ()),
    "a duplicate key": (lambda valid: valid + _first_key(valid), ("duplicate key", "lines")),
    "20,000 levels deep": (lambda valid: DEEP, ("nested deeper than",)),
    "a NaN": (lambda valid: valid + "x: .NaN\n", (".NaN", "not a finite number")),
    "Latin-1": (lambda valid: ("# caf\xe9\n" + valid).encode("latin-1"), ("not UTF-8",)),
    "not YAML": (lambda valid: valid + "[\n", ("invalid YAML",)),
    "a list": (lambda valid: "- 1\n", ()),
}


def _manifest(tmp: Path, text: str | bytes) -> Path:
    shutil.copy(EXTENSIONS / "relay-launcher.sh.j2", tmp / "relay-launcher.sh.j2")
    path = tmp / "relay.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _craft(tmp: Path, text: str | bytes) -> Path:
    path = tmp / ".craft.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp / "dist").mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize("case", sorted(DOCUMENT_CASES))
def test_a_bad_extension_manifest(case: str, tmp_path: Path, bad_input: BadInput) -> None:
    make, names = DOCUMENT_CASES[case]
    path = _manifest(tmp_path, make(RELAY))
    bad_input(["extension", "pin", str(path), "--version", "25.1.0"], str(path), *names)


def _registry_url(url: str) -> str:
    return RELAY.replace("https://release-registry.services.sentry.io", url)


MANIFEST_CASES = {
    "an empty version": (RELAY.replace('version: "25.1.0"', 'version: ""'), "version: is required"),
    "a version with a space": (
        RELAY.replace('version: "25.1.0"', 'version: "25.1.0 beta"'),
        "version: '25.1.0 beta' is not a version",
    ),
    "an empty manifest's key": ("", "is empty; an extension manifest is a mapping"),
    "a registry URL with an unclosed [": (
        _registry_url("https://[::1"),
        "https://[::1/apps/relay/latest: not a valid URL",
    ),
    "a registry URL with port 99999": (
        _registry_url("https://h:99999"),
        "not a valid URL (Port out of range",
    ),
    "a registry URL without a host": (
        _registry_url("https://"),
        "not a valid URL (no host)",
    ),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_versions_are_checked(case: str, tmp_path: Path, bad_input: BadInput) -> None:
    text, says = MANIFEST_CASES[case]
    path = _manifest(tmp_path, text)
    # A URL from the manifest is named as given; every other error names the manifest too.
    names = (says,) if "URL" in case else (str(path), says)
    bad_input(["extension", "pin", str(path)], *names)


@pytest.mark.parametrize("command", ["check", "publish"])
@pytest.mark.parametrize("case", sorted(DOCUMENT_CASES))
def test_a_bad_craft_config(
    case: str, command: str, tmp_path: Path, bad_input: BadInput, no_aws_env: None
) -> None:
    make, names = DOCUMENT_CASES[case]
    path = _craft(tmp_path, make(CRAFT))
    argv = ["craft", command, "--config", str(path), "--version", "1.0.0"]
    bad_input([*argv, "--artifacts", str(tmp_path / "dist")], str(path), *names)


def test_a_craft_config_that_is_a_symlink_loop(tmp_path: Path, bad_input: BadInput) -> None:
    loop = tmp_path / ".craft.yml"
    os.symlink(loop, loop)
    argv = ["craft", "check", "--config", str(loop), "--version", "1.0.0"]
    bad_input([*argv, "--artifacts", str(tmp_path)], str(loop), "cannot read")


def test_craft_configs_may_use_anchors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Shared settings through anchors are common in .craft.yml: the reader takes them there.
    from layer_builder.craft.targets import load_craft_config

    text = CRAFT.replace("    license: MIT\n", "    license: &lic MIT\n") + "x: *lic\n"
    (target,) = load_craft_config(_craft(tmp_path, text))
    assert target.license == "MIT"


#: case -> (text in the valid target, what replaces it, what the error line says)
CRAFT_CASES = {
    "a license over 512": ("license: MIT", "license: " + "x" * 513, "license: is 513 characters"),
    "a runtime name with a slash": ("- name: python", "- name: '../x'", "[0].name:"),
    "a runtime name with a NUL": ("- name: python", '- name: "py\\0"', "[0].name:"),
    "an invalid includeNames": ("/^layer-.*\\.zip$/", "/(/", "includeNames:"),
    "an unknown layerName placeholder": ("TestLayer", "'L{{{foo}}}'", "layerName:"),
}


@pytest.mark.parametrize("case", sorted(CRAFT_CASES))
def test_craft_target_fields(case: str, tmp_path: Path, bad_input: BadInput) -> None:
    old, new, says = CRAFT_CASES[case]
    assert old in CRAFT
    path = _craft(tmp_path, CRAFT.replace(old, new))
    argv = ["craft", "check", "--config", str(path), "--version", "1.0.0"]
    bad_input([*argv, "--artifacts", str(tmp_path / "dist")], str(path), "targets[1].", says)
