"""Which versions hold a zip, and which calls finding them costs: `list_history` and
`find_holders` against a recorded fake of Lambda's ListLayerVersions / GetLayerVersion
(the moto-server suites reach it only end to end). The whole history is listed, page by
page: the lowest holder may be on any page."""

from __future__ import annotations

from layer_builder.aws.clients import LayerVersionRef
from layer_builder.aws.policy import Statement
from layer_builder.publish.reconcile import (
    Holders,
    PermissionChanges,
    find_holders,
    list_history,
    owned,
    permission_changes,
)
from tests.helpers.publisher_fakes import METADATA, FakeLambda, make_plan

SHA = "Zm9vYmFyMTIzNDU2Nzg5MA=="  # CodeSha256 of the zip being published
OTHER = "b3RoZXIgemlwIGNvbnRlbnQ="
MARK = "[sha256:0123456789ab]"
FOREIGN = "[sha256:ba9876543210]"  # another zip's marker
PLAN = make_plan(layer_name="L", sha256="0123456789ab" + "0" * 52, code_sha256=SHA)


def arn(version: int) -> str:
    return f"arn:aws:lambda:eu-west-1:123456789012:layer:L:{version}"


def ref(
    version: int, description: str = "", metadata: tuple[object, ...] = METADATA
) -> LayerVersionRef:
    runtimes, archs, license_info = metadata
    return LayerVersionRef(version, arn(version), description, runtimes, archs, license_info)  # type: ignore[arg-type]


def run(api: FakeLambda, recorded: int | None) -> tuple[Holders, list[str]]:
    checked: list[str] = []
    listing = list_history(api, "L", checked.append)  # type: ignore[arg-type]
    holders = find_holders(
        api,  # type: ignore[arg-type]
        listing,
        PLAN,
        recorded=recorded,
        check=checked.append,
    )
    return holders, checked


def test_a_recorded_version_carrying_the_marker_is_trusted_without_a_get() -> None:
    api = FakeLambda.scripted([[ref(7, f"x {FOREIGN}"), ref(5, f"d {MARK}"), ref(4, "old")]])
    holders, checked = run(api, recorded=5)
    assert (holders, checked, api.calls) == (
        Holders((ref(5, f"d {MARK}"),), frozenset({5})),
        ["ListLayerVersions"],
        [("list", None)],
    )


def test_a_recorded_version_listed_without_the_marker_is_read_and_kept_when_it_matches() -> None:
    api = FakeLambda.scripted([[ref(6, f"n {FOREIGN}"), ref(5, "before markers")]], {5: SHA})
    holders, checked = run(api, recorded=5)
    assert (holders, checked, api.calls) == (
        Holders((ref(5, "before markers"),), frozenset({5})),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", None), ("get", 5)],
    )


def test_a_recorded_version_listed_without_the_marker_and_other_content_is_no_holder() -> None:
    api = FakeLambda.scripted([[ref(6, f"n {FOREIGN}"), ref(5, "before markers")]], {5: OTHER})
    holders, checked = run(api, recorded=5)
    assert (holders, checked, api.calls) == (
        Holders((), frozenset()),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", None), ("get", 5)],
    )


def test_a_recorded_version_older_than_the_first_page_is_listed_then_read() -> None:
    api = FakeLambda.scripted([[ref(9, f"n {FOREIGN}")], [ref(3, "old")]], {3: SHA})
    holders, checked = run(api, recorded=3)
    assert (holders, checked, api.calls) == (
        Holders((ref(3, "old"),), frozenset({3})),
        ["ListLayerVersions", "ListLayerVersions", "GetLayerVersion"],
        [("list", None), ("list", "p1"), ("get", 3)],
    )


def test_a_recorded_version_gone_from_a_complete_listing_costs_no_get() -> None:
    api = FakeLambda.scripted([[ref(9, f"n {FOREIGN}"), ref(8, f"m {FOREIGN}")]], {3: SHA})
    holders, checked = run(api, recorded=3)
    assert (holders, checked, api.calls) == (
        Holders((), frozenset()),
        ["ListLayerVersions"],
        [("list", None)],
    )


def test_an_unmarked_newest_version_is_read_when_nothing_else_holds_the_zip() -> None:
    api = FakeLambda.scripted(
        [[ref(4, "published before markers"), ref(3, f"x {FOREIGN}")]], {4: SHA}
    )
    holders, checked = run(api, recorded=None)
    assert (holders, checked, api.calls) == (
        Holders((ref(4, "published before markers"),), frozenset({4})),
        ["ListLayerVersions", "GetLayerVersion"],
        [("list", None), ("get", 4)],
    )


