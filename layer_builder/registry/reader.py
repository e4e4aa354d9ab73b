"""Read the layer registry from a local checkout or over HTTP(S).

A checkout is read the way the release registry's API server reads it: every directory
under ``aws-lambda-layers/`` is a runtime, and its ``latest.json`` (a symlink another writer,
craft or a person, may move at any time) is that runtime's newest document. Nothing else
there is read: an ``aws-lambda-layers/index.json`` left by older versions of this tool is
ignored, so a stale aggregate can never answer instead of ``latest.json``. Directory reads
are not cached, so a moved link is followed at once.

Over HTTP the API server's route ``GET {base}/aws-lambda-layers`` serves
``{canonical: latest document}``; a URL whose path ends in ``.json`` is taken as a static
file of that shape. The URL's query string (a token, a signature) is kept on every request
derived from it and is never printed, nor is its user info.

The checkout's layout, schema checks and JSON readers are in :mod:`.layout`, shared with
the writer.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from layer_builder.download import display_url, error_reason, is_loopback_url, make_session
from layer_builder.errors import RegistryError
from layer_builder.registry.layout import (
    INDEX_SCHEMA,
    LATEST_FILE,
    LAYERS_DIR,
    MAX_INDEX_BYTES,
    MAX_JSON_DEPTH,
    Document,
    collect_index,
    newest_not_yanked,
    read_json_mapping,
    read_version_document,
    schema_error,
    too_deep,
    yank_info,
    yanked_message,
)
from layer_builder.registry.release import LayerRelease, ReleaseLayer
from layer_builder.validate import did_you_mean

__all__ = ["LayerRelease", "RegistryClient", "ReleaseLayer"]  # the reading API, in one place

log = logging.getLogger(__name__)

#: (connect, read) seconds for each request to a registry served over HTTP.
TIMEOUT: tuple[float, float] = (5.0, 30.0)
DEFAULT_TTL = 300.0
MAX_REDIRECTS = 5


# --- the client -------------------------------------------------------------------------


def check_registry_url(url: str, *, allow_http: bool) -> None:
    """RegistryError unless ``url`` is https, loopback http, or http with ``allow_http``.

    The registry decides which code runs in the user's functions, so a plain-http answer
    that anyone on the path can rewrite is refused unless asked for.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. https://[::1/ (an unclosed IPv6 address)
        shown = re.sub(r"//[^/@]*@", "//", url.split("?", 1)[0].split("#", 1)[0])
        raise RegistryError(f"{shown}: not a valid URL ({exc})") from None
    try:
        parts.port  # noqa: B018 -- raises for a port out of range, as display_url would
    except ValueError as exc:
        shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        raise RegistryError(f"{shown}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and not parts.hostname:
        shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        raise RegistryError(f"{shown}: not a valid URL (no host)")
    if scheme == "https" or (scheme == "http" and (allow_http or is_loopback_url(url))):
        return
    if scheme == "http":
        raise RegistryError(
            f"{display_url(url)}: refusing a plain http:// registry (it decides which layer "
            "runs in your functions); use https://, or pass --allow-http"
        )
    raise RegistryError(f"{display_url(url)}: unsupported URL scheme {scheme!r} (need https://)")


def is_url(text: str) -> bool:
    """True for ``scheme://...``: read over HTTP (other schemes are refused), else a path."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


class RegistryClient:
    """Reads a registry from a directory or an http(s) base URL.

    ``source`` is the registry root (the directory or URL holding ``aws-lambda-layers/``,
    or that directory itself); an http(s) URL whose path ends in ``.json`` is taken as a
    static ``{canonical: latest document}`` file. Plain http is refused (RegistryError)
    unless the host is loopback or ``allow_http``. Over HTTP the index is cached for
    ``ttl`` seconds (``clock`` is injectable for tests; ``ttl=0`` disables it); a directory
    is read afresh every time.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        allow_http: bool = False,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        timeout: tuple[float, float] = TIMEOUT,
        retries: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        text = os.fspath(source)
        self._url = text if is_url(text) else None
        if self._url:
            check_registry_url(self._url, allow_http=allow_http)
        self._root = None if self._url else Path(text)
        self.source = display_url(text) if self._url else text  # never echo credentials
        self._allow_http = allow_http
        self._ttl = ttl
        self._clock = clock
        self._timeout = timeout
        self._retries = retries
        self._session = session
        self._owns_session = session is None
        self._cached: tuple[float, dict[str, Document]] | None = None
        self._sources: dict[str, tuple[Path, Path]] = {}  # canonical -> (runtime dir, file)
        self._unreleased: list[str] = []

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
        if self._url is None:
            return self._read_directory()
        now = self._clock()
        if self._cached is None or now - self._cached[0] >= self._ttl:
            self._cached = (now, self._fetch_index())
        # A copy: callers may change what they get without corrupting the cache.
        return copy.deepcopy(self._cached[1])

    def document(self, canonical: str) -> Document:
        """The latest version document of ``canonical``, checked against the schema."""
        index = self.index()
        if canonical not in index:
            raise RegistryError(f"{self.source}: {self._unknown(canonical, index)}")
        doc = index[canonical]
        problem = schema_error(doc)
        if problem:
            raise RegistryError(
                f"{self._source_of(canonical)}: {canonical}: not a layer version document: "
                f"{problem}"
            )
        return doc

    def version_document(self, canonical: str, version: str) -> Document:
        """``<runtime>/<version>.json`` of ``canonical``; a registry directory only.

        The API server serves only each runtime's latest document, so over HTTP this is a
        RegistryError.
        """
        if self._root is None:
            raise RegistryError(
                f"{self.source}: a version other than the latest can only be read from a "
                "registry directory (the API server serves the latest only)"
            )
        self.document(canonical)  # finds the runtime directory, and checks the entry exists
        runtime_dir = self._sources[canonical][0]
        if not version or "/" in version or version.startswith("."):
            raise RegistryError(f"{version!r}: not a version")
        path = runtime_dir / f"{version}.json"
        if not path.exists():
            known = sorted(
                p.stem
                for p in runtime_dir.glob("*.json")
                if not p.is_symlink() and p.name != "base.json"
            )
            hint = did_you_mean(version, known, otherwise=f"; known: {', '.join(known[-5:])}")
            raise RegistryError(f"{path}: no such version of {canonical}{hint}")
        doc = read_version_document(path)
        if doc["canonical"] != canonical:
            raise RegistryError(f"{path}: canonical is {doc['canonical']!r}, not {canonical!r}")
        return doc

    def sbom(self, canonical: str, doc: Mapping[str, Any]) -> Document:
        """The CycloneDX SBOM the version document ``doc`` of ``canonical`` names; a
        registry directory only (the API server does not serve it)."""
        where = f"{canonical} {doc.get('sdk_version')}"
        if self._root is None:
            raise RegistryError(
                f"{self.source}: the SBOM of {where} can only be read from a registry directory"
            )
        self.document(canonical)  # finds the runtime directory
        rel = doc.get("sbom")
        if not isinstance(rel, str):
            raise RegistryError(
                f"{where}: its document names no SBOM (published by an older layer-builder); "
                "its `packages`, if any, list what it holds"
            )
        # The schema keeps `sbom` below the document's directory (no "..", no leading "/").
        return read_json_mapping(self._sources[canonical][0] / rel)

    def latest(self, canonical: str) -> LayerRelease:
        """The latest release of ``canonical`` that is not yanked.

        ``latest.json`` never points at a yanked release when `layer-builder yank` wrote the
        registry; one that does (moved by hand or by another tool) is skipped for the newest
        release that is not yanked, read from the directory. Over HTTP the API server serves
        the latest release only, so a yanked one there is a RegistryError saying so.
        """
        doc = self.document(canonical)
        if yank_info(doc) is None:
            return LayerRelease.from_document(doc, source=self._source_of(canonical))
        if self._root is None:
            raise RegistryError(
                f"{self.source}: {yanked_message(doc)}; the registry serves no other release "
                "of it (the API server serves the latest only)"
            )
        found = newest_not_yanked(self._sources[canonical][0], canonical)
        if found is None:
            raise RegistryError(
                f"{self._source_of(canonical)}: {yanked_message(doc)}; no release of it is "
                "left that is not yanked"
            )
        log.warning("%s; using %s instead", yanked_message(doc), found[0].name)
        return LayerRelease.from_document(found[1], source=str(found[0]))

    def release(self, canonical: str, version: str | None = None) -> LayerRelease:
        """The release ``version`` of ``canonical`` (the latest when None)."""
        if version is None:
            return self.latest(canonical)
        doc = self.version_document(canonical, version)
        path = self._sources[canonical][0] / f"{version}.json"
        if yank_info(doc) is not None:
            instead = self.latest(canonical).sdk_version
            raise RegistryError(
                f"{path}: {yanked_message(doc)}; use {instead} (the newest release not "
                "yanked), or `layer-builder unyank` it first"
            )
        return LayerRelease.from_document(doc, source=str(path))

    def layer_arn(self, canonical: str, region: str, arch: str = "x86_64") -> str:
        """The ARN of the latest ``canonical`` layer version for ``arch`` in ``region``."""
        return self.latest(canonical).arn(region, arch)

    # --- where documents come from -----------------------------------------------------

    def _source_of(self, canonical: str) -> str:
        found = self._sources.get(canonical)
        return str(found[1]) if found else self.source

    def _unknown(self, canonical: str, index: Mapping[str, Any]) -> str:
        hint = did_you_mean(canonical, index, otherwise=f"; known: {', '.join(sorted(index))}")
        if not index:
            hint = "; it holds no released layer yet"
        if self._unreleased:
            hint += f" ({', '.join(d + '/' for d in self._unreleased)} has no {LATEST_FILE})"
        return f"no layer {canonical!r} in the registry{hint}"

    def _read_directory(self) -> dict[str, Document]:
        assert self._root is not None
        root = self._root
        if not root.exists():
            raise RegistryError(f"{root}: no such registry directory")
        if not root.is_dir():
            raise RegistryError(f"{root}: not a directory (expected a registry checkout)")
        layers_dir = root / LAYERS_DIR
        if not layers_dir.is_dir() and root.name == LAYERS_DIR:
            layers_dir = root
        if not layers_dir.is_dir():
            raise RegistryError(f"{root}: no registry here (expected {layers_dir}/)")
        sources: dict[str, tuple[Path, Path]] = {}
        unreleased: list[str] = []
        index = collect_index(layers_dir, sources=sources, unreleased=unreleased)
        self._sources, self._unreleased = sources, unreleased
        return index

    def _derived(self) -> str:
        """The API server's route under the base URL, with the base's query string kept."""
        assert self._url is not None
        parts = urlsplit(self._url)
        if parts.path.endswith(".json"):
            return urlunsplit(parts._replace(fragment=""))
        path = parts.path.rstrip("/") + "/" + LAYERS_DIR
        return urlunsplit(parts._replace(path=path, fragment=""))

    def _fetch_index(self) -> dict[str, Document]:
        url = self._derived()
        shown = display_url(url)
        if self._session is None:
            # download.py owns the project's HTTP settings: User-Agent, retries, backoff.
            self._session = make_session(retries=self._retries)
        response = self._get(url)
        with response:
            if not response.ok:
                raise RegistryError(
                    f"{shown}: HTTP {response.status_code} fetching the registry index"
                )
            body = bytearray()
            try:
                for chunk in response.iter_content(1 << 16):
                    body += chunk
                    if len(body) > MAX_INDEX_BYTES:
                        raise RegistryError(
                            f"{shown}: the registry index is over {MAX_INDEX_BYTES:,} bytes"
                        )
            except requests.RequestException as exc:
                raise RegistryError(
                    f"{shown}: cannot fetch the registry index: {error_reason(exc, url)}"
                ) from None
            try:
                data = json.loads(bytes(body))
            except RecursionError:
                raise RegistryError(f"{shown}: the registry index is nested too deeply") from None
            except ValueError:
                raise RegistryError(f"{shown}: the registry index is not valid JSON") from None
        if too_deep(data):
            raise RegistryError(
                f"{shown}: the registry index is nested deeper than {MAX_JSON_DEPTH} levels"
            )
        if not isinstance(data, dict):
            raise RegistryError(f"{shown}: the registry index is not a JSON object")
        problem = schema_error(data, INDEX_SCHEMA)
        if problem:
            raise RegistryError(f"{shown}: not a layer registry index: {problem}")
        return data

    def _get(self, url: str) -> requests.Response:
        """GET ``url``, following redirects by hand: each hop must pass the http rule first."""
        assert self._session is not None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.get(
                    url, timeout=self._timeout, allow_redirects=False, stream=True
                )
            except requests.RequestException as exc:
                raise RegistryError(
                    f"{display_url(url)}: cannot fetch the registry index: {error_reason(exc, url)}"
                ) from None
            if not response.is_redirect:
                return response
            response.close()
            url = urljoin(url, response.headers["Location"])
            check_registry_url(url, allow_http=self._allow_http)
        raise RegistryError(f"{display_url(url)}: more than {MAX_REDIRECTS} redirects")
