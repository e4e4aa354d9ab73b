"""craft's ``aws-lambda-layer`` target keys, read from a craft config into frozen objects.

Every problem is a ConfigError naming the craft config and the key path
(``targets[2].layerName``), with a "did you mean" for typos, like our own configs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layer_builder.aws import facts as aws_facts
from layer_builder.config import MAX_LICENSE, Template
from layer_builder.errors import ArgumentError, ConfigError
from layer_builder.model import ReleaseVersion
from layer_builder.validate import Reader, did_you_mean, read_yaml

TARGET_NAME = "aws-lambda-layer"
CANONICAL_PREFIX = "aws-layer:"  # craft: canonical = prefix + compatibleRuntimes[].name
TEMPLATE_VARS = ("version", "major", "minor", "patch")  # what craft's layerName knows

# The target's keys (True: required). Anything else is a typo and fails with a suggestion.
_TARGET_KEYS = {
    "name": True,
    "id": False,
    "includeNames": False,
    "excludeNames": False,
    "layerName": True,
    "compatibleRuntimes": True,
    "compatibleArchitectures": False,
    "license": True,
    "linkPrereleases": False,
}
_MUSTACHE = re.compile(r"\{\{\{\s*([^{}\s]*)\s*\}\}\}|\{\{\s*([^{}\s]*)\s*\}\}")
_JS_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "g": 0, "u": 0, "y": 0}
Fail = Callable[[str], ConfigError]

#: A registry directory and canonical name (``python``, ``node``).
_RUNTIME_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class CraftRuntime:
    """One ``compatibleRuntimes`` entry: a registry runtime directory and its Lambda runtimes."""

    name: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class CraftLayerTarget:
    """One ``aws-lambda-layer`` target of a craft config, validated."""

    key: str  # its key path in the config, e.g. ``targets[2]``, for messages
    id: str | None
    include_names: re.Pattern[str] | None
    exclude_names: re.Pattern[str] | None
    layer_name: Template  # craft's triple-brace template, as Jinja2
    runtimes: tuple[CraftRuntime, ...]
    architectures: tuple[str, ...]  # empty or one
    license: str
    link_prereleases: bool


def js_regex(value: str, fail: Fail) -> re.Pattern[str]:
    """Compile craft's ``/pattern/flags`` spelling (what craft's stringToRegexp accepts)."""
    last = value.rfind("/")
    if not value.startswith("/") or last < 2:
        raise fail(f"{value!r} is not a /regex/ (craft wants slashes around the pattern)")
    flags = 0
    for flag in value[last + 1 :]:
        if flag not in _JS_FLAGS:
            raise fail(f"{value!r}: unknown regex flag {flag!r} (use i, m or s)")
        flags |= _JS_FLAGS[flag]
    try:
        return re.compile(value[1:last], flags)
    except re.error as exc:
        raise fail(f"{value!r} is not a valid regex: {exc}") from None


def mustache_to_jinja(source: str, fail: Fail) -> str:
    """craft's ``{{{major}}}`` (or ``{{major}}``) placeholders as Jinja2's ``{{ major }}``."""

    def convert(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if name not in TEMPLATE_VARS:
            known = ", ".join("{{{" + v + "}}}" for v in TEMPLATE_VARS)
            raise fail(
                f"unknown template variable {name!r}"
                + did_you_mean(name, TEMPLATE_VARS)
                + f" (craft knows {known})"
            )
        return "{{ " + name + " }}"

    out = _MUSTACHE.sub(convert, source)
    # Braces left over are not craft placeholders and must not reach Jinja2 as syntax.
    leftover = _MUSTACHE.sub("", source)
    if "{" in leftover or "}" in leftover:
        raise fail(f"{source!r}: unbalanced braces; write placeholders as " + "{{{major}}}")
    return out


def load_craft_config(path: str | Path) -> tuple[CraftLayerTarget, ...]:
    """The ``aws-lambda-layer`` targets of a craft config; ConfigError naming file and key."""
    path = Path(path)
    r = Reader(path)
    raw = read_yaml(path, "craft config", aliases=True)
    if not isinstance(raw, dict) or "targets" not in raw:
        raise r.fail("targets", "missing: a craft config lists its release targets there")
    out = []
    for i, item in enumerate(r.typed(raw["targets"], "targets", list, "a list of targets")):
        if not isinstance(item, dict):
            raise r.fail(f"targets[{i}]", "expected a mapping with a name: key")
        if item.get("name") == TARGET_NAME:
            out.append(_parse_target(r, item, f"targets[{i}]"))
    if not out:
        raise r.fail("targets", f"no target with name: {TARGET_NAME}")
    ids = [t.id for t in out if t.id is not None]
    if len(set(ids)) != len(ids):
        raise r.fail("targets", f"two {TARGET_NAME} targets share an id")
    return tuple(out)


def _parse_target(r: Reader, item: dict[str, Any], key: str) -> CraftLayerTarget:
    d = r.mapping(item, key, _TARGET_KEYS)

    def failer(sub: str) -> Fail:
        return lambda message: r.fail(f"{key}.{sub}", message)

    patterns = {
        name: None
        if d.get(name) is None
        else js_regex(r.string(d[name], f"{key}.{name}"), failer(name))
        for name in ("includeNames", "excludeNames")
    }
    layer_name = Template(
        mustache_to_jinja(r.string(d["layerName"], f"{key}.layerName"), failer("layerName"))
    )
    # Render with a sample version now, so a name Lambda refuses fails before any AWS call.
    _check_name(layer_name.render(ReleaseVersion.parse("10.20.30")), failer("layerName"))

    entries = r.typed(d["compatibleRuntimes"], f"{key}.compatibleRuntimes", list, "a list")
    if not entries:
        raise r.fail(f"{key}.compatibleRuntimes", "list at least one runtime")
    runtimes = []
    for j, entry in enumerate(entries):
        rkey = f"{key}.compatibleRuntimes[{j}]"
        e = r.mapping(entry, rkey, {"name": True, "versions": True})
        name = r.string(e["name"], f"{rkey}.name")
        if not _RUNTIME_NAME_RE.fullmatch(name):
            raise r.fail(f"{rkey}.name", f"{name!r} must be a single directory name")
        versions = r.string_list(e["versions"], f"{rkey}.versions")
        _check_runtimes(r, versions, f"{rkey}.versions")
        runtimes.append(CraftRuntime(name, versions))
    if len({rt.name for rt in runtimes}) != len(runtimes):
        raise r.fail(f"{key}.compatibleRuntimes", "names a runtime twice")

    license_text = r.string(d["license"], f"{key}.license")
    if len(license_text) > MAX_LICENSE:
        raise r.fail(
            f"{key}.license", f"is {len(license_text)} characters; Lambda allows {MAX_LICENSE}"
        )
    archs = r.string_list(d.get("compatibleArchitectures", []), f"{key}.compatibleArchitectures")
    for j, arch in enumerate(archs):
        r.choice(arch, f"{key}.compatibleArchitectures[{j}]", aws_facts.ARCHITECTURES)
    return CraftLayerTarget(
        key=key,
        id=None if d.get("id") is None else r.string(str(d["id"]), f"{key}.id"),
        include_names=patterns["includeNames"],
        exclude_names=patterns["excludeNames"],
        layer_name=layer_name,
        runtimes=tuple(runtimes),
        architectures=tuple(dict.fromkeys(archs)),
        license=license_text,
        link_prereleases=r.typed(
            d.get("linkPrereleases", False), f"{key}.linkPrereleases", bool, "true or false"
        ),
    )


def _check_name(name: str, fail: Fail) -> None:
    if not aws_facts.LAYER_NAME_RE.fullmatch(name) or len(name) > aws_facts.LAYER_NAME_MAX:
        raise fail(
            f"renders to {name!r}; a layer name is 1-{aws_facts.LAYER_NAME_MAX} "
            "characters of [a-zA-Z0-9-_]"
        )


def _check_runtimes(r: Reader, versions: tuple[str, ...], key: str) -> None:
    if not versions:
        raise r.fail(key, "list at least one Lambda runtime")
    if len(versions) > aws_facts.MAX_COMPATIBLE_RUNTIMES:
        raise r.fail(
            key,
            f"lists {len(versions)} runtimes; Lambda allows at most "
            f"{aws_facts.MAX_COMPATIBLE_RUNTIMES}",
        )
    for j, rt in enumerate(versions):
        if rt not in aws_facts.RUNTIME_IDS:
            raise r.fail(
                f"{key}[{j}]",
                f"unknown Lambda runtime {rt!r}" + did_you_mean(rt, aws_facts.RUNTIME_IDS),
            )
    families = {aws_facts.runtime_family(rt) for rt in versions}
    if None in families or len(families) > 1:
        raise r.fail(
            key,
            "layer-builder publishes Python or Node.js layers: list only python3.x "
            "or only nodejsNN.x runtimes",
        )


def select_targets(
    targets: Iterable[CraftLayerTarget], wanted: str | None, config: Path
) -> tuple[CraftLayerTarget, ...]:
    """All targets, or the one whose craft ``id`` is ``wanted``."""
    targets = tuple(targets)
    chosen = tuple(t for t in targets if wanted is None or t.id == wanted)
    if not chosen:
        ids = ", ".join(t.id for t in targets if t.id) or "none have one"
        raise ArgumentError(
            f"--target {wanted}: no {TARGET_NAME} target with that id in {config} (ids: {ids})"
        )
    return chosen
