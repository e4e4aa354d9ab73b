"""Version order at its edges: implicit numbers of PEP 440 (``.post`` = ``.post0``, ``.dev`` =
``.dev0``, ``a`` = ``a0``), trailing zeros, explicit schemes refusing the other spelling,
and the automatic choice for SemVer prereleases (mutation testing found these unpinned; see
docs/mutation-testing.md). packaging's Version is the oracle for PEP 440."""

from __future__ import annotations

import pytest
from packaging.version import Version

from layer_builder.errors import ArgumentError
from layer_builder.versions import compare, is_prerelease, sorted_versions, version_key


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
