"""Where and how a release publishes: the :class:`PublishTarget` the credentials resolve to
and the :class:`PublishOptions` (the config's ``publish`` section with the overrides)."""

from __future__ import annotations

from dataclasses import dataclass

from layer_builder.config import LayerConfig
from layer_builder.errors import ArgumentError, ConfigError


@dataclass(frozen=True)
class PublishTarget:
    """Where a release goes: the credentials' account, their partition, its regions."""

    account: str
    partition: str
    regions: tuple[str, ...]


@dataclass(frozen=True)
class PublishOptions:
    """The publishing knobs of one release: the config's ``publish`` section with the
    command line's overrides applied, resolved once (:meth:`resolve`)."""

    max_workers: int
    region_timeout: float
    attempts: int

    @classmethod
    def resolve(
        cls,
        cfg: LayerConfig,
        *,
        workers: int | None = None,
        region_timeout: float | None = None,
        attempts: int | None = None,
    ) -> PublishOptions:
        timeout = float(cfg.publish.region_timeout if region_timeout is None else region_timeout)
        n_attempts = attempts if attempts is not None else cfg.publish.attempts
        if timeout <= 0 or n_attempts < 1:
            raise ArgumentError("region_timeout must be > 0 and attempts >= 1")
        return cls(
            max_workers=workers if workers is not None else cfg.publish.max_workers,
            region_timeout=timeout,
            attempts=n_attempts,
        )


def resolve_publish_target(cfg: LayerConfig, regions_arg: str | None) -> PublishTarget:
    """The account, partition and regions of the credentials: ``regions_arg`` (``all`` or a
    comma-separated list; None for the config's ``publish.regions``) minus the exclusions."""
    from layer_builder.publish.regions import parse_regions_arg, resolve_target

    requested = cfg.publish.regions if regions_arg is None else parse_regions_arg(regions_arg)
    try:
        account, partition, regions = resolve_target(requested, cfg.publish.exclude_regions)
    except ArgumentError as exc:
        # The regions came from the config, not from a --regions flag: name the key given.
        text = str(exc)
        if regions_arg is None and text.startswith("--regions: "):
            raise ConfigError(
                str(cfg.path), "publish.regions", text[len("--regions: ") :]
            ) from None
        if text.startswith("exclude_regions: "):
            raise ConfigError(
                str(cfg.path), "publish.exclude_regions", text[len("exclude_regions: ") :]
            ) from None
        raise
    return PublishTarget(account, partition, tuple(regions))
