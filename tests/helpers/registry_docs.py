"""Registry documents in the contract's shapes, written the way craft or a person would.

The reader tests build their registries from these instead of through the writer, so they
check the reader against the documented shapes (universal, per-arch, older per-arch
documents that carry only ``architecture``, craft's documents without ``layers``) and can
play "another writer": add ``<version>.json`` and move ``latest.json`` by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

Shape = Literal["universal", "per-arch", "older"]


def _region_entries(arns: Sequence[str]) -> list[dict[str, str]]:
    out = [{"region": a.split(":")[3], "version": a.rsplit(":", 1)[1], "arn": a} for a in arns]
    return sorted(out, key=lambda r: r["region"])


def layer_entry(arns: Sequence[str], archs: Sequence[str], *, shape: Shape) -> dict[str, Any]:
    """One ``layers`` entry for the layer whose versions are ``arns`` (one per region)."""
    entry: dict[str, Any] = {"layer_name": arns[0].split(":")[-2]}
    if shape != "universal":
        entry["architecture"] = archs[0]
    if shape != "older":
        entry["compatible_architectures"] = list(archs)
    entry["code_sha256"] = base64.b64encode(hashlib.sha256(arns[0].encode()).digest()).decode()
    entry["regions"] = _region_entries(arns)
    return entry


def document(
    version: str,
    layers: dict[str, Sequence[str]],
    *,
    shape: Shape = "universal",
    canonical: str = "aws-layer:python",
    account: str | None = None,
) -> dict[str, Any]:
    """A version document. ``layers`` maps an architecture list ("x86_64,arm64") to ARNs."""
    entries = [layer_entry(arns, key.split(","), shape=shape) for key, arns in layers.items()]

    def archs(e: dict[str, Any]) -> list[str]:
        return list(e.get("compatible_architectures") or [e["architecture"]])

    primary = next((e for e in entries if "x86_64" in archs(e)), entries[0])
    top_archs = archs(primary)
    if shape == "older":
        # What this tool wrote before: every architecture listed beside the x86_64 layer.
        top_archs = [a for e in entries for a in archs(e)]
    return {
        "name": "AWS Lambda Layer",
        "canonical": canonical,
        "sdk_version": version,
        "account_number": account or primary["regions"][0]["arn"].split(":")[4],
        "layer_name": primary["layer_name"],
        "regions": [{"region": r["region"], "version": r["version"]} for r in primary["regions"]],
        "compatible_runtimes": ["python3.12"],
        "compatible_architectures": top_archs,
        "layers": entries,
    }


def write_version(
    root: Path, doc: dict[str, Any], *, runtime_dir: str = "python", link: bool = True
) -> Path:
    """Add ``<version>.json`` and (``link``) move ``latest.json`` to it, as craft does."""
    d = root / "aws-lambda-layers" / runtime_dir
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{doc['sdk_version']}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if link:
        tmp = d / ".latest.tmp"
        os.symlink(path.name, tmp)
        os.replace(tmp, d / "latest.json")
    return path


def arn(name: str, version: int, region: str = "us-east-1", account: str = "943013980633") -> str:
    return f"arn:aws:lambda:{region}:{account}:layer:{name}:{version}"
