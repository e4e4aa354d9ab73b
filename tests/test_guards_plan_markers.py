"""The content marker in a version's Description and the stand-in check, exactly: what
Lambda stores (at most 256 characters) and which extension a refusal names."""

from __future__ import annotations

from layer_builder.model import BuildManifest, ExtensionInfo
from layer_builder.publish.plan import (
    content_marker,
    is_standin,
    marked_description,
    standin_source,
)
from layer_builder.sandbox.standin import standin_digests

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


def _manifest(*extensions: ExtensionInfo) -> BuildManifest:
    return BuildManifest(
        layer_name="L", canonical="aws-layer:python", version="1.0.0",
        architectures=("x86_64", "arm64"), layout="universal", compatible_runtimes=("python3.12",),
        description="d", license="MIT", zip_file="l.zip", sha256="a" * 64, code_sha256="x",
        zip_size=1, unzipped_size=1, file_count=1, sdk_name="sentry-sdk", sdk_version="1.0.0",
        extensions=extensions, source_date_epoch=315532800,
    )  # fmt: skip


def test_a_real_extension_is_no_standin() -> None:
    m = _manifest(_ext("https://downloads.example/relay"), _ext("/opt/relay-arm"))
    assert (standin_source(m), is_standin(m)) == (None, False)


def test_a_manifest_without_extensions_is_no_standin() -> None:
    assert (standin_source(_manifest()), is_standin(_manifest())) == (None, False)


def test_the_stand_in_label_is_found_in_any_case() -> None:
    m = _manifest(_ext("https://downloads.example/relay"), _ext("SANDBOX STAND-IN (not Relay)"))
    assert (standin_source(m), is_standin(m)) == ("SANDBOX STAND-IN (not Relay)", True)


def test_a_standin_version_names_its_source() -> None:
    m = _manifest(
        _ext("https://downloads.example/relay"), _ext("http://127.0.0.1:8/x", "0.1-StandIn")
    )
    assert standin_source(m) == "http://127.0.0.1:8/x"


def test_a_standin_digest_names_its_source() -> None:
    digest = sorted(standin_digests())[0]
    m = _manifest(_ext("https://downloads.example/relay"), _ext("/tmp/my-relay", "unknown", digest))
    assert standin_source(m) == "/tmp/my-relay"


def test_the_first_standin_extension_is_named() -> None:
    digest = sorted(standin_digests())[0]
    m = _manifest(_ext("/tmp/first", "unknown", digest), _ext("sandbox stand-in"))
    assert standin_source(m) == "/tmp/first"
