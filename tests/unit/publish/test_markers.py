"""The content marker in a version's Description and the stand-in check, exactly: what
Lambda stores (at most 256 characters) and which extension a refusal names."""

from __future__ import annotations

import pytest

from layer_builder.model import ExtensionInfo
from layer_builder.publish.markers import (
    Marker,
    content_marker,
    marked_description,
    parse_marker,
    release_marker,
)
from layer_builder.publish.plan import is_standin, standin_source
from layer_builder.sandbox.standin import standin_digests
from tests.helpers.layers import universal_manifest

SHA = "0123456789abcdef" * 4
MARK = "[sha256:0123456789ab]"  # 21 characters: 234 are left for the text and a space


def test_the_marker_names_the_first_twelve_hex_digits() -> None:
    assert content_marker(SHA) == MARK


def test_a_short_description_keeps_its_text_and_gains_the_marker() -> None:
    assert marked_description("Sentry SDK 2.0", SHA) == f"Sentry SDK 2.0 {MARK}"


def test_an_empty_description_is_the_marker_alone() -> None:
    assert marked_description("", SHA) == MARK


def test_a_description_that_just_fits_is_kept_whole() -> None:
    text = "a" * 233 + "z"
    out = marked_description(text, SHA)
    assert (out, len(out)) == (f"{text} {MARK}", 256)


def test_a_description_one_character_too_long_is_cut_with_an_ellipsis() -> None:
    text = "a" * 230 + "wxyz5"
    out = marked_description(text, SHA)
    assert (out, len(out)) == ("a" * 230 + "w... " + MARK, 256)


def _ext(source: str, version: str = "1.2.3", sha256: str = "f" * 64) -> ExtensionInfo:
    return ExtensionInfo("sentry-lambda-extension", version, sha256, source, "x86_64", "x")


def test_a_real_extension_is_no_standin() -> None:
    m = universal_manifest(_ext("https://downloads.example/relay"), _ext("/opt/relay-arm"))
    assert (standin_source(m), is_standin(m)) == (None, False)


def test_a_manifest_without_extensions_is_no_standin() -> None:
    assert (standin_source(universal_manifest()), is_standin(universal_manifest())) == (None, False)


def test_the_stand_in_label_is_found_in_any_case() -> None:
    m = universal_manifest(
        _ext("https://downloads.example/relay"), _ext("SANDBOX STAND-IN (not Relay)")
    )
    assert (standin_source(m), is_standin(m)) == ("SANDBOX STAND-IN (not Relay)", True)


def test_a_standin_version_names_its_source() -> None:
    m = universal_manifest(
        _ext("https://downloads.example/relay"), _ext("http://127.0.0.1:8/x", "0.1-StandIn")
    )
    assert standin_source(m) == "http://127.0.0.1:8/x"


def test_a_standin_digest_names_its_source() -> None:
    digest = sorted(standin_digests())[0]
    m = universal_manifest(
        _ext("https://downloads.example/relay"), _ext("/tmp/my-relay", "unknown", digest)
    )
    assert standin_source(m) == "/tmp/my-relay"


def test_the_first_standin_extension_is_named() -> None:
    digest = sorted(standin_digests())[0]
    m = universal_manifest(_ext("/tmp/first", "unknown", digest), _ext("sandbox stand-in"))
    assert standin_source(m) == "/tmp/first"


RELEASE_MARK = f"[aws-layer:python 2.75.0 sha256:{SHA}]"


def test_the_release_marker_names_layer_version_and_the_whole_digest() -> None:
    assert release_marker("aws-layer:python", "2.75.0", SHA) == RELEASE_MARK
    out = marked_description("a" * 300, SHA, "aws-layer:python", "2.75.0")
    assert (len(out), out.endswith(f"... {RELEASE_MARK}")) == (256, True)


def test_markers_read_back_from_the_end_of_a_description() -> None:
    assert parse_marker(f"Sentry SDK {RELEASE_MARK}") == Marker(SHA, "aws-layer:python", "2.75.0")
    assert parse_marker(f"old {MARK}") == Marker("0123456789ab")
    assert parse_marker(f"{RELEASE_MARK} then text") is None  # only at the end
    assert parse_marker("uploaded from the console") is None
    assert parse_marker("") is None


def test_a_marker_holds_its_zip_and_claims_its_release_exactly() -> None:
    full, legacy = Marker(SHA, "aws-layer:python", "2.75.0"), Marker("0123456789ab")
    assert (full.holds(SHA), full.holds(SHA[:-1] + "0"), full.holds(SHA[:12])) == (
        True, False, False
    )  # fmt: skip
    assert (legacy.holds(SHA), legacy.holds("f" + SHA[1:])) == (True, False)
    assert full.claims("aws-layer:python", "2.75.0")
    assert not full.claims("aws-layer:python", "2.75.1")
    assert not full.claims("aws-layer:node", "2.75.0")
    assert not legacy.claims("aws-layer:python", "2.75.0")  # content only: no conflict


def test_a_canonical_the_marker_cannot_carry_is_refused_before_publishing() -> None:
    from layer_builder.errors import ArtifactError
    from layer_builder.publish.plan import _check_marker
    from tests.helpers.publisher_fakes import make_plan

    _check_marker(make_plan(canonical="aws-layer:python"))
    for bad in ("aws layer", "aws-[layer]"):
        with pytest.raises(ArtifactError, match="cannot be named in the release marker"):
            _check_marker(make_plan(canonical=bad))
