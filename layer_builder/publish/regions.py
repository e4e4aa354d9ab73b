"""Which account, partition and regions a publish goes to.

``all`` means the regions EC2 DescribeRegions reports as enabled for the account
(``opt-in-not-required`` or ``opted-in``), kept to the partition of the credentials: an
``aws`` key cannot publish to ``cn-*`` or ``us-gov-*`` regions even where an emulator lists
them. Explicit names are checked against the same list, so a typo fails before the build
with a did-you-mean rather than as a failed region after it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from layer_builder.aws.clients import Aws, AwsCallError, RegionInfo
from layer_builder.aws.facts import REGION_RE, partition_of_region
from layer_builder.errors import ArgumentError
from layer_builder.validate import did_you_mean

log = logging.getLogger(__name__)

ALL = "all"
_DENIED = ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException")


def check_credentials(aws: Aws | None = None) -> tuple[str, str]:
    """(account, partition) of the credentials, via STS GetCallerIdentity.

    Raises CredentialsError (exit 2) when there are none or AWS rejects them. Call it before
    a build so a release does not build for minutes and then fail on credentials.
    """
    identity = (aws or Aws()).identity()
    log.info("AWS account %s, partition %s", identity.account, identity.partition)
    return identity.account, identity.partition


def parse_regions_arg(text: str) -> tuple[str, ...] | None:
    """``--regions all|R1,R2`` -> None for all, else the names (whitespace and blanks dropped)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ArgumentError("--regions: give 'all' or a comma-separated list of regions")
    if ALL in names:
        if len(names) > 1:
            raise ArgumentError("--regions: 'all' cannot be combined with region names")
        return None
    return names


def resolve_regions(
    aws: Aws | None, requested: Sequence[str] | None, exclude: Sequence[str] = ()
) -> tuple[str, str, list[str]]:
    """(account, partition, sorted regions) to publish to.

    ``requested`` None (or ``("all",)``) means every enabled region of the partition minus
    ``exclude``; an explicit list is published as given (an explicit name wins over
    ``exclude``). Raises CredentialsError without usable credentials and ArgumentError for a
    region that is unknown, of another partition, or not enabled for the account.
    """
    aws = aws or Aws()
    account, partition = check_credentials(aws)
    want_all = requested is None or tuple(requested) == (ALL,)
    try:
        listed = aws.describe_regions(partition)
    except AwsCallError as exc:
        if exc.code not in _DENIED:
            raise
        if want_all:
            raise ArgumentError(
                f"regions 'all': these credentials may not list regions ({exc.code} on "
                "ec2:DescribeRegions); allow that action or name the regions explicitly"
            ) from None
        # A release role without ec2:DescribeRegions can still publish to named regions.
        log.warning("cannot list regions (%s); checking the names' form only", exc.code)
        return account, partition, _unchecked(requested or (), partition)
    known = [r for r in listed if partition_of_region(r.name) == partition]
    by_name = {r.name: r for r in known}
    enabled = sorted(r.name for r in known if r.enabled)
    if not enabled:
        raise ArgumentError(
            f"no enabled regions found for account {account} in partition {partition}"
        )

    for name in exclude:
        # Exclusions for other partitions are fine (a config shared across partitions);
        # a misspelt one in ours would silently publish where it was meant not to.
        if partition_of_region(name) == partition and name not in by_name:
            raise ArgumentError(
                f"exclude_regions: unknown region {name!r}" + did_you_mean(name, by_name)
            )

    if want_all:
        regions = [r for r in enabled if r not in set(exclude)]
        skipped = sorted(set(enabled) & set(exclude))
        if skipped:
            log.info("excluding regions: %s", ", ".join(skipped))
        if not regions:
            raise ArgumentError("every enabled region is excluded: nothing to publish to")
        return account, partition, regions

    out: list[str] = []
    for name in requested or ():
        _check_region(name, partition, account, by_name)
        if name not in out:
            out.append(name)
    if not out:
        raise ArgumentError("--regions: no regions given")
    return account, partition, sorted(out)


def resolve_target(
    requested: Sequence[str] | None, exclude: Sequence[str] = (), aws: Aws | None = None
) -> tuple[str, str, list[str]]:
    """:func:`resolve_regions` with the default session: (account, partition, regions)."""
    return resolve_regions(aws, requested, exclude)


def _unchecked(requested: Sequence[str], partition: str) -> list[str]:
    for name in requested:
        if not REGION_RE.match(name):
            raise ArgumentError(f"--regions: {name!r} is not a region name")
        other = partition_of_region(name)
        if other != partition:
            raise ArgumentError(
                f"--regions: {name} belongs to partition {other}; these credentials are for "
                f"{partition}"
            )
    return sorted(set(requested))


def _check_region(name: str, partition: str, account: str, by_name: dict[str, RegionInfo]) -> None:
    info = by_name.get(name)
    if info is not None and info.enabled:
        return
    if info is not None:
        raise ArgumentError(
            f"--regions: {name} is not enabled for account {account} ({info.opt_in_status}); "
            "enable it in the AWS console or leave it out"
        )
    other = partition_of_region(name)
    if other != partition:
        raise ArgumentError(
            f"--regions: {name} belongs to partition {other}; these credentials are for "
            f"{partition} (publishing there needs that partition's own credentials)"
        )
    raise ArgumentError(f"--regions: unknown region {name!r}" + did_you_mean(name, by_name))