def test_an_unmarked_newest_version_with_other_content_is_no_holder() -> None:
    api = FakeLambda.scripted([[ref(4, "published before markers")]], {4: OTHER})
    holders, _ = run(api, recorded=None)
    assert holders == Holders((), frozenset())


def test_a_newest_version_with_another_marker_is_not_read() -> None:
    api = FakeLambda.scripted([[ref(4, f"y {FOREIGN}")]], {4: SHA})
    holders, checked = run(api, recorded=None)
    assert (holders, checked, api.calls) == (
        Holders((), frozenset()),
        ["ListLayerVersions"],
        [("list", None)],
    )


def test_an_empty_history_has_no_holder_and_no_winner() -> None:
    api = FakeLambda.scripted([[]])
    holders, checked = run(api, recorded=None)
    assert (holders.winner, holders, checked) == (
        None,
        Holders((), frozenset()),
        ["ListLayerVersions"],
    )


def test_every_page_is_read_and_the_lowest_holder_wins_wherever_it_is() -> None:
    api = FakeLambda.scripted(
        [
            [ref(9, f"a {FOREIGN}"), ref(8, f"late duplicate {MARK}")],
            [ref(7, f"b {FOREIGN}")],
            [ref(6, f"d {MARK}")],
            [ref(2, f"e {MARK}")],
        ]
    )
    holders, checked = run(api, recorded=None)
    # A marked version on the first page does not stop the listing: the true lowest holder
    # is on the last page. Markers alone are not verified.
    assert (holders.winner, holders, checked, api.calls) == (
        ref(2, f"e {MARK}"),
        Holders((ref(2, f"e {MARK}"), ref(6, f"d {MARK}"), ref(8, f"late duplicate {MARK}")),
                frozenset()),
        ["ListLayerVersions"] * 4,
        [("list", None), ("list", "p1"), ("list", "p2"), ("list", "p3")],
    )  # fmt: skip


def test_a_page_boundary_shifted_by_a_publish_lists_a_version_once() -> None:
    api = FakeLambda.scripted(
        [[ref(5, f"a {MARK}"), ref(4, "x")], [ref(4, "x"), ref(3, f"b {MARK}")]]
    )
    listing = list_history(api, "L", lambda _: None)  # type: ignore[arg-type]
    assert [r.version for r in listing] == [5, 4, 3]


def test_a_version_with_the_zip_and_other_metadata_is_no_holder_but_is_named() -> None:
    hand = ref(5, "published by hand", (("python3.8",), ("x86_64",), ""))
    marked_other = ref(4, f"other runtimes {MARK}", (("python3.12",), ("x86_64",), "MIT"))
    api = FakeLambda.scripted([[hand, marked_other, ref(3, f"ours {MARK}")]], {5: SHA})
    holders, _ = run(api, recorded=None)
    assert holders == Holders((ref(3, f"ours {MARK}"),), frozenset(), (marked_other,))
    # Nothing else holds it: the unmarked newest is read, and still not adopted.
    api = FakeLambda.scripted([[hand]], {5: SHA})
    holders, checked = run(api, recorded=None)
    assert (holders.winner, holders.other_metadata, checked) == (
        None, (hand,), ["ListLayerVersions", "GetLayerVersion"]
    )  # fmt: skip


def test_every_marked_version_of_the_first_page_is_a_holder_lowest_first() -> None:
    api = FakeLambda.scripted(
        [[ref(12, f"c {MARK}"), ref(11, "other"), ref(10, f"a {MARK}")], [ref(1)]]
    )
    holders, _ = run(api, recorded=None)
    assert (holders.winner, holders) == (
        ref(10, f"a {MARK}"),
        Holders((ref(10, f"a {MARK}"), ref(12, f"c {MARK}")), frozenset()),
    )


def test_a_recorded_match_and_marked_versions_are_holders_together() -> None:
    api = FakeLambda.scripted([[ref(8, f"c {MARK}"), ref(6, "no marker")]], {6: SHA})
    holders, _ = run(api, recorded=6)
    assert holders == Holders((ref(6, "no marker"), ref(8, f"c {MARK}")), frozenset({6}))


def test_the_only_version_of_a_layer_is_read_when_it_carries_no_marker() -> None:
    api = FakeLambda.scripted([[ref(1, "published before markers")]], {1: SHA})
    holders, _ = run(api, recorded=None)
    assert holders == Holders((ref(1, "published before markers"),), frozenset({1}))


