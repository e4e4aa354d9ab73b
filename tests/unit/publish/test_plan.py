"""The content marker in a version's Description and the stand-in check, exactly: what
Lambda stores (at most 256 characters) and which extension a refusal names."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import ArtifactError, RegistryError
from layer_builder.model import BuildManifest, ExtensionInfo
from layer_builder.publish.plan import (
    LayerRecord,
    Marker,
    content_marker,
    document_layers,
    is_standin,
    marked_description,
    parse_marker,
    registry_records,
    release_marker,
    standin_source,
)
from layer_builder.publish.release import refuse_standin
from layer_builder.registry.files import RegistryState
from layer_builder.sandbox.standin import EXTENSIONS_ROOT, standin_digests

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
    from layer_builder.publish.zips import _check_marker
    from tests.helpers.publisher_fakes import make_plan

    _check_marker(make_plan(canonical="aws-layer:python"))
    for bad in ("aws layer", "aws-[layer]"):
        with pytest.raises(ArtifactError, match="cannot be named in the release marker"):
            _check_marker(make_plan(canonical=bad))



# ------------------------------------------------------------------------------------------------
# What the registry says before publishing: which version each region records, which
# versions are never deleted as duplicates, and the two refusals (another account, another
# zip) word for word. Unit guards of `registry_records` and `document_layers` on plain
# documents (the moto-server suites reach them only end to end).


ROOT = Path("/reg")
OWN = ROOT / "aws-layers" / "python" / "2.0.0.json"
OLD = ROOT / "aws-layers" / "python" / "1.0.0.json"


def _record_manifest(name: str, code_sha256: str) -> BuildManifest:
    return BuildManifest(
        layer_name=name, canonical="aws-layer:python", version="2.0.0",
        architectures=("x86_64",), layout="per-arch", compatible_runtimes=("python3.12",),
        description="d", license="MIT", zip_file=f"{name}.zip", sha256="a" * 64,
        code_sha256=code_sha256, zip_size=1, unzipped_size=1, file_count=1,
        sdk_name="sentry-sdk", sdk_version="2.0.0", extensions=(), source_date_epoch=315532800,
    )  # fmt: skip


def _regions(**versions: int) -> list[dict[str, Any]]:
    return [{"region": r.replace("_", "-"), "version": v} for r, v in versions.items()]


def _state(
    document: dict[str, Any] | None,
    others: dict[Path, dict[str, Any]] | None = None,
    unreadable: list[Path] | None = None,
) -> RegistryState:
    return RegistryState(ROOT, OWN, document, others or {}, unreadable or [])


LAYERS = [
    (Path("/out/A.zip.json"), _record_manifest("A", "shaA")),
    (Path("/out/B.zip.json"), _record_manifest("B", "shaB")),
]


def test_document_layers_reads_entries_and_the_top_level_layer() -> None:
    doc = {
        "layer_name": "Top",
        "regions": _regions(us_east_1=4),
        "layers": [
            {"layer_name": "A", "code_sha256": "s", "regions": _regions(eu_west_1=2)},
            "not a mapping",
            {"code_sha256": "no name"},
            {"layer_name": 7, "regions": None},
        ],
    }
    assert list(document_layers(doc)) == [
        ("A", "s", {"eu-west-1": 2}),
        ("7", None, {}),
        ("Top", None, {"us-east-1": 4}),
    ]


def test_a_top_level_layer_also_listed_in_layers_is_read_once() -> None:
    doc = {"layer_name": "A", "regions": _regions(us_east_1=9), "layers": [{"layer_name": "A"}]}
    assert list(document_layers(doc)) == [("A", None, {})]


def test_a_top_level_name_that_is_no_string_is_ignored() -> None:
    assert list(document_layers({"layer_name": 5, "regions": _regions(us_east_1=1)})) == []


def test_region_entries_that_do_not_parse_are_skipped() -> None:
    regions = [
        {"region": "eu-west-1", "version": "3"},
        {"region": "eu-west-2"},
        {"version": 4},
        {"region": "eu-west-3", "version": None},
        {"region": "eu-west-4", "version": "x"},
        "eu-north-1",
        {"region": "eu-south-1", "version": 6},  # after the bad ones: still read
    ]
    assert list(document_layers({"layer_name": "A", "regions": regions})) == [
        ("A", None, {"eu-west-1": 3, "eu-south-1": 6})
    ]


def test_records_name_the_recorded_versions_and_protect_every_documents_versions() -> None:
    own = {
        "account_number": "123456789012",
        "layers": [{"layer_name": "A", "code_sha256": "shaA", "regions": _regions(eu_west_1=5)}],
    }
    old = {"layer_name": "A", "regions": _regions(eu_west_1=2, us_east_1=3)}
    other_name = {"layers": [{"layer_name": "C", "regions": _regions(eu_west_1=8)}]}
    records = registry_records(_state(own, {OLD: old, ROOT / "c.json": other_name}), LAYERS)
    assert records == {
        "A": LayerRecord(
            "A",
            "shaA",
            {"eu-west-1": 5},
            {"eu-west-1": frozenset({2, 5}), "us-east-1": frozenset({3})},
            True,
            {"shaA": {"eu-west-1": 5}},  # craft's document records no zip: not a content
        ),
        "B": LayerRecord("B", None, {}, {}, True),
    }


def test_a_recorded_version_is_protected_and_others_are_not() -> None:
    own = {"layers": [{"layer_name": "A", "code_sha256": "shaA", "regions": _regions(eu_west_1=5)}]}
    record = registry_records(_state(own), LAYERS)["A"]
    assert [
        record.recorded("eu-west-1"),
        record.recorded("us-east-1"),
        record.is_protected("eu-west-1", 5),
        record.is_protected("eu-west-1", 6),
        record.is_protected("us-east-1", 5),
    ] == [5, None, True, False, False]


def test_an_unreadable_document_protects_every_version() -> None:
    record = registry_records(_state(None, unreadable=[OLD]), LAYERS)["A"]
    assert (record.deletes_allowed, record.is_protected("eu-west-1", 99)) == (False, True)


def test_a_release_not_yet_recorded_has_empty_records() -> None:
    assert registry_records(_state(None), LAYERS, account="123456789012") == {
        "A": LayerRecord("A"),
        "B": LayerRecord("B"),
    }


def test_the_recording_account_may_finish_its_release() -> None:
    own = {"account_number": 123456789012, "layers": []}
    assert registry_records(_state(own), LAYERS, account="123456789012")["A"] == LayerRecord("A")


def test_no_account_given_skips_the_account_check() -> None:
    own = {"account_number": "999999999999", "layers": []}
    assert registry_records(_state(own), LAYERS)["B"] == LayerRecord("B")


def test_another_accounts_release_is_refused() -> None:
    own = {"account_number": "999999999999", "layers": []}
    with pytest.raises(
        RegistryError,
        match=r"recorded for account 999999999999, these credentials are for 123456789012",
    ) as err:
        registry_records(_state(own), LAYERS, account="123456789012")
    assert str(err.value) == (
        f"{OWN}: recorded for account 999999999999, these credentials are for "
        "123456789012; use the account the release was published with"
    )


def test_a_rebuilt_zip_for_a_recorded_version_is_refused() -> None:
    own = {"layers": [{"layer_name": "B", "code_sha256": "old-sha", "regions": []}]}
    with pytest.raises(ArtifactError, match=r"is recorded with code_sha256 old-sha") as err:
        registry_records(_state(own), LAYERS)
    assert str(err.value) == (
        f"{OWN}: B 2.0.0 is recorded with code_sha256 old-sha, but /out/B.zip has shaB: a "
        "recorded version can only be finished with the same zip. Rebuild it identically "
        "(same SOURCE_DATE_EPOCH and dependency versions; compare the build manifests) or "
        "release a new version. Nothing was published."
    )


def test_a_craft_layer_this_release_does_not_publish_is_refused_before_publishing() -> None:
    # craft recorded "Old" at the top level without a zip digest; this run publishes only A
    # and B, so the registry write could not record "Old": refused before any AWS call.
    own = {"layer_name": "Old", "regions": _regions(us_east_1=4)}
    with pytest.raises(RegistryError, match="recorded without a code_sha256") as info:
        registry_records(_state(own), LAYERS)
    assert str(info.value) == (
        f"{OWN}: the layer Old is recorded without a code_sha256 (a document written by "
        "craft); publish Old in this run too, so its zip is recorded. Nothing was published."
    )


def test_a_craft_layer_this_release_publishes_again_is_finished() -> None:
    own = {"layer_name": "A", "regions": _regions(us_east_1=4)}
    records = registry_records(_state(own), LAYERS)
    assert records["A"] == LayerRecord(
        "A", None, {"us-east-1": 4}, {"us-east-1": frozenset({4})}, True
    )



# ------------------------------------------------------------------------------------------------
# The stand-in never reaches AWS by accident, whichever way it entered the zip.




def _file_ext(binary: Path, arch: str) -> ExtensionInfo:
    # What `build --extension-file ARCH=PATH` records: the path and "unknown", no label.
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    return ExtensionInfo("sentry-lambda-extension", "unknown", digest, str(binary), arch, "x")


def test_the_pinned_digests_are_the_shipped_binaries() -> None:
    shipped = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (EXTENSIONS_ROOT / "standin").glob("sentry-standin-*")
    }
    assert len(shipped) == 2 and standin_digests() == shipped


def test_a_standin_given_as_extension_file_is_recognised_by_its_digest(tmp_path: Path) -> None:
    copy = tmp_path / "my-relay"  # renamed: neither its name nor its label says stand-in
    copy.write_bytes((EXTENSIONS_ROOT / "standin" / "sentry-standin-aarch64").read_bytes())
    real = tmp_path / "relay"
    real.write_bytes(b"\x7fELF not the stand-in")
    mixed = _manifest(_file_ext(real, "x86_64"), _file_ext(copy, "arm64"))
    assert is_standin(mixed)
    assert not is_standin(_manifest(_file_ext(real, "x86_64")))

    with pytest.raises(
        ArtifactError,
        match=rf"^m\.json: the zip carries the sandbox stand-in extension \(from {copy}\), not",
    ):
        refuse_standin([(Path("m.json"), mixed)], allow=False)
    refuse_standin([(Path("m.json"), mixed)], allow=True)


def test_no_source_tree_means_no_digests(tmp_path: Path) -> None:
    assert standin_digests(tmp_path / "missing.yml") == frozenset()
