"""Reading the YAML documents a user writes -- layer configs, extension manifests, craft
configs -- and the one wording of their errors.

Loading (:func:`read_yaml`, :func:`parse_yaml`): beyond ``yaml.safe_load`` it refuses, as a
:class:`~layer_builder.errors.ConfigError` naming the file and the line: duplicate keys (naming
both lines: YAML lets the last silently win), nesting deeper than :data:`MAX_DEPTH` (PyYAML's
composer recurses, so a deep document would end in ``RecursionError``), aliases (``*name``: a
few lines can expand into billions of items), and numbers that are not finite (``.nan``,
``.inf``). A file that is not UTF-8 or cannot be read is one line too.

Checking (:class:`Reader`): typed accessors that walk the loaded document and raise
``ConfigError(file, key path, message)`` -> ``error: configs/x.yml: publish.regions: ...``.

Suggesting (:func:`did_you_mean`): the one "did you mean 'x'?" hint, used for config keys and
values, manifests, craft configs, region names and registry look-ups.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from layer_builder.errors import ConfigError

#: Deeper than any config needs, far below Python's recursion limit.
MAX_DEPTH = 64
#: Larger than any config, manifest or .craft.yml (a few kB each).
MAX_BYTES = 1024 * 1024


class _Refused(yaml.YAMLError):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.problem = message
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    _depth = 0
    aliases = False

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.aliases and self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(f"alias *{event.anchor} (anchors and aliases are not supported)",
                           event.start_mark)  # fmt: skip
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: construct_mapping below says so
            if first is not None:
                raise _Refused(f"duplicate key {key!r} (lines {first} and {line})",
                               key_node.start_mark)  # fmt: skip
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node: Any) -> float:
        value: float = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(f"{node.value} is not a finite number", node.start_mark)
        return value


_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


class _AliasLoader(_Loader):
    aliases = True  # craft configs (anchors for shared target settings are common there)


def parse_yaml(text: str, where: str, *, aliases: bool = False) -> Any:
    """``text`` as YAML; a :class:`ConfigError` naming ``where`` and the line if it is not."""
    try:
        return yaml.load(text, Loader=_AliasLoader if aliases else _Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(where, None, f"invalid YAML: {at}{problem}") from None
    except RecursionError:  # a composer path the depth count does not cover
        raise ConfigError(where, None, "invalid YAML: nested too deeply") from None


def read_yaml(path: Path, what: str = "file", *, aliases: bool = False) -> Any:
    """Read and parse the YAML file ``path``; every failure is one :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:  # bounded: /dev/zero or a huge file is not a config
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ConfigError(str(path), None, f"over {MAX_BYTES:,} bytes; not a {what}")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, f"{what} not found") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text: {exc}") from None
    return parse_yaml(text, str(path), aliases=aliases)


# --------------------------------------------------------------------------- suggesting


def closest(word: str, choices: Iterable[Any]) -> str | None:
    """The choice closest to ``word`` (a likely typo of it), or None."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[Any], *, sep: str = "; ", otherwise: str = "") -> str:
    """``"; did you mean 'x'?"`` when a choice is close to ``word`` (``sep`` before the
    question), else ``otherwise`` (e.g. ``"; known: a, b"``): appended to an error message."""
    hint = closest(word, choices)
    return f"{sep}did you mean {hint!r}?" if hint is not None else otherwise


# --------------------------------------------------------------------------- checking

T = TypeVar("T")


def kind(value: Any) -> str:
    """What a loaded YAML value is, in words (for "expected a list, got a mapping")."""
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


class Reader:
    """Typed accessors over a loaded document: each checks one value and returns it, or raises
    a :class:`ConfigError` naming ``path`` and the value's key path (``publish.regions[2]``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(str(self.path), key, message)

    def check_keys(
        self, data: Mapping[Any, Any], key: str, allowed: Iterable[str], *, listing: bool = False
    ) -> None:
        """Refuse a key not in ``allowed`` (with a suggestion; ``listing``: and the list)."""
        known = tuple(allowed)
        for k in data:
            if not isinstance(k, str) or k not in known:
                sub = f"{key}.{k}" if key else str(k)
                also = f" (allowed: {', '.join(known)})" if listing else ""
                raise self.fail(sub, "unknown key" + did_you_mean(str(k), known) + also)

    def mapping(self, value: Any, key: str, allowed: Mapping[str, bool]) -> dict[str, Any]:
        """Check a mapping's keys: ``allowed`` maps each key to whether it is required."""
        if not isinstance(value, dict):
            raise self.fail(key or None, f"expected a mapping, got {kind(value)}")
        self.check_keys(value, key, allowed)
        for k, required in allowed.items():
            if required and k not in value:
                sub = f"{key}.{k}" if key else k
                raise self.fail(sub, "missing required key")
        return value

    def section(self, value: Any, key: str) -> dict[str, Any]:
        """A mapping whose keys the caller checks: "is required" when absent (null)."""
        if not isinstance(value, dict):
            message = "must be a mapping" if value is not None else "is required"
            raise self.fail(key or None, message)
        return value

    def typed(self, value: Any, key: str, typ: type[T] | tuple[type, ...], what: str) -> T:
        if isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
            raise self.fail(key, f"expected {what}, got a boolean")
        if not isinstance(value, typ):
            raise self.fail(key, f"expected {what}, got {kind(value)}")
        return value  # type: ignore[return-value]

    def string(self, value: Any, key: str) -> str:
        s = self.typed(value, key, str, "a string")
        if not s.strip():
            raise self.fail(key, "must not be empty")
        return s

    def field(self, data: Mapping[str, Any], name: str, *, prefix: str = "") -> str:
        """``data[name]``, a string that must be there: a number is refused with a hint to
        quote it (YAML reads ``25.10`` as the number 25.1; quoting keeps what was written)."""
        value = data.get(name)
        key = prefix + name
        if value is None or value == "":
            raise self.fail(key, "is required")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise self.fail(key, f'must be a string; quote it: "{value}"')
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def string_list(self, value: Any, key: str) -> tuple[str, ...]:
        items = self.typed(value, key, list, "a list of strings")
        return tuple(self.string(v, f"{key}[{i}]") for i, v in enumerate(items))

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        s = self.string(value, key)
        if s not in choices:
            raise self.fail(
                key, f"{s!r} is not one of {', '.join(choices)}" + did_you_mean(s, choices)
            )
        return s

    def path_in(self, value: Any, key: str, *, must_exist: bool = True) -> Path:
        """A path relative to the document's folder, resolved (and, by default, existing)."""
        p = (self.path.parent / self.string(value, key)).resolve()
        if must_exist and not p.exists():
            raise self.fail(key, f"{p} does not exist")
        return p
