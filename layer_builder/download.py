"""HTTP downloads: the one module that talks to the network for files and registry documents.

Every binary that goes into a layer is fetched through :func:`fetch`, which streams to a
temporary file while hashing, verifies the pinned sha256, and only then moves the file into
a content-addressed cache (``<cache>/sha256/<digest>``). A cache hit is hashed again before
use, so a corrupted or tampered cache never reaches a layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from layer_builder import __version__
from layer_builder.errors import ChecksumError, DownloadError

log = logging.getLogger(__name__)

USER_AGENT = f"layer-builder/{__version__}"
#: (connect, read) seconds. The read timeout bounds the wait for each chunk, not the total.
TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: A Lambda layer holds at most 250 MB unzipped; nothing we download legitimately exceeds it.
MAX_DOWNLOAD_BYTES = 300 * 1024 * 1024
MAX_JSON_BYTES = 10 * 1024 * 1024
_CHUNK = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def make_session(*, retries: int = 4, backoff_factor: float = 0.5) -> requests.Session:
    """The session every download uses: our User-Agent and retries with backoff.

    Connect and read errors and 429/5xx answers are retried (GET and HEAD only, which are
    idempotent); ``Retry-After`` is honoured. After the last retry the final response is
    returned so the caller can name the status in its error.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def default_cache_dir() -> Path:
    """``$LAYER_BUILDER_CACHE``, else ``$XDG_CACHE_HOME/layer-builder`` (``~/.cache/...``)."""
    env = os.environ.get("LAYER_BUILDER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "layer-builder"


def display_url(url: str) -> str:
    """The URL without user info or query string, safe to log and to put in error messages.

    Signed URLs carry credentials in the query; ``user:password@`` carries them in the netloc.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:  # not parseable (an unclosed [, a port out of range): cut by hand
        text = re.sub(r"//[^/@]*@", "//", url.split("#", 1)[0])
        head, sep, _ = text.partition("?")
        return head + ("?..." if sep else "")
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(text: str, url: str) -> str:
    """``text`` with ``url``'s query string, user name and password replaced by ``...``.

    For messages built from library exceptions, which may quote the URL they were given.
    """
    parts = urlsplit(url)
    secrets = [parts.query, parts.password or "", parts.username or ""]
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "...")
    return text


def error_reason(exc: requests.RequestException, url: str) -> str:
    """The readable part of a requests error, without ``url``'s credentials or query."""
    return redact(" ".join(_reason(exc).split()), url)[:300]


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_sha256(value: str) -> str | None:
    """Lower-case hex digest, or None if ``value`` is not a sha256 hex digest."""
    value = value.strip().lower()
    return value if len(value) == 64 and set(value) <= _HEX else None


def fetch(
    url: str,
    sha256: str,
    *,
    allow_http: bool = False,
    cache_dir: Path | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` (or reuse the cached copy) and return its path once it matches ``sha256``.

    Raises :class:`DownloadError` if the URL is refused or the download fails after retries,
    and :class:`ChecksumError` (naming the URL, the expected and the actual digest) if the
    bytes differ from the pin; a mismatching file is never left in the cache.
    """
    expected = normalize_sha256(sha256)
    if expected is None:
        raise ChecksumError(f"{display_url(url)}: pinned sha256 {sha256!r} is not 64 hex digits")
    _check_scheme(url, allow_http)
    cache = _cache_root(cache_dir)
    target = cache / expected
    if target.is_file():
        actual = sha256_file(target)
        if actual == expected:
            log.debug("cache hit for %s: %s", display_url(url), target)
            return target
        # Someone or something changed the cached bytes: drop them and download again.
        log.warning("cached %s has sha256 %s, not its name; downloading again", target, actual)
        target.unlink(missing_ok=True)
    tmp, actual = _download_to_temp(url, cache, allow_http=allow_http, session=session)
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(
            f"{display_url(url)}: sha256 mismatch: expected {expected}, got {actual}"
        )
    os.replace(tmp, target)
    log.info("downloaded %s (sha256 %s)", display_url(url), expected)
    return target


def fetch_unpinned(
    url: str,
    *,
    allow_http: bool = False,
    cache_dir: Path | None = None,
    session: requests.Session | None = None,
) -> tuple[Path, str]:
    """Download ``url`` without a pin; return the cached path and the sha256 computed.

    Only for ``layer-builder extension pin``, which records the digest it is given here.
    """
    _check_scheme(url, allow_http)
    cache = _cache_root(cache_dir)
    tmp, actual = _download_to_temp(url, cache, allow_http=allow_http, session=session)
    target = cache / actual
    os.replace(tmp, target)
    log.info("downloaded %s unpinned (sha256 %s)", display_url(url), actual)
    return target, actual


def fetch_json(
    url: str, *, allow_http: bool = False, session: requests.Session | None = None
) -> Any:
    """GET a JSON document (e.g. a release registry entry) and return it parsed."""
    _check_scheme(url, allow_http)
    with _get(url, session, allow_http=allow_http) as resp:
        data = b""
        for chunk in resp.iter_content(_CHUNK):
            data += chunk
            if len(data) > MAX_JSON_BYTES:
                raise DownloadError(f"{display_url(url)}: JSON document larger than 10 MiB")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise DownloadError(f"{display_url(url)}: not a JSON document ({exc})") from None
    except RecursionError:
        raise DownloadError(
            f"{display_url(url)}: not a JSON document (nested too deeply)"
        ) from None


def _check_scheme(url: str, allow_http: bool) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises for a port out of range
    except ValueError as exc:
        raise DownloadError(f"{display_url(url)}: not a valid URL ({exc})") from None
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise DownloadError(f"{display_url(url)}: not a valid URL (no host)")
    scheme = parts.scheme.lower()
    if scheme == "https":
        return
    if scheme == "http":
        if allow_http:
            return
        raise DownloadError(
            f"{display_url(url)}: refusing plain http:// download; use https:// or set "
            "`allow_http: true` in the extension manifest"
        )
    raise DownloadError(f"{display_url(url)}: unsupported URL scheme {scheme!r} (need https://)")


def _cache_root(cache_dir: Path | None) -> Path:
    root = (cache_dir or default_cache_dir()) / "sha256"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{root}: cannot create the download cache: {exc.strerror}") from None
    return root


@contextlib.contextmanager
def _get(
    url: str, session: requests.Session | None, *, allow_http: bool
) -> Iterator[requests.Response]:
    """A streaming GET that has answered 200; the body is read inside the ``with`` block."""
    with contextlib.ExitStack() as stack:
        sess = session or stack.enter_context(make_session())
        try:
            resp = stack.enter_context(sess.get(url, stream=True, timeout=TIMEOUT))
        except requests.RequestException as exc:
            raise DownloadError(f"{display_url(url)}: download failed: {_reason(exc)}") from None
        if resp.url != url:
            # Redirects must not end on http:// behind the caller's back. Only headers have
            # been read at this point, and the sha256 pin still guards the bytes.
            _check_scheme(resp.url, allow_http)
        if resp.status_code != 200:
            raise DownloadError(f"{display_url(url)}: HTTP {resp.status_code} {resp.reason}")
        yield resp


def _download_to_temp(
    url: str, cache: Path, *, allow_http: bool, session: requests.Session | None
) -> tuple[Path, str]:
    """Stream ``url`` into a temporary file inside ``cache``; return it and its sha256."""
    digest = hashlib.sha256()
    size = 0
    # Same directory as the cache entries, so the final os.replace is atomic.
    fd, name = tempfile.mkstemp(prefix=".partial-", dir=cache)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, _get(url, session, allow_http=allow_http) as resp:
            for chunk in resp.iter_content(_CHUNK):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(
                        f"{display_url(url)}: larger than {MAX_DOWNLOAD_BYTES} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
    except requests.RequestException as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"{display_url(url)}: download interrupted: {_reason(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def _reason(exc: requests.RequestException) -> str:
    # The innermost urllib3 reason is the readable part ("Connection refused", "timed out").
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    text = str(reason or exc)
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]  # drop "<urllib3.connection... object at 0x...>: "
    return text
