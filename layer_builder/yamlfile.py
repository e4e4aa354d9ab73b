"""The one YAML reader for every document a user writes: layer configs, extension manifests,
craft configs.

Beyond ``yaml.safe_load`` it refuses, as a :class:`~layer_builder.errors.ConfigError` naming
the file and the line: duplicate keys (naming both lines: YAML lets the last silently win),
nesting deeper than :data:`MAX_DEPTH` (PyYAML's composer recurses, so a deep document would end
in ``RecursionError``), aliases (``*name``: a few lines can expand into billions of items), and
numbers that are not finite (``.nan``, ``.inf``). A file that is not UTF-8 or cannot be read is
one line too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
