"""The automatic choice of scheme: a text with "-" that is not SemVer is still read as PEP 440,
and a "-" inside a local label or build metadata (after "+") does not make a release SemVer
(mutation testing found both unpinned; see docs/mutation-testing.md)."""

from __future__ import annotations

from layer_builder.versions import compare, is_prerelease


def test_a_pep440_post_release_spelled_with_a_dash_is_a_release_after_its_base() -> None:
    assert (compare("1.0.post-1", "1.0"), is_prerelease("1.0.post-1")) == (1, False)


def test_a_dash_after_the_plus_leaves_the_version_equal_to_its_release() -> None:
    assert (compare("1.0+local-1", "1.0"), compare("1.0", "1.0+local-1")) == (0, 0)
