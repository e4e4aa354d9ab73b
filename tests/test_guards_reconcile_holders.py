"""Which versions hold a zip, and which calls finding them costs: `find_holders` against a
recorded fake of Lambda's ListLayerVersions / GetLayerVersion (mutants of its branches passed
the fast tests; the moto-server suites reach it only end to end)."""

from __future__ import annotations

from dataclasses import dataclass, field

from layer_builder.aws.clients import LayerVersionRef
from layer_builder.publish.reconcile import Holders, find_holders

SHA = "Zm9vYmFyMTIzNDU2Nzg5MA=="  # CodeSha256 of the zip being published
OTHER = "b3RoZXIgemlwIGNvbnRlbnQ="
MARK = "[sha256:0123456789ab]"
FOREIGN = "[sha256:ba9876543210]"  # another zip's marker


def arn(version: int) -> str:
    return f"arn:aws:lambda:eu-west-1:123456789012:layer:L:{version}"


def ref(version: int, description: str = "") -> LayerVersionRef:
    return LayerVersionRef(version, arn(version), description)


@dataclass
class FakeLambda:
    """Pages of versions (newest first) and each version's CodeSha256; records every call."""

    pages: list[list[LayerVersionRef]]
    shas: dict[int, str] = field(default_factory=dict)
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def list_versions(
        self, name: str, marker: str | None = None
    ) -> tuple[list[LayerVersionRef], str | None]:
        self.calls.append(("list", name, marker))
        index = int(marker[1:]) if marker else 0
        following = f"p{index + 1}" if index + 1 < len(self.pages) else None
        return list(self.pages[index]), following

    def code_sha256(self, name: str, version: int) -> str | None:
        self.calls.append(("get", name, version))
        return self.shas.get(version)


def run(api: FakeLambda, recorded: int | None) -> tuple[Holders, list[str]]:
    checked: list[str] = []
    holders = find_holders(
        api,  # type: ignore[arg-type]
        "L",
        marker=MARK,
        code_sha256=SHA,
        recorded=recorded,
        arn_of=arn,
        check=checked.append,
    )
    return holders, checked


def test_a_recorded_version_carrying_the_marker_is_trusted_without_a_get() -> None:
    api = FakeLambda([[ref(7, f"x {FOREIGN}"), ref(5, f"d {MARK}"), ref(4, "old")]])
    holders, checked = run(api, recorded=5)
    assert (holders, checked, api.calls) == (
        Holders((ref(5, f"d {MARK}"),), frozenset({5})),
        ["ListLayerVersions"],
        [("list", "L", None)],
    )


def test_a_recorded_version_listed_without_the_marker_is_read_and_kept_when_it_matches() -> None:
    api = FakeLambda([[ref(6, f"n {FOREIGN}"), ref(5, "before markers")]], {5: SHA})
    holders, checked = run(api, recorded=5)
    assert (holders, checked, api.calls) == (
        Holders((ref(5, "before markers"),), frozenset({5})),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", "L", None), ("get", "L", 5)],
    )


def test_a_recorded_version_listed_without_the_marker_and_other_content_is_no_holder() -> None:
    api = FakeLambda([[ref(6, f"n {FOREIGN}"), ref(5, "before markers")]], {5: OTHER})
    holders, checked = run(api, recorded=5)
    assert (holders, checked, api.calls) == (
        Holders((), frozenset()),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", "L", None), ("get", "L", 5)],
    )


def test_a_recorded_version_older_than_the_first_page_is_read_by_number() -> None:
    api = FakeLambda([[ref(9, f"n {FOREIGN}")], [ref(3, "old")]], {3: SHA})
    holders, checked = run(api, recorded=3)
    # Found by GetLayerVersion: its ARN comes from arn_of, no older page is listed.
    assert (holders, checked, api.calls) == (
        Holders((LayerVersionRef(3, arn(3)),), frozenset({3})),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", "L", None), ("get", "L", 3)],
    )


def test_a_recorded_version_gone_from_a_complete_listing_costs_no_get() -> None:
    api = FakeLambda([[ref(9, f"n {FOREIGN}"), ref(8, f"m {FOREIGN}")]], {3: SHA})
    holders, checked = run(api, recorded=3)
    assert (holders, checked, api.calls) == (
        Holders((), frozenset()),
        ["ListLayerVersions"],
        [("list", "L", None)],
    )


def test_an_unmarked_newest_version_is_read_when_nothing_else_holds_the_zip() -> None:
    api = FakeLambda([[ref(4, "published before markers"), ref(3, f"x {FOREIGN}")]], {4: SHA})
    holders, checked = run(api, recorded=None)
    assert (holders, checked, api.calls) == (
        Holders((ref(4, "published before markers"),), frozenset({4})),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", "L", None), ("get", "L", 4)],
    )


def test_an_unmarked_newest_version_with_other_content_is_no_holder() -> None:
    api = FakeLambda([[ref(4, "published before markers")]], {4: OTHER})
    holders, _ = run(api, recorded=None)
    assert holders == Holders((), frozenset())


def test_a_newest_version_with_another_marker_is_not_read() -> None:
    api = FakeLambda([[ref(4, f"y {FOREIGN}")]], {4: SHA})
    holders, checked = run(api, recorded=None)
    assert (holders, checked, api.calls) == (
        Holders((), frozenset()),
        ["ListLayerVersions"],
        [("list", "L", None)],
    )


def test_an_empty_history_has_no_holder_and_no_winner() -> None:
    api = FakeLambda([[]])
    holders, checked = run(api, recorded=None)
    assert (holders.winner, holders, checked) == (
        None,
        Holders((), frozenset()),
        ["ListLayerVersions"],
    )


def test_older_pages_are_read_until_a_marked_version_is_found() -> None:
    api = FakeLambda(
        [
            [ref(9, f"a {FOREIGN}")],
            [ref(8, f"b {FOREIGN}")],
            [ref(7, f"c {MARK}"), ref(6, f"d {MARK}")],
            [ref(2, f"e {MARK}")],
        ]
    )
    holders, checked = run(api, recorded=None)
    # Found on the third page: the fourth is never listed; markers alone are not verified.
    assert (holders, checked, api.calls) == (
        Holders((ref(6, f"d {MARK}"), ref(7, f"c {MARK}")), frozenset()),
        ["ListLayerVersions"] * 3,
        [("list", "L", None), ("list", "L", "p1"), ("list", "L", "p2")],
    )


def test_every_marked_version_of_the_first_page_is_a_holder_lowest_first() -> None:
    api = FakeLambda([[ref(12, f"c {MARK}"), ref(11, "other"), ref(10, f"a {MARK}")], [ref(1)]])
    holders, _ = run(api, recorded=None)
    assert (holders.winner, holders) == (
        ref(10, f"a {MARK}"),
        Holders((ref(10, f"a {MARK}"), ref(12, f"c {MARK}")), frozenset()),
    )


def test_a_recorded_match_and_marked_versions_are_holders_together() -> None:
    api = FakeLambda([[ref(8, f"c {MARK}"), ref(6, "no marker")]], {6: SHA})
    holders, _ = run(api, recorded=6)
    assert holders == Holders((ref(6, "no marker"), ref(8, f"c {MARK}")), frozenset({6}))


def test_the_only_version_of_a_layer_is_read_when_it_carries_no_marker() -> None:
    api = FakeLambda([[ref(1, "published before markers")]], {1: SHA})
    holders, _ = run(api, recorded=None)
    assert holders == Holders((ref(1, "published before markers"),), frozenset({1}))
