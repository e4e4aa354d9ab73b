"""What the registry says before publishing: which version each region records, which
versions are never deleted as duplicates, and the two refusals (another account, another
zip) word for word. Unit guards of `registry_records` and `document_layers` on plain
documents (the moto-server suites reach them only end to end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import ArtifactError, RegistryError
from layer_builder.model import BuildManifest
from layer_builder.publish.records import LayerRecord, document_layers, registry_records
from layer_builder.registry.files import RegistryState

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
