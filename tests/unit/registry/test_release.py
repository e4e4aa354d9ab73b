"""A version document read into a LayerRelease, field by field, and its refusals word for
word."""

from __future__ import annotations

from typing import Any

import pytest

from layer_builder.errors import RegistryError
from layer_builder.registry.release import LayerRelease, ReleaseLayer

ACCOUNT = "943013980633"


def doc(**extra: Any) -> dict[str, Any]:
    base = {
        "canonical": "aws-layer:python",
        "sdk_version": "2.75.0",
        "account_number": ACCOUNT,
        "layer_name": "SentryPythonServerlessSDK",
        "regions": [{"region": "us-east-1", "version": "12"}],
        "compatible_runtimes": ["python3.12", "python3.13"],
    }
    return {**base, **extra}


def test_every_field_is_read() -> None:
    layers = [
        {"layer_name": "L", "compatible_architectures": ["x86_64"], "code_sha256": "c2hh",
         "regions": [{"region": "us-east-1", "version": "12"}]},
        {"layer_name": "L-arm64", "architecture": "arm64",
         "regions": [{"region": "us-east-1", "version": "4"}]},
    ]  # fmt: skip
    release = LayerRelease.from_document(doc(layers=layers), source="reg")
    assert release == LayerRelease(
        canonical="aws-layer:python",
        sdk_version="2.75.0",
        account_number=ACCOUNT,
        compatible_runtimes=("python3.12", "python3.13"),
        layers=(
            ReleaseLayer("L", ("x86_64",), {"us-east-1": "12"}, "c2hh"),
            ReleaseLayer("L-arm64", ("arm64",), {"us-east-1": "4"}, None),
        ),
        source="reg",
    )
    # compatible_architectures wins over an older `architecture` beside it.
    both = [{**layers[0], "architecture": "arm64"}]
    assert LayerRelease.from_document(doc(layers=both), source="reg").layers[0].architectures == (
        "x86_64",
    )
    # Upstream's Node shape (no compatible_architectures): every architecture, as Sentry's
    # integration attaches it, marked as not declared.
    bare = LayerRelease.from_document(doc(), source="r")
    assert bare.layers == (
        ReleaseLayer(
            "SentryPythonServerlessSDK", ("x86_64", "arm64"), {"us-east-1": "12"}, declared=False
        ),
    )
    no_runtimes = {k: v for k, v in doc().items() if k != "compatible_runtimes"}
    assert LayerRelease.from_document(no_runtimes, source="r").compatible_runtimes == ()


def test_a_layers_entry_without_architecture_is_refused() -> None:
    layers = [{"layer_name": "L", "regions": []}]
    with pytest.raises(RegistryError, match="names no architecture") as exc:
        LayerRelease.from_document(doc(layers=layers), source="reg/python/2.75.0.json")
    assert str(exc.value) == "reg/python/2.75.0.json: layers[0]: names no architecture"


def test_missing_architecture_and_region_word_for_word() -> None:
    release = LayerRelease.from_document(doc(compatible_architectures=["x86_64"]), source="reg")
    with pytest.raises(RegistryError, match="no layer that serves arm64") as exc:
        release.layer("arm64")
    assert str(exc.value) == (
        "reg: aws-layer:python 2.75.0 has no layer that serves arm64 (it serves: x86_64)"
    )
    with pytest.raises(RegistryError, match="in region 'eu-west-1'") as exc:
        release.version("eu-west-1")
    assert str(exc.value) == (
        "reg: aws-layer:python 2.75.0 has no x86_64 layer in region 'eu-west-1' (it is "
        "published in 1 region; see `layer-builder registry show`)"
    )
    two = LayerRelease.from_document(
        doc(regions=[{"region": "us-east-1", "version": "1"},
                     {"region": "us-west-2", "version": "2"}],
            compatible_architectures=["x86_64", "arm64"]),
        source="reg",
    )  # fmt: skip
    with pytest.raises(RegistryError, match="published in 2 regions;") as exc:
        two.version("eu-west-1", "arm64")
    assert "has no arm64 layer in region 'eu-west-1'" in str(exc.value)
    with pytest.raises(RegistryError, match=r"\(it serves: x86_64, arm64\)$"):
        two.layer("mips")


# ------------------------------------------------------------------------------------------------
# `LayerRelease.layer()` without an architecture is the x86_64 layer, as `version()` and
# `arn()` are.


def test_the_layer_without_an_architecture_is_the_x86_64_one() -> None:
    arm = ReleaseLayer("SentryPythonServerlessSDK-arm64", ("arm64",), {"us-east-1": "4"})
    x86 = ReleaseLayer("SentryPythonServerlessSDK", ("x86_64",), {"us-east-1": "12"})
    rel = LayerRelease("aws-layer:python", "2.75.0", "943013980633", (), (arm, x86), "test")
    assert rel.layer().layer_name == "SentryPythonServerlessSDK"
