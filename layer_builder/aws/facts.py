"""Facts about AWS Lambda that the builder, publisher and consumers rely on.

Kept in one place so a limit changes in one line. Sources: the Lambda quotas page and API
reference (see ../shared/FACTS.md for the figures we verified).
"""

from __future__ import annotations

import re

from layer_builder.types import Architecture, Family

ARCHITECTURES: tuple[Architecture, ...] = ("x86_64", "arm64")

#: ELF ``e_machine`` values for each Lambda architecture.
ELF_MACHINE: dict[str, int] = {"x86_64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
#: ``uname -m`` / manylinux spelling of each architecture.
MACHINE_NAME: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}

#: Every Lambda runtime identifier that exists or existed for Python and Node.js layers.
#: Layers may still list deprecated runtimes, so unknown ids are refused, old ones are not.
PYTHON_RUNTIMES = (
    "python3.7",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
)
NODE_RUNTIMES = (
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
)
OTHER_RUNTIMES = (
    "java8",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "java25",
    "dotnet6",
    "dotnet8",
    "dotnet10",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "provided",
    "provided.al2",
    "provided.al2023",
)
RUNTIME_IDS: tuple[str, ...] = PYTHON_RUNTIMES + NODE_RUNTIMES + OTHER_RUNTIMES

MAX_COMPATIBLE_RUNTIMES = 15
MAX_LAYERS_PER_FUNCTION = 5

LAYER_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
LAYER_NAME_MAX = 140

#: Unzipped function + all its layers.
MAX_UNZIPPED_BYTES = 262_144_000
#: PublishLayerVersion with the zip in the request: the body limit is 69905067 bytes,
#: which is 50 MiB of zip once base64-encoded. Larger zips go through S3.
MAX_DIRECT_UPLOAD_ZIP_BYTES = 50 * 1024 * 1024

ORGANIZATION_ID_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
ACCOUNT_ID_RE = re.compile(r"^\d{12}$")

#: Region name prefixes of the partitions other than ``aws``.
PARTITION_PREFIXES: dict[str, tuple[str, ...]] = {
    "aws-cn": ("cn-",),
    "aws-us-gov": ("us-gov-",),
    "aws-iso": ("us-iso-",),
    "aws-iso-b": ("us-isob-",),
}
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def partition_of_region(region: str) -> str:
    """The partition a region belongs to (``aws`` for commercial regions)."""
    for partition, prefixes in PARTITION_PREFIXES.items():
        if region.startswith(prefixes):
            return partition
    return "aws"


def layer_arn(partition: str, region: str, account: str, name: str, version: int | str) -> str:
    """The ARN of one layer version."""
    return f"arn:{partition}:lambda:{region}:{account}:layer:{name}:{version}"


def runtime_family(runtime: str) -> Family | None:
    """``python`` or ``node`` for a Lambda runtime id, else None."""
    if runtime.startswith("python"):
        return "python"
    if runtime.startswith("nodejs"):
        return "node"
    return None
