"""Which permission statements publishing removes and adds on a version, and how the plan
prints them (`--dry-run` shows `describe()`): unit guards of `permission_changes` and
`owned`, which only the moto-server suites reached before."""

from __future__ import annotations

from layer_builder.aws.policy import Statement
from layer_builder.publish.reconcile import PermissionChanges, owned, permission_changes

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
