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
    from tests.helpers.registrations import registration, write

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


# ------------------------------------------------------------------------------------------------
# Version order at its edges: implicit numbers of PEP 440 (``.post`` = ``.post0``, ``.dev`` =
# ``.dev0``, ``a`` = ``a0``), trailing zeros, explicit schemes refusing the other spelling,
# and the automatic choice for SemVer prereleases. packaging's Version is the oracle for PEP 440.


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0.post", "1.0.post0"),
        ("1.0.dev", "1.0.dev0"),
        ("1.0a", "1.0a0"),
        ("1.0rc", "1.0rc0"),
        ("1", "1.0.0"),
        ("1.0", "1.0.0"),
        ("2.0", "2"),
    ],
)
def test_equal_spellings(a: str, b: str) -> None:
    assert Version(a) == Version(b)  # the oracle agrees
    assert compare(a, b) == 0 and compare(b, a) == 0


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0.post", "1.0.post1"),
        ("1.0.dev", "1.0.dev5"),
        ("1.0.dev5", "1.0.dev6"),
        ("1.0a", "1.0a1"),
        ("1.0a1.dev", "1.0a1"),
        ("1.0a1", "1.0a1.post"),
        ("1.0.post.dev", "1.0.post"),
        ("1.0.0", "1.0.1"),
    ],
)
def test_pep440_edges_agree_with_packaging(older: str, newer: str) -> None:
    assert Version(older) < Version(newer)
    assert compare(older, newer) == -1 and compare(newer, older) == 1


def test_automatic_scheme_reads_semver_prereleases() -> None:
    assert compare("8.0.0-beta.9", "8.0.0-beta.10") == -1
    assert compare("8.0.0-alpha.1", "8.0.0") == -1
    assert is_prerelease("8.0.0-rc.1") and not is_prerelease("8.0.0")
    assert sorted_versions(["8.0.0", "8.0.0-rc.1", "8.0.0-beta.10", "8.0.0-beta.9"]) == [
        "8.0.0-beta.9",
        "8.0.0-beta.10",
        "8.0.0-rc.1",
        "8.0.0",
    ]


def test_explicit_schemes() -> None:
    assert compare("1.2.3", "1.2.4", "semver") == -1
    assert compare("1.2.3", "1.2.3+build.7", "semver") == 0
    assert version_key("1.2.3", "semver") == version_key("v1.2.3.0", "semver")
    assert sorted_versions(["2.0.0", "2.0.0-rc.1", "1.9.9"], "semver") == [
        "1.9.9",
        "2.0.0-rc.1",
        "2.0.0",
    ]
    with pytest.raises(ArgumentError, match="'1.0.0rc1' is not a SemVer version"):
        version_key("1.0.0rc1", "semver")
    with pytest.raises(ArgumentError, match="is not a SemVer version"):
        is_prerelease("1.0.0rc1", "semver")
    with pytest.raises(ArgumentError, match="'1.0.0-beta.x' is not a PEP 440 version"):
        version_key("1.0.0-beta.x", "pep440")
    with pytest.raises(ArgumentError, match="is not a PEP 440 version"):
        compare("1.0.0-beta.x", "1.0.0", "pep440")
    assert is_prerelease("2.0.0.dev1", "pep440") and not is_prerelease("2.0.post1", "pep440")


def test_semver_build_metadata_that_pep440_refuses_falls_back_to_semver() -> None:
    # "a..b" is valid SemVer build metadata but not a PEP 440 local label.
    assert version_key("1.0.0+a..b") == version_key("1.0.0", "semver")
    assert compare("1.0.0+a..b", "1.0.1") == -1


def test_sorted_versions_uses_the_scheme_given() -> None:
    # "1.0.0-1" is a SemVer prerelease but a PEP 440 post-release.
    assert sorted_versions(["1.0.0", "1.0.0-1"], "pep440") == ["1.0.0", "1.0.0-1"]
    assert sorted_versions(["1.0.0", "1.0.0-1"], "semver") == ["1.0.0-1", "1.0.0"]


# ------------------------------------------------------------------------------------------------
# The automatic choice of scheme: a text with "-" that is not SemVer is still read as PEP 440,
# and a "-" inside a local label or build metadata (after "+") does not make a release SemVer.


def test_a_pep440_post_release_spelled_with_a_dash_is_a_release_after_its_base() -> None:
    assert (compare("1.0.post-1", "1.0"), is_prerelease("1.0.post-1")) == (1, False)


def test_a_dash_after_the_plus_leaves_the_version_equal_to_its_release() -> None:
    assert (compare("1.0+local-1", "1.0"), compare("1.0", "1.0+local-1")) == (0, 0)


# ------------------------------------------------------------------------------------------------
# Keys of a SemVer prerelease and a PEP 440 prerelease of the same release always compare:
# PEP 440's parts (stage rank, number, post) count as numeric identifiers, so by SemVer's
# rule they sort before a word at the same place, and never meet a word as equals of another
# kind (a TypeError).


@pytest.mark.parametrize(
    ("pep440", "semver"),
    [
        ("1.0.0rc1", "1.0.0-rc.1"),  # the stage rank (a number) meets the word "rc"
        ("1.0.0rc1", "1.0.0-2.beta"),  # the prerelease number meets "beta"
        ("1.0.0rc1.post3", "1.0.0-2.1.beta"),  # the post number meets "beta"
    ],
)
def test_a_pep440_part_sorts_before_a_semver_word_in_its_place(pep440: str, semver: str) -> None:
    assert (compare(pep440, semver), compare(semver, pep440)) == (-1, 1)


def test_a_mixed_list_sorts_without_error() -> None:
    mixed = ["1.0.0-rc.1", "1.0.0-2.1.beta", "1.0.0rc1.post3", "1.0.0-2.beta", "1.0.0rc1"]
    assert sorted_versions(mixed) == [
        "1.0.0rc1",
        "1.0.0rc1.post3",
        "1.0.0-2.1.beta",
        "1.0.0-2.beta",
        "1.0.0-rc.1",
    ]
