"""Read the layer registry from a local checkout or over HTTP(S).

The index is ``aws-lambda-layers/index.json`` (``{canonical: latest version document}``).
A checkout of getsentry/sentry-release-registry has no index file, so a local reader
builds it from each runtime's ``latest.json``; over HTTP the release registry service's
``/aws-lambda-layers`` endpoint, which serves the same shape, is the fallback.

The schema checks and JSON readers here are shared with the writer (``registry.py``).
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import requests

from layer_builder.aws.facts import layer_arn, partition_of_region
from layer_builder.download import display_url, make_session
from layer_builder.errors import RegistryError

LAYERS_DIR = "aws-lambda-layers"
LATEST_FILE = "latest.json"
INDEX_FILE = "index.json"
VERSION_SCHEMA = "version.schema.json"
INDEX_SCHEMA = "index.schema.json"
#: (connect, read) seconds for each request to a registry served over HTTP.
TIMEOUT: tuple[float, float] = (5.0, 30.0)
DEFAULT_TTL = 300.0

Document = dict[str, Any]


# --- documents, shared with the writer --------------------------------------------------


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


def read_json_mapping(path: Path) -> Document:
    """A registry file's JSON object; RegistryError naming the file if it is anything else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: unreadable: {exc}") from None
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


def collect_index(
    layers_dir: Path, overrides: Mapping[str, Document] | None = None
) -> dict[str, Document]:
    """``{canonical: latest document}`` for every runtime directory under ``layers_dir``.

    ``overrides`` maps a runtime directory to the document its ``latest.json`` is about to
    point at, so the writer can build the index before it touches the disk.
    """
    overrides = overrides or {}
    names = {p.name for p in layers_dir.iterdir() if p.is_dir()} if layers_dir.is_dir() else set()
    index: dict[str, Document] = {}
    owner: dict[str, Path] = {}
    for name in sorted(names | set(overrides)):
        if name.startswith("."):
            continue
        latest = layers_dir / name / LATEST_FILE
        if name in overrides:
            doc = overrides[name]
        elif os.path.lexists(latest):
            if not latest.exists():
                raise RegistryError(f"{latest}: links to {os.readlink(latest)}, which is missing")
            doc = read_version_document(latest)
        else:
            continue  # only prereleases so far, or just a base.json
        canonical = doc["canonical"]
        if canonical in owner:
            raise RegistryError(f"{latest}: canonical {canonical!r} is also {owner[canonical]}")
        owner[canonical] = latest
        index[canonical] = doc
    return index


# --- typed view of one release ----------------------------------------------------------


@dataclass(frozen=True)
class ArchitectureLayer:
    """One architecture's layer in a release: its name and its version in each region."""

    architecture: str
    layer_name: str
    versions: Mapping[str, str]  # region -> layer version (a string, as the registry has it)
    code_sha256: str | None = None


@dataclass(frozen=True)
class LayerRelease:
    """A version document, read: what a consumer needs to attach the layer to a function."""

    canonical: str
    sdk_version: str
    account_number: str
    compatible_runtimes: tuple[str, ...]
    layers: tuple[ArchitectureLayer, ...]
    source: str  # where the document came from, for error messages

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, source: str) -> LayerRelease:
        """Read a schema-valid version document, with or without the ``layers`` detail."""
        if "layers" in doc:
            # A universal entry serves every architecture it lists; older documents of this
            # tool carry only `architecture`.
            layers = tuple(
                ArchitectureLayer(
                    arch,
                    e["layer_name"],
                    {r["region"]: r["version"] for r in e["regions"]},
                    e.get("code_sha256"),
                )
                for e in doc["layers"]
                for arch in (e.get("compatible_architectures") or [e["architecture"]])
            )
        else:
            # Sentry's documents: layer_name/regions is the x86_64 layer, and the same
            # layer serves arm64 only when the document says it is compatible.
            versions = {r["region"]: r["version"] for r in doc["regions"]}
            archs = doc.get("compatible_architectures") or ["x86_64"]
            layers = tuple(ArchitectureLayer(a, doc["layer_name"], versions) for a in archs)
        return cls(
            canonical=doc["canonical"],
            sdk_version=doc["sdk_version"],
            account_number=doc["account_number"],
            compatible_runtimes=tuple(doc.get("compatible_runtimes", ())),
            layers=layers,
            source=source,
        )

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(layer.architecture for layer in self.layers)

    def layer(self, arch: str = "x86_64") -> ArchitectureLayer:
        """The layer for ``arch``; RegistryError if this release has none."""
        for layer in self.layers:
            if layer.architecture == arch:
                return layer
        raise RegistryError(
            f"{self.source}: {self.canonical} {self.sdk_version} has no {arch} layer "
            f"(architectures: {', '.join(self.architectures)})"
        )

    def version(self, region: str, arch: str = "x86_64") -> int:
        """The layer version published in ``region``; RegistryError if there is none."""
        layer = self.layer(arch)
        if region not in layer.versions:
            # No "did you mean": a layer from a neighbouring region cannot be attached anyway.
            raise RegistryError(
                f"{self.source}: {self.canonical} {self.sdk_version} has no {arch} layer in "
                f"region {region!r} (it is published in {len(layer.versions)} regions; "
                "see `layer-builder registry show`)"
            )
        return int(layer.versions[region])

    def arn(self, region: str, arch: str = "x86_64") -> str:
        """``arn:{partition}:lambda:{region}:{account}:layer:{name}:{version}``."""
        version = self.version(region, arch)
        name = self.layer(arch).layer_name
        return layer_arn(partition_of_region(region), region, self.account_number, name, version)


