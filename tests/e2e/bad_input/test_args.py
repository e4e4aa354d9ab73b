"""Bad flags and versions across build, publish, release, smoke, registry, function, craft and
extension pin: exit 2, one ``error:`` line naming the flag actually given, nothing written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.config import LayerConfig
from layer_builder.model import ReleaseVersion
from tests.helpers.bad_input import VALID, BadInput
from tests.helpers.layers import write_layer
from tests.helpers.paths import REPO
from tests.helpers.smoke_layers import make_layer

Argv = Callable[[Path], list[str]]


def _config(tmp: Path) -> str:
    path = tmp / "layer.yml"
    if not path.exists():
        path.write_text(VALID)
    return str(path)


def _build(version: str, *more: str) -> Argv:
    return lambda tmp: ["build", _config(tmp), "--version", version, *more]


def _publish(*more: str) -> Argv:
    return lambda tmp: ["publish", _config(tmp), "--version", "2.75.0", *more]


def _craft(command: str, *more: str) -> Argv:
    return lambda tmp: ["craft", command, "--version", "1.0.0", *more]


def _loop(tmp: Path) -> str:
    loop = tmp / "loop"
    if not os.path.lexists(loop):
        os.symlink(loop, loop)
    return str(loop)


def _dangling(tmp: Path) -> str:
    link = tmp / "dangling"
    if not os.path.lexists(link):
        os.symlink(tmp / "gone", link)
    return str(link)


def _file(tmp: Path) -> str:
    path = tmp / "a-file"
    path.write_text("x")
    return str(path)


def _zip(tmp: Path) -> str:
    path = tmp / "layer.zip"
    if not path.exists():
        make_layer(path)
    return str(path)


#: case -> (argv given the temporary directory, what the error line must name)
CASES: dict[str, tuple[Argv, tuple[str, ...]]] = {
    "version with a newline": (_build("2.75.0\n"), ("--version", "'2.75.0\\n'")),
    "version with a tab": (_build("2.75.0\t"), ("--version",)),
    "version with a leading space": (_build(" 2.75.0"), ("--version",)),
    "version with a control character": (_build("2.75.0-\x1b[31m"), ("--version",)),
    "version empty": (_build(""), ("--version",)),
    "version two parts": (_build("2.75"), ("--version", "'2.75'")),
    "version of 65 characters": (_build("1.2.3-" + "a" * 59), ("--version", "at most 64")),
    "version a path": (_build("../../etc/passwd"), ("--version",)),
    "build --out empty": (_build("2.75.0", "--out", ""), ("--out", "must not be empty")),
    "build --out blank": (_build("2.75.0", "--out", "  "), ("--out", "must not be empty")),
    "build --out symlink loop": (
        lambda t: _build("2.75.0", "--out", _loop(t))(t),
        ("--out", "symlink loop"),
    ),
    "build --out dangling symlink": (
        lambda t: _build("2.75.0", "--out", _dangling(t))(t),
        ("--out", "dangling symlink"),
    ),
    "build --out a file": (
        lambda t: _build("2.75.0", "--out", _file(t))(t),
        ("--out", "is a file, not a directory"),
    ),
    "build --out below a file": (
        lambda t: _build("2.75.0", "--out", _file(t) + "/dist")(t),
        ("--out", "is a file"),
    ),
    "build --extension-file empty": (
        _build("2.75.0", "--extension-file", ""),
        ("--extension-file", "no path given"),
    ),
    "build --extension-file ARCH= only": (
        _build("2.75.0", "--extension-file", "x86_64="),
        ("--extension-file x86_64=", "no path given"),
    ),
    "build --extension-file a device": (
        _build("2.75.0", "--extension-file", "x86_64=/dev/zero"),
        ("--extension-file x86_64=/dev/zero", "not a regular file"),
    ),
    "build --extension-file a symlink loop": (
        lambda t: _build("2.75.0", "--extension-file", _loop(t))(t),
        ("--extension-file", "symlink loop"),
    ),
    "build --extension-file an unknown machine": (
        _build("2.75.0", "--extension-file", "sparc=/bin/sh"),
        ("--extension-file sparc=/bin/sh", "unknown architecture 'sparc'"),
    ),
    "build config empty": (lambda t: ["build", "", "--version", "2.75.0"], ("CONFIG",)),
    "build --arch unknown": (_build("2.75.0", "--arch", "riscv"), ("--arch", "riscv")),
    "publish --dist empty": (
        _publish("--dist", ""),
        ("--dist", "must not be empty"),
    ),
    "publish --dist symlink loop": (
        lambda t: ["publish", _config(t), "--version", "2.75.0", "--dist", _loop(t)],
        ("--dist", "symlink loop"),
    ),
    "publish --dist dangling": (
        lambda t: ["publish", _config(t), "--version", "2.75.0", "--dist", _dangling(t)],
        ("--dist", "dangling symlink"),
    ),
    "publish --registry empty": (
        _publish("--registry", ""),
        ("--registry", "must not be empty"),
    ),
    "publish --workers 0": (
        _publish("--workers", "0"),
        ("--workers", "at least 1"),
    ),
    "publish --workers -5": (
        _publish("--workers", "-5"),
        ("--workers", "at least 1"),
    ),
    "publish --workers a word": (
        _publish("--workers", "many"),
        ("--workers", "'many'"),
    ),
    "publish --version with a newline": (
        lambda t: ["publish", _config(t), "--version", "2.75.0\n", "--dry-run"],
        ("--version",),
    ),
    "release --out empty": (
        lambda t: ["release", _config(t), "--version", "2.75.0", "--out", ""],
        ("--out", "must not be empty"),
    ),
    "release --workers 0": (
        lambda t: ["release", _config(t), "--version", "2.75.0", "--workers", "0"],
        ("--workers",),
    ),
    "craft publish --workers 0": (
        _craft("publish", "--workers", "0"),
        ("--workers", "at least 1"),
    ),
    "craft publish --workers -5": (
        _craft("publish", "--workers", "-5"),
        ("--workers", "at least 1"),
    ),
    "craft check --config empty": (
        _craft("check", "--config", ""),
        ("--config", "must not be empty"),
    ),
    "craft check --artifacts empty": (
        _craft("check", "--artifacts", ""),
        ("--artifacts", "must not be empty"),
    ),
    "smoke --timeout nan": (lambda t: ["smoke", _zip(t), "--timeout", "nan"], ("--timeout", "nan")),
    "smoke --timeout inf": (lambda t: ["smoke", _zip(t), "--timeout", "inf"], ("--timeout", "inf")),
    "smoke --timeout -1": (lambda t: ["smoke", _zip(t), "--timeout", "-1"], ("--timeout",)),
    "smoke --timeout 0": (lambda t: ["smoke", _zip(t), "--timeout", "0"], ("--timeout",)),
    "smoke --timeout a year": (
        lambda t: ["smoke", _zip(t), "--timeout", "31536000"],
        ("--timeout", "900"),
    ),
    "smoke --timeout a word": (lambda t: ["smoke", _zip(t), "--timeout", "soon"], ("--timeout",)),
    "smoke --invocations 0": (
        lambda t: ["smoke", _zip(t), "--invocations", "0"],
        ("--invocations",),
    ),
    "smoke --event not JSON": (lambda t: ["smoke", _zip(t), "--event", "{x"], ("--event",)),
    "smoke --event from /dev/zero": (
        lambda t: ["smoke", _zip(t), "--event", "@/dev/zero"],
        ("--event", "/dev/zero", "6,291,456-byte"),
    ),
    "smoke --event nested 100,000 deep": (
        lambda t: ["smoke", _zip(t), "--event", "[" * 100_000 + "]" * 100_000],
        ("--event", "nested too deeply"),
    ),
    "smoke --event from a directory": (
        lambda t: ["smoke", _zip(t), "--event", f"@{t}"],
        ("--event", "cannot read"),
    ),
    "smoke --runtime node on a Python layer": (
        lambda t: ["smoke", _zip(t), "--runtime", "node"],
        ("--runtime node", "layer.zip", "no nodejs/"),
    ),
    "registry latest --region typo": (
        lambda t: ["registry", "latest", "aws-layer:python", "--region", "eu_west_1"],
        ("--region", "'eu_west_1'"),
    ),
    "registry show --registry empty": (
        lambda t: ["registry", "show", "--registry", ""],
        ("--registry", "must not be empty"),
    ),
    "function status --region with a space": (
        lambda t: ["function", "status", "f", "--region", "eu-west-1 "],
        ("--region",),
    ),
    "function status --registry empty": (
        lambda t: ["function", "status", "f", "--registry", ""],
        ("--registry",),
    ),
    "extension pin --version empty": (
        lambda t: [
            "extension",
            "pin",
            str(REPO / "extensions/relay.yml"),
            "--version",
            "",
        ],
        ("--version", "''"),
    ),  # fmt: skip
    "extension pin --version with a newline": (
        lambda t: [
            "extension",
            "pin",
            str(REPO / "extensions/relay.yml"),
            "--version",
            "25.1.0\n",
        ],
        ("--version",),
    ),  # fmt: skip
    "extension pin --version with a space": (
        lambda t: [
            "extension",
            "pin",
            str(REPO / "extensions/relay.yml"),
            "--version",
            "25.1.0 --pre",
        ],
        ("--version",),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_flag_is_one_line_naming_it(
    case: str, tmp_path: Path, bad_input: BadInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv, names = CASES[case]
    bad_input(argv(tmp_path), *names)


def test_the_pinned_manifest_is_untouched_by_a_bad_version(tmp_path: Path) -> None:
    # extension pin's bad --version cases above run on the repository's manifest.
    relay = REPO / "extensions/relay.yml"
    assert 'version: "25.1.0"' in relay.read_text()


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_publish_registry_that_leads_nowhere(
    kind: str,
    tmp_path: Path,
    bad_input: BadInput,
    no_aws_env: None,
    make_config: Callable[..., LayerConfig],
) -> None:
    cfg = make_config(architectures="[x86_64]")
    write_layer(tmp_path / "dist", cfg, ReleaseVersion.parse("1.0.0"), "x86_64")
    registry = _loop(tmp_path) if kind == "loop" else _dangling(tmp_path)
    argv = ["publish", str(cfg.path), "--version", "1.0.0", "--dist", str(tmp_path / "dist")]
    says = "symlink loop" if kind == "loop" else "dangling symlink"
    bad_input([*argv, "--registry", registry, "--dry-run"], f"--registry {registry}", says)
