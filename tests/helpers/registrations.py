"""Registry writes for the writer, files and versions tests: a registration of a release
(``registration``), written (``write``) and read back (``rt``, ``link_of``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from layer_builder.model import PublishedLayer, Registration, ReleaseVersion
from layer_builder.registry.writer import write_release

ACCOUNT = "943013980633"


NAMES = {"x86_64": "SentryPythonServerlessSDK", "arm64": "SentryPythonServerlessSDKArm64"}


BASE = {
    "name": "AWS Lambda Python Layer",
    "repo_url": "https://github.com/getsentry/sentry-python",
    "main_docs_url": "https://docs.sentry.io/platforms/python/guides/aws-lambda/",
}


REGIONS = (("us-east-1", 12), ("eu-west-1", 9))


def fixed_now() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def layer(
    arch: str, regions: Iterable[tuple[str, int]], *, code: str = "c29tZS1oYXNo"
) -> PublishedLayer:
    name = NAMES[arch]
    entries = sorted(
        (region, version, f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}")
        for region, version in regions
    )
    return PublishedLayer((arch,), name, f"{code}-{arch}", tuple(entries))


def registration(
    version: str = "2.75.0",
    regions: Sequence[tuple[str, int]] = REGIONS,
    *,
    archs: Sequence[str] = ("x86_64", "arm64"),
    runtime_dir: str = "python",
    canonical: str = "aws-layer:python",
    account: str = ACCOUNT,
    link_prereleases: bool = False,
    code: str = "c29tZS1oYXNo",
) -> Registration:
    return Registration(
        runtime_dir=runtime_dir,
        canonical=canonical,
        version=ReleaseVersion.parse(version),
        sdk_version=version,
        account_number=account,
        compatible_runtimes=("python3.12", "python3.13"),
        layers=tuple(layer(a, regions, code=code) for a in archs),
        link_prereleases=link_prereleases,
        base_defaults=dict(BASE),
    )


def write(root: Path, reg: Registration, **kwargs: Any) -> Any:
    return write_release(root, reg, now=fixed_now, **kwargs)


def rt(root: Path, runtime: str = "python") -> Path:
    return root / "aws-lambda-layers" / runtime


def link_of(root: Path, name: str, runtime: str = "python") -> str:
    return os.readlink(rt(root, runtime) / name)
