"""Version order for the registry's links: SemVer precedence and PEP 440, table-driven."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from packaging.version import Version

from layer_builder.errors import ArgumentError
from layer_builder.model import ReleaseVersion
from layer_builder.versions import (
    compare,
    is_prerelease,
    link_key,
    scheme_for_runtimes,
    sorted_versions,
    version_key,
)

# (older, newer): every pair must sort strictly in this order.
SEMVER_PAIRS = [
    ("8.0.0-beta.9", "8.0.0-beta.10"),  # numeric identifiers compare as numbers
    ("8.0.0-beta.10", "8.0.0"),  # a prerelease precedes its release
    ("8.0.0-alpha", "8.0.0-alpha.1"),  # fewer identifiers first when the rest are equal
    ("8.0.0-alpha.1", "8.0.0-alpha.beta"),  # numeric before alphanumeric
    ("8.0.0-alpha.beta", "8.0.0-beta"),
    ("8.0.0-beta.11", "8.0.0-rc.1"),
    ("8.0.0-rc.1", "8.0.1-alpha.0"),
    ("7.120.0", "8.0.0-alpha.0"),
    ("1.0.0-2", "1.0.0-10"),
    ("1.0.0-1", "1.0.0-a"),
    ("9.9.9", "10.0.0"),
]
PEP440_PAIRS = [
    ("2.0.0rc9", "2.0.0rc10"),
    ("2.0.0rc10", "2.0.0"),
    ("2.0.0a1", "2.0.0b1"),
    ("2.0.0b2", "2.0.0rc1"),
    ("2.0.0.dev1", "2.0.0a1"),
    ("2.0.0a1.dev3", "2.0.0a1"),
    ("2.75.0", "2.75.0.post1"),
    ("2.75.0.post1", "2.75.0.post2"),
    ("2.75.0.post9", "2.75.0.post10"),
    ("2.75.0.post1", "2.75.1"),
    ("2.75.0.post1.dev1", "2.75.0.post1"),
    ("2.75.0", "2.75.0.post1.dev1"),
    ("2.0.0a1", "2.0.0a1.post1"),
    ("1.9.0", "1.10.0"),
]


@pytest.mark.parametrize(("older", "newer"), SEMVER_PAIRS + PEP440_PAIRS)
def test_pairs_sort_in_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)
    assert compare(older, newer) == -1 and compare(newer, older) == 1
    # The links use ReleaseVersion's order; it must agree.
    assert ReleaseVersion.parse(older).sort_key() < ReleaseVersion.parse(newer).sort_key()


@pytest.mark.parametrize(("older", "newer"), PEP440_PAIRS)
def test_pep440_pairs_agree_with_packaging(older: str, newer: str) -> None:
    # An independent implementation of PEP 440 must agree with the table.
    assert Version(older) < Version(newer)


def test_a_shuffled_list_sorts_oldest_first() -> None:
    expected = ["8.0.0-alpha.1", "8.0.0-beta.2", "8.0.0-beta.9", "8.0.0-beta.10", "8.0.0", "8.1.0"]
    assert sorted_versions(list(reversed(expected))) == expected


@pytest.mark.parametrize(
    ("text", "pre"),
    [
        ("2.75.0", False),
        ("2.75.0.post1", False),  # a post-release is a release: it may take the links
        ("2.0.0rc1", True),
        ("2.0.0.dev1", True),
        ("8.0.0-beta.1", True),
    ],
)
def test_prerelease_or_not(text: str, pre: bool) -> None:
    assert is_prerelease(text) is pre
    assert ReleaseVersion.parse(text).is_prerelease is pre


def test_equal_spellings_compare_equal() -> None:
    assert compare("1.0", "1.0.0") == 0
    assert compare("8.0.0+build.5", "8.0.0") == 0


def test_not_a_version_is_refused() -> None:
    with pytest.raises(ArgumentError, match="not a SemVer version"):
        version_key("banana", "semver")
    with pytest.raises(ArgumentError, match="not a PEP 440 version"):
        version_key("8.0.0-beta.1.x!", "pep440")


# (scheme, older, newer): a layer's releases are ordered by its ecosystem's scheme only.
SCHEME_PAIRS = [
    ("pep440", "2.75.0", "2.75.0-post1"),  # PEP 440 normalises -post1 to .post1
    ("pep440", "2.75.0", "2.75.0-1"),  # ... and -1 to .post1
    ("pep440", "2.75.0-post1", "2.75.1"),
    ("pep440", "2.75.0-1", "2.75.0-post2"),
    ("pep440", "2.75.0-rc1", "2.75.0rc2"),  # -rc1 is rc1, not a SemVer prerelease
    ("pep440", "2.75.0-rc1", "2.75.0"),
    ("semver", "8.0.0-beta.9", "8.0.0-beta.10"),
    ("semver", "8.0.0-1", "8.0.0"),  # in SemVer, -1 is a prerelease
    ("semver", "8.0.0-rc.1", "8.0.0"),
]


@pytest.mark.parametrize(("scheme", "older", "newer"), SCHEME_PAIRS)
def test_pairs_sort_in_order_of_the_layers_scheme(scheme: str, older: str, newer: str) -> None:
    assert version_key(older, scheme) < version_key(newer, scheme)
    if scheme == "pep440":
        assert Version(older) < Version(newer)


@pytest.mark.parametrize(
    ("runtimes", "scheme"),
    [
        (("python3.9", "python3.13"), "pep440"),
        (("nodejs18.x", "nodejs22.x"), "semver"),
        (("python3.12", "nodejs22.x"), "auto"),
        ((), "auto"),
    ],
)
def test_the_scheme_follows_the_layers_runtimes(runtimes: tuple[str, ...], scheme: str) -> None:
    assert scheme_for_runtimes(runtimes) == scheme


def test_a_python_post_release_spelled_with_a_dash_takes_the_links(tmp_path: Path) -> None:
    from test_registry import registration, write

    root = tmp_path / "registry"
    for text in ("2.75.0", "2.75.0-post1", "2.75.0-rc1"):
        write(root, registration(text, link_prereleases=True))
    runtime = root / "aws-lambda-layers/python"
    # 2.75.0-rc1 (a prerelease of 2.75.0) came last but is older than both.
    assert {n: os.readlink(runtime / n) for n in ("latest.json", "2.json", "2.75.json")} == {
        n: "2.75.0-post1.json" for n in ("latest.json", "2.json", "2.75.json")
    }
    assert link_key("2.75.0-post1", "semver") < link_key("2.75.0", "semver")  # Node's reading


@pytest.mark.parametrize(
    ("runtimes", "text", "refused"),
    [
        (("nodejs20.x",), "8.0.0rc1", "is not a SemVer version"),
        (("python3.12",), "2.75.0-beta.1.x", "is not a PEP 440 version"),
        (("nodejs20.x",), "8.0.0-rc.1", None),
        (("python3.12",), "2.75.0-post1", None),
    ],
)
def test_a_version_its_layers_scheme_cannot_read_is_refused_before_publishing(
    tmp_path: Path, runtimes: tuple[str, ...], text: str, refused: str | None
) -> None:
    from types import SimpleNamespace

    from layer_builder.publish.release import check_version_scheme

    cfg = SimpleNamespace(compatible_runtimes=runtimes, path=tmp_path / "layer.yml")
    if refused is None:
        check_version_scheme(cfg, ReleaseVersion.parse(text))  # type: ignore[arg-type]
        return
    with pytest.raises(ArgumentError, match=f"^--version: '{text}' {refused}, the version order"):
        check_version_scheme(cfg, ReleaseVersion.parse(text))  # type: ignore[arg-type]
