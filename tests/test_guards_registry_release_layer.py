"""`LayerRelease.layer()` without an architecture is the x86_64 layer, as `version()` and
`arn()` are (mutation testing found the default unpinned; see docs/mutation-testing.md)."""

from __future__ import annotations

from layer_builder.registry.release import LayerRelease, ReleaseLayer


def test_the_layer_without_an_architecture_is_the_x86_64_one() -> None:
    arm = ReleaseLayer("SentryPythonServerlessSDK-arm64", ("arm64",), {"us-east-1": "4"})
    x86 = ReleaseLayer("SentryPythonServerlessSDK", ("x86_64",), {"us-east-1": "12"})
    rel = LayerRelease("aws-layer:python", "2.75.0", "943013980633", (), (arm, x86), "test")
    assert rel.layer().layer_name == "SentryPythonServerlessSDK"
