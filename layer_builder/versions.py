"""Version order for the registry's links: SemVer precedence and PEP 440.

Node SDK versions are SemVer (``8.0.0-beta.10``): a prerelease sorts before its release,
its dot-separated identifiers compare one by one, numeric ones as numbers, and a numeric
identifier sorts before an alphanumeric one. Python SDK versions follow PEP 440
(``2.0.0rc10``, ``2.75.0.post1``, ``2.0.0.dev1``): ``.devN`` < ``aN`` < ``bN`` < ``rcN`` <
release < ``.postN``. Comparing the text (``beta.10`` < ``beta.9``) gets both wrong.

:func:`version_key` returns one comparable key for either spelling, so keys of two
versions always compare without a TypeError: a text with ``-`` before any ``+`` is read as
SemVer, anything else as PEP 440 (falling back to SemVer for identifiers PEP 440 has no
word for). Build metadata (``+...``) and PEP 440 local labels do not take part in the order.

A layer's releases are ordered by its ecosystem's scheme only (:func:`scheme_for_runtimes`):
a Python layer by PEP 440, where ``2.75.0-post1`` and ``2.75.0-1`` are post-releases and
``2.75.0-rc1`` is ``2.75.0rc1``; a Node layer by SemVer. "auto" is for texts of unknown origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from layer_builder.errors import ArgumentError

# Every identifier is (kind, value): kind 0 carries an int, kind 1 a str, so tuples of
# them always compare (the kinds differ before the values would).
Ident = tuple[int, int | str]
Key = tuple[tuple[int, ...], int, tuple[Ident, ...]]

# Stages: a PEP 440 ``X.devN`` (no pre tag) sorts before every prerelease of X.
_DEV_OF_RELEASE, _PRERELEASE, _RELEASE = 0, 1, 2

_SEMVER_RE = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+)*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z.-]+)?$"
)
_PEP440_RE = re.compile(
    r"^v?(?:\d+!)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>\d+)?)?"
    r"(?P<post>(?:-(?P<post_n1>\d+))|(?:[-_.]?(?:post|rev|r)[-_.]?(?P<post_n2>\d+)?))?"
    r"(?P<dev>[-_.]?dev[-_.]?(?P<dev_n>\d+)?)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
    re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
# Absent post/dev parts: "no post" sorts before ".post0", "no dev" after every ".devN".
_NO_POST: Ident = (0, -1)
_NO_DEV: Ident = (1, "")


def _release(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()  # 1.0 == 1.0.0 in both schemes' eyes
    return tuple(parts)


def semver_key(text: str) -> Key:
    """The SemVer 2.0.0 precedence key of ``text``; ArgumentError if it is not SemVer."""
    m = _SEMVER_RE.match(text.strip())
    if not m:
        raise ArgumentError(f"{text!r} is not a SemVer version")
    pre = m.group("pre")
    if pre is None:
        return _release(m["release"]), _RELEASE, ()
    idents: list[Ident] = [(0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")]
    return _release(m["release"]), _PRERELEASE, tuple(idents)


def pep440_key(text: str) -> Key:
    """The PEP 440 order key of ``text``; ArgumentError if it is not a PEP 440 version."""
    m = _PEP440_RE.match(text.strip())
    if not m:
        raise ArgumentError(f"{text!r} is not a PEP 440 version")
    post_text = m["post_n1"] or m["post_n2"]
    post: Ident = (0, int(post_text or 0)) if m["post"] else _NO_POST
    dev: Ident = (0, int(m["dev_n"] or 0)) if m["dev"] else _NO_DEV
    release = _release(m["release"])
    if m["pre_l"]:
        pre: tuple[Ident, ...] = ((0, _PRE_RANK[m["pre_l"].lower()]), (0, int(m["pre_n"] or 0)))
        return release, _PRERELEASE, (*pre, post, dev)
    if dev != _NO_DEV and post == _NO_POST:
        return release, _DEV_OF_RELEASE, (dev,)
    return release, _RELEASE, (post, dev)


PEP440, SEMVER, AUTO = "pep440", "semver", "auto"


def scheme_for_runtimes(runtimes: Iterable[str]) -> str:
    """The version scheme of a layer for ``runtimes``: PEP 440 for Python, SemVer for Node,
    "auto" when the runtimes name neither (or both)."""
    kinds = {r.rstrip("0123456789.x") for r in runtimes}
    if kinds == {"python"}:
        return PEP440
    if kinds == {"nodejs"}:
        return SEMVER
    return AUTO


def link_key(text: str, scheme: str) -> Key:
    """:func:`version_key` under ``scheme``, or under "auto" for a text that is not in that
    scheme (a link left by an older run): a link target never stops a registry write."""
    try:
        return version_key(text, scheme)
    except ArgumentError:
        return version_key(text, AUTO)


def version_key(text: str, scheme: str = "auto") -> Key:
    """A sort key for a release version under ``scheme`` ("semver", "pep440" or "auto")."""
    if scheme == "semver":
        return semver_key(text)
    if scheme == "pep440":
        return pep440_key(text)
    if "-" in text.split("+", 1)[0] and _SEMVER_RE.match(text.strip()):
        return semver_key(text)
    try:
        return pep440_key(text)
    except ArgumentError:
        return semver_key(text)


def is_prerelease(text: str, scheme: str = "auto") -> bool:
    """True for a prerelease or a development release; a post-release is a release."""
    return version_key(text, scheme)[1] != _RELEASE


def compare(a: str, b: str, scheme: str = "auto") -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b``."""
    ka, kb = version_key(a, scheme), version_key(b, scheme)
    return (ka > kb) - (ka < kb)


def sorted_versions(texts: list[str], scheme: str = "auto") -> list[str]:
    """``texts`` oldest first."""
    return sorted(texts, key=lambda text: version_key(text, scheme))