# --- the client -------------------------------------------------------------------------


class RegistryClient:
    """Reads a registry from a directory or an http(s) base URL, with a small TTL cache.

    ``source`` is the registry root (the directory or URL holding ``aws-lambda-layers/``);
    an http(s) URL ending in ``.json`` is taken as the index itself. The index is fetched
    once per ``ttl`` seconds (``clock`` is injectable for tests); ``ttl=0`` disables it.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        timeout: tuple[float, float] = TIMEOUT,
        retries: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        text = os.fspath(source)
        self._url = text.rstrip("/") if text.startswith(("http://", "https://")) else None
        self._root = None if self._url else Path(text)
        self.source = display_url(text) if self._url else text  # never echo credentials
        self._ttl = ttl
        self._clock = clock
        self._timeout = timeout
        self._retries = retries
        self._session = session
        self._owns_session = session is None
        self._cached: tuple[float, dict[str, Document]] | None = None

    def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._session is not None and self._owns_session:
            self._session.close()
            self._session = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clear_cache(self) -> None:
        """Forget the cached index; the next call reads the registry again."""
        self._cached = None

    def index(self) -> dict[str, Document]:
        """``{canonical: latest version document}`` for every layer in the registry."""
        now = self._clock()
        if self._cached is None or now - self._cached[0] >= self._ttl:
            self._cached = (now, self._load_index())
        # A copy: callers may change what they get without corrupting the cache.
        return copy.deepcopy(self._cached[1])

    def document(self, canonical: str) -> Document:
        """The latest version document of ``canonical``, checked against the schema."""
        index = self.index()
        if canonical not in index:
            close = difflib.get_close_matches(canonical, index, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(index))}"
            raise RegistryError(f"{self.source}: no layer {canonical!r} in the registry; {hint}")
        doc = index[canonical]
        problem = schema_error(doc)
        if problem:
            raise RegistryError(
                f"{self.source}: {canonical}: not a layer version document: {problem}"
            )
        return doc

    def latest(self, canonical: str) -> LayerRelease:
        """The latest release of ``canonical``."""
        return LayerRelease.from_document(self.document(canonical), source=self.source)

    def layer_arn(self, canonical: str, region: str, arch: str = "x86_64") -> str:
        """The ARN of the latest ``canonical`` layer version for ``arch`` in ``region``."""
        return self.latest(canonical).arn(region, arch)

    def _load_index(self) -> dict[str, Document]:
        data = self._fetch_index() if self._url else self._read_local_index()
        problem = schema_error(data, INDEX_SCHEMA)
        if problem:
            raise RegistryError(f"{self.source}: not a layer registry index: {problem}")
        return data

    def _read_local_index(self) -> dict[str, Document]:
        assert self._root is not None
        layers_dir = self._root / LAYERS_DIR
        if not layers_dir.is_dir() and self._root.name == LAYERS_DIR:
            layers_dir = self._root
        if not layers_dir.is_dir():
            raise RegistryError(f"{self._root}: no registry here (expected {layers_dir}/)")
        index_path = layers_dir / INDEX_FILE
        if index_path.exists():
            return read_json_mapping(index_path)
        return collect_index(layers_dir)

    def _fetch_index(self) -> dict[str, Document]:
        assert self._url is not None
        if self._url.endswith(".json"):
            candidates = [self._url]
        else:
            # Our static layout first, then the release registry service's endpoint.
            candidates = [f"{self._url}/{LAYERS_DIR}/{INDEX_FILE}", f"{self._url}/{LAYERS_DIR}"]
        if self._session is None:
            # download.py owns the project's HTTP settings: User-Agent, retries, backoff.
            self._session = make_session(retries=self._retries)
        for i, url in enumerate(candidates):
            shown = display_url(url)
            try:
                response = self._session.get(url, timeout=self._timeout)
            except requests.RequestException as exc:
                reason = " ".join(str(exc).split())[:300]
                raise RegistryError(f"{shown}: cannot fetch the registry index: {reason}") from None
            with response:
                if response.status_code == 404 and i + 1 < len(candidates):
                    continue
                if not response.ok:
                    raise RegistryError(
                        f"{shown}: HTTP {response.status_code} fetching the registry index"
                    )
                try:
                    data = response.json()
                except ValueError:
                    raise RegistryError(f"{shown}: the registry index is not valid JSON") from None
            if not isinstance(data, dict):
                raise RegistryError(f"{shown}: the registry index is not a JSON object")
            return data
        raise AssertionError("unreachable: the last candidate always returns or raises")
