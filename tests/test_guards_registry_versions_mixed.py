"""Keys of a SemVer prerelease and a PEP 440 prerelease of the same release always compare:
PEP 440's parts (stage rank, number, post) count as numeric identifiers, so by SemVer's
rule they sort before a word at the same place, and never meet a word as equals of another
kind (a TypeError). Mutation testing found this unpinned; see docs/mutation-testing.md."""

from __future__ import annotations

import pytest

from layer_builder.versions import compare, sorted_versions


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
