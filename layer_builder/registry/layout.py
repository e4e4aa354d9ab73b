"""The registry checkout's layout and documents, read and checked: what the reader, the
writer, the index and yank share.

``aws-lambda-layers/<runtime>/<version>.json`` are the version documents (checked against the
shipped ``version.schema.json``), ``latest.json`` and the major/minor links beside them are
symlinks, and ``aws-lambda-layers.json`` at the root is the aggregated index for static
hosting. JSON is read with size and depth limits; a broken file is a RegistryError naming it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from layer_builder.errors import ArgumentError, RegistryError
from layer_builder.model import ReleaseVersion

log = logging.getLogger(__name__)

LAYERS_DIR = "aws-lambda-layers"
LATEST_FILE = "latest.json"
#: Written inside LAYERS_DIR by older versions of this tool; readers ignore it.
LEGACY_INDEX_FILE = "index.json"
#: ``{canonical: latest document}`` at the registry root (beside LAYERS_DIR, never inside
#: it), for static hosting: the file a plain web server can serve in place of the API route.
STATIC_INDEX_FILE = "aws-lambda-layers.json"
VERSION_SCHEMA = "version.schema.json"
INDEX_SCHEMA = "index.schema.json"
#: The optional field `layer-builder yank` sets on a version document: ``reason``, ``at``.
YANKED = "yanked"

Document = dict[str, Any]


@cache
def _validator(schema_name: str) -> Any:
    schema = json.loads(
        resources.files("layer_builder").joinpath(f"schemas/{schema_name}").read_text("utf-8")
    )
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_error(doc: object, schema_name: str = VERSION_SCHEMA) -> str | None:
    """The first way ``doc`` breaks a shipped schema (``$.path: message``), or None."""
    errors = sorted(_validator(schema_name).iter_errors(doc), key=lambda e: e.json_path)
    return f"{errors[0].json_path}: {errors[0].message}" if errors else None


#: Far more than the index of every layer there is (each document is a few kB); a server
#: answering without end is cut off here.
MAX_INDEX_BYTES = 32 * 1024 * 1024
#: A version document on disk is at most this (same reason).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
#: Deeper than any registry document is (about 5 levels), far below Python's recursion limit.
MAX_JSON_DEPTH = 32


def too_deep(data: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if ``data`` nests lists and objects deeper than ``limit`` (checked without recursion,
    before a schema check or a copy would recurse through it)."""
    todo: list[tuple[object, int]] = [(data, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            values = item.values() if isinstance(item, dict) else item
            todo.extend((v, depth + 1) for v in values)
    return False


def loads_json(text: str | bytes, where: str) -> object:
    """``json.loads`` with a depth limit; RegistryError naming ``where`` for what it refuses."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise RegistryError(f"{where}: not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{where}: not valid JSON ({exc})") from None
    if too_deep(data):
        raise RegistryError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def read_json_mapping(path: Path) -> Document:
    """A registry file's JSON object; RegistryError naming the file if it is anything else."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise RegistryError(f"{path}: over {MAX_DOCUMENT_BYTES:,} bytes; not a registry file")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RegistryError(f"{path}: is a symlink loop") from None
        raise RegistryError(f"{path}: unreadable: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: unreadable: {exc}") from None
    data = loads_json(text, str(path))
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_version_document(path: Path) -> Document:
    """A version document from disk, checked against the schema."""
    doc = read_json_mapping(path)
    problem = schema_error(doc)
    if problem:
        raise RegistryError(f"{path}: not a layer version document: {problem}")
    return doc


def runtime_dirs(layers_dir: Path) -> list[Path]:
    """The runtime directories under ``aws-lambda-layers/``, sorted; files are not runtimes."""
    if not layers_dir.is_dir():
        return []
    found = []
    for entry in sorted(layers_dir.iterdir()):
        if entry.name.startswith("."):
            continue  # a writer's temporary file, or a checkout's .git
        if entry.is_dir():
            found.append(entry)
        elif entry.name == LEGACY_INDEX_FILE:
            log.debug("%s: ignored (written by an older layer-builder)", entry)
    return found


def collect_index(
    layers_dir: Path,
    overrides: Mapping[str, Document] | None = None,
    *,
    sources: dict[str, tuple[Path, Path]] | None = None,
    unreleased: list[str] | None = None,
) -> dict[str, Document]:
    """``{canonical: latest document}`` for every runtime directory under ``layers_dir``.

    ``overrides`` maps a runtime directory to the document its ``latest.json`` is about to
    point at, so the writer can build the index before it touches the disk. ``sources``
    (if given) receives each canonical's runtime directory and the file ``latest.json``
    resolves to, ``unreleased`` the runtime directories without a ``latest.json``. A broken
    ``latest.json`` (dangling, not JSON, not a version document) is a RegistryError naming
    the file: never skipped.
    """
    overrides = overrides or {}
    names = {p.name for p in runtime_dirs(layers_dir)}
    index: dict[str, Document] = {}
    owner: dict[str, tuple[Path, Path]] = {}
    for name in sorted(names | set(overrides)):
        latest = layers_dir / name / LATEST_FILE
        # Errors name the version file latest.json links to: that is the file to fix.
        target = latest.parent / os.readlink(latest) if latest.is_symlink() else latest
        if name in overrides:
            doc = overrides[name]
        elif os.path.lexists(latest):
            if not latest.exists():
                try:
                    os.stat(latest)
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        raise RegistryError(f"{latest}: is a symlink loop") from None
                raise RegistryError(f"{latest}: links to {os.readlink(latest)}, which is missing")
            doc = read_version_document(target)
        else:
            if unreleased is not None:
                unreleased.append(name)
            continue  # only prereleases so far, or just a base.json
        canonical = doc["canonical"]
        if canonical in owner:
            raise RegistryError(
                f"{latest}: canonical {canonical!r} is also {owner[canonical][0] / LATEST_FILE}"
            )
        owner[canonical] = (latest.parent, target)
        index[canonical] = doc
    if sources is not None:
        sources.update(owner)
    return index


def yank_info(doc: Mapping[str, Any]) -> dict[str, str] | None:
    """The document's ``yanked`` field (``reason``, ``at``), or None when it is not yanked."""
    value = doc.get(YANKED)
    return value if isinstance(value, dict) else None


def yanked_message(doc: Mapping[str, Any]) -> str:
    """``<canonical> <version> was yanked at <at>: <reason>``, for error lines."""
    info = yank_info(doc) or {}
    return (
        f"{doc.get('canonical')} {doc.get('sdk_version')} was yanked at "
        f"{info.get('at', '?')}: {info.get('reason', '')}"
    )


def newest_not_yanked(runtime_dir: Path, canonical: str) -> tuple[Path, Document] | None:
    """The newest release document of ``canonical`` in ``runtime_dir`` that is not yanked
    (prereleases left out), or None."""
    best: tuple[Any, Path, Document] | None = None
    for path in runtime_dir.glob("*.json"):
        if path.is_symlink() or path.name == "base.json" or path.name.startswith("."):
            continue
        try:
            version = ReleaseVersion.parse(path.stem, what=str(path))
        except ArgumentError:
            continue
        if version.is_prerelease:
            continue
        try:
            doc = read_version_document(path)
        except RegistryError as exc:
            log.warning("%s", exc)
            continue
        if doc["canonical"] != canonical or yank_info(doc) is not None:
            continue
        if best is None or version.sort_key() > best[0]:
            best = (version.sort_key(), path, doc)
    return (best[1], best[2]) if best else None
