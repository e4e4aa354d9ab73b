"""A release as a consumer reads it: which layer serves which architecture, in which region.

Built from a version document of any shape this tool or craft writes (see
:meth:`LayerRelease.from_document`); used by the registry reader and the consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from layer_builder.aws.facts import ARCHITECTURES, layer_arn, partition_of_region
from layer_builder.errors import RegistryError


@dataclass(frozen=True)
class ReleaseLayer:
    """One layer of a release: its name, the architectures it serves, its region versions."""

    layer_name: str
    architectures: tuple[str, ...]
    versions: Mapping[str, str]  # region -> layer version (a string, as the registry has it)
    code_sha256: str | None = None
    #: False when the document does not say which architectures the layer serves (upstream's
    #: Node documents): it is read as serving every one, as Sentry's integration attaches it.
    declared: bool = True

    def serves(self, arch: str) -> bool:
        return arch in self.architectures


def _layer_from_entry(entry: Mapping[str, Any], where: str) -> ReleaseLayer:
    # Current documents say compatible_architectures; older ones of this tool only
    # `architecture` (a per-architecture layer).
    archs = entry.get("compatible_architectures")
    if not archs and entry.get("architecture"):
        archs = [entry["architecture"]]
    if not archs:
        raise RegistryError(f"{where}: names no architecture")
    return ReleaseLayer(
        entry["layer_name"],
        tuple(archs),
        {r["region"]: r["version"] for r in entry["regions"]},
        entry.get("code_sha256"),
    )


@dataclass(frozen=True)
class LayerRelease:
    """A version document, read: what a consumer needs to attach the layer to a function."""

    canonical: str
    sdk_version: str
    account_number: str
    compatible_runtimes: tuple[str, ...]
    layers: tuple[ReleaseLayer, ...]
    source: str  # where the document came from, for error messages

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, source: str) -> LayerRelease:
        """Read a schema-valid version document of any shape this tool or craft writes.

        With ``layers``, its entries are the truth (universal: one entry for every
        architecture; per-arch: one entry each). Without (craft's documents), the classic
        ``layer_name``/``regions`` is the one layer, serving ``compatible_architectures``.
        A document that does not say (upstream's Node documents have no
        ``compatible_architectures``) is read as Sentry's integration reads it: the layer is
        attached to a function of any architecture.
        """
        if "layers" in doc:
            layers = tuple(
                _layer_from_entry(e, f"{source}: layers[{i}]") for i, e in enumerate(doc["layers"])
            )
        else:
            versions = {r["region"]: r["version"] for r in doc["regions"]}
            declared = tuple(doc.get("compatible_architectures") or ())
            layers = (
                ReleaseLayer(
                    doc["layer_name"], declared or ARCHITECTURES, versions, declared=bool(declared)
                ),
            )
        return cls(
            canonical=doc["canonical"],
            sdk_version=doc["sdk_version"],
            account_number=doc["account_number"],
            compatible_runtimes=tuple(doc.get("compatible_runtimes", ())),
            layers=layers,
            source=source,
        )

    @property
    def architectures(self) -> tuple[str, ...]:
        """Every architecture some layer of this release serves, x86_64 first."""
        served = {a for layer in self.layers for a in layer.architectures}
        rank: dict[str, int] = {a: i for i, a in enumerate(ARCHITECTURES)}
        return tuple(sorted(served, key=lambda a: (rank.get(a, len(rank)), a)))

    @property
    def layer_names(self) -> frozenset[str]:
        return frozenset(layer.layer_name for layer in self.layers)

    def layer(self, arch: str = "x86_64") -> ReleaseLayer:
        """The layer that serves ``arch``; RegistryError if none does."""
        for layer in self.layers:
            if layer.serves(arch):
                return layer
        raise RegistryError(
            f"{self.source}: {self.canonical} {self.sdk_version} has no layer that serves "
            f"{arch} (it serves: {', '.join(self.architectures)})"
        )

    def version(self, region: str, arch: str = "x86_64") -> int:
        """The layer version published in ``region``; RegistryError if there is none."""
        layer = self.layer(arch)
        if region not in layer.versions:
            # No "did you mean": a layer from a neighbouring region cannot be attached anyway.
            raise RegistryError(
                f"{self.source}: {self.canonical} {self.sdk_version} has no {arch} layer in "
                f"region {region!r} (it is published in {len(layer.versions)} "
                f"region{'' if len(layer.versions) == 1 else 's'}; "
                "see `layer-builder registry show`)"
            )
        return int(layer.versions[region])

    def arn(self, region: str, arch: str = "x86_64") -> str:
        """``arn:{partition}:lambda:{region}:{account}:layer:{name}:{version}``."""
        version = self.version(region, arch)
        name = self.layer(arch).layer_name
        return layer_arn(partition_of_region(region), region, self.account_number, name, version)