# ------------------------------------------------------------------------------------------------
# Which permission statements publishing removes and adds on a version, and how the plan
# prints them (`--dry-run` shows `describe()`): unit guards of `permission_changes` and
# `owned`, which only the moto-server suites reached before.


ORG = "o-abc123def4"
PUBLIC = Statement("public")
ORG_ONLY = Statement("sentry-org", "*", ORG)


def test_statement_ids_this_tool_writes() -> None:
    acct = "210987654321"
    ids = ["public", f"public-{acct}", "public-partner", "public-2", "sentry-org",
           f"sentry-org-{acct}", "sentry-org-7", f"sentry-org-{acct}0", "publicity",
           "sentry-orgs", "sentry", "xpublic", "other-public"]  # fmt: skip
    # Exactly the configured id and <id>-<account>; "public" only on a version we published.
    assert [i for i in ids if owned(i, "sentry-org")] == ["sentry-org", f"sentry-org-{acct}"]
    assert [i for i in ids if owned(i, "sentry-org", public_is_ours=True)] == [
        "public", f"public-{acct}", "sentry-org", f"sentry-org-{acct}"
    ]  # fmt: skip
    assert [i for i in ids if owned(i, "public")] == ["public", f"public-{acct}"]


def test_a_partner_statement_named_like_ours_is_left_alone() -> None:
    partner = Statement("public-partner", "210987654321")
    changes = permission_changes([PUBLIC, partner], [PUBLIC], "public", public_is_ours=True)
    assert changes == PermissionChanges((), ())


def test_a_policy_that_already_grants_what_is_wanted_changes_nothing() -> None:
    changes = permission_changes([Statement("anything", "*")], [PUBLIC], "public")
    assert (changes, changes.empty, changes.describe()) == (PermissionChanges((), ()), True, [])


def test_a_missing_grant_is_added() -> None:
    changes = permission_changes([], [PUBLIC], "public")
    assert (changes, changes.empty, changes.describe()) == (
        PermissionChanges((), (PUBLIC,)),
        False,
        ["add permission public (*)"],
    )


def test_a_public_grant_of_ours_is_replaced_by_an_organization_only_one() -> None:
    present = [Statement("public"), Statement("someone-else", "111111111111")]
    changes = permission_changes(present, [ORG_ONLY], "sentry-org", public_is_ours=True)
    assert (changes, changes.empty, changes.describe()) == (
        PermissionChanges(("public",), (ORG_ONLY,)),
        False,
        ["remove permission public", f"add permission sentry-org (* in {ORG})"],
    )


def test_an_organization_grant_of_ours_is_removed_when_the_config_goes_public() -> None:
    present = [Statement("sentry-org-222222222222", "*", ORG)]
    changes = permission_changes(present, [PUBLIC], "sentry-org")
    assert changes.describe() == [
        "remove permission sentry-org-222222222222", "add permission public (*)"
    ]  # fmt: skip


def test_a_removal_alone_is_a_change() -> None:
    changes = permission_changes([Statement("x-222222222222", "222222222222")], [], "x")
    assert (changes, changes.empty) == (PermissionChanges(("x-222222222222",), ()), False)


def test_statements_of_others_are_left_alone() -> None:
    present = [Statement("audit", "222222222222"), Statement("sentry-orgx", "*", ORG)]
    changes = permission_changes(present, [PUBLIC], "sentry-org")
    assert changes == PermissionChanges((), (PUBLIC,))


def test_a_foreign_statement_holding_our_id_is_replaced_once() -> None:
    # Two wanted statements share the id that someone else's statement holds: the id is
    # removed once, both are added.
    present = [Statement("grant", "222222222222")]
    wanted = [Statement("grant", "*"), Statement("grant", "333333333333")]
    changes = permission_changes(present, wanted, "lb")
    assert changes == PermissionChanges(("grant",), tuple(wanted))


def test_a_wanted_id_freed_by_a_removal_is_not_removed_twice() -> None:
    present = [Statement("public", "222222222222")]
    changes = permission_changes(present, [PUBLIC], "lb")
    assert changes == PermissionChanges(("public",), (PUBLIC,))


def test_grants_are_compared_by_action_too() -> None:
    present = [Statement("public", "*", None, "lambda:ListLayerVersions")]
    changes = permission_changes(present, [PUBLIC], "public")
    assert changes == PermissionChanges(("public",), (PUBLIC,))


def test_a_grant_already_present_does_not_stop_the_next_one_being_added() -> None:
    account = Statement("public-acct", "123456789012")
    changes = permission_changes([Statement("public")], [PUBLIC, account], "public")
    assert changes == PermissionChanges((), (account,))
