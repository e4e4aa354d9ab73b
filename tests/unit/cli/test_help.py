"""Every argument of every subcommand has help text, and the help agrees with the docs."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from layer_builder.cli import build_parser
from tests.helpers.paths import REPO


def walk(parser: argparse.ArgumentParser, path: str = "layer-builder") -> Iterator[
    tuple[str, argparse.ArgumentParser]
]:  # fmt: skip
    """Every parser in the tree with its command path, the top level first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


PARSERS = dict(walk(build_parser()))


def test_the_tree_has_every_documented_command() -> None:
    # The walk itself must find the commands, or the tests below check nothing.
    commands = "build verify publish release registry/latest registry/show function/enable"
    for command in (commands + " extension/pin craft/publish").split():
        command = command.replace("/", " ")
        assert f"layer-builder {command}" in PARSERS


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_every_argument_has_help(path: str) -> None:
    parser = PARSERS[path]
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            # Each subcommand's one-line help in the parent's list.
            missing += [f"{path} {c.dest}" for c in action._choices_actions if not c.help]
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_stated_defaults_are_the_real_ones(path: str) -> None:
    """A "(default: X)" for a plain value must match what argparse really defaults to."""
    for action in PARSERS[path]._actions:
        m = re.search(r"\(default: ([^)]*)\)", action.help or "")
        if m is None or action.default in (None, False, [], argparse.SUPPRESS):
            continue  # computed defaults (config, environment) are described in words
        stated = re.split(r"[,;]", m.group(1))[0].strip().removeprefix("./").rstrip("/")
        if isinstance(action.default, (int, float)):
            assert float(stated) == action.default, f"{path} {action.option_strings}"
        else:
            assert stated == str(action.default).rstrip("/"), f"{path} {action.option_strings}"


def test_help_that_mentions_json_has_json() -> None:
    for path, parser in PARSERS.items():
        options = {o for a in parser._actions for o in a.option_strings}
        texts = " ".join(a.help or "" for a in parser._actions)
        if "--json" in texts:
            assert "--json" in options, path


@pytest.mark.parametrize("path", ["layer-builder registry show", "layer-builder registry latest"])
def test_registry_readers_take_json(path: str) -> None:
    assert "--json" in {o for a in PARSERS[path]._actions for o in a.option_strings}


def test_release_registry_default_names_the_sandbox_one() -> None:
    (action,) = [
        a for a in PARSERS["layer-builder release"]._actions if "--registry" in a.option_strings
    ]
    assert action.help is not None and "sandbox/registry with --sandbox" in action.help


def test_extension_pin_default_version_agrees_with_extensions_readme() -> None:
    (action,) = [
        a
        for a in PARSERS["layer-builder extension pin"]._actions
        if "--version" in a.option_strings
    ]
    readme = (REPO / "extensions/README.md").read_text()
    # Both say: the release registry's latest (the manifest's version for a URL template).
    assert "(default: the registry's `latest`" in readme
    assert action.help is not None and "release registry's latest" in action.help


def test_no_example_uses_a_version_that_does_not_exist() -> None:
    # @sentry/aws-serverless 10.2.3 was never published; examples a user copies must work.
    files = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "configs").glob("*.yml")]
    helps = " ".join(a.help or "" for p in PARSERS.values() for a in p._actions)
    assert "10.2.3" not in helps
    assert [f.name for f in files if "10.2.3" in f.read_text()] == []
