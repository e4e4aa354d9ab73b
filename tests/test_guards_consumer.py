""" "Is this layer ours" must look at the account: a function's layer from another account
with a similar (older-major) name is the user's, and must be neither replaced nor removed
(a mutant that ignored the account passed the older tests; see docs/mutation-testing.md)."""

from __future__ import annotations

from layer_builder.consumer.instrumentation import Snapshot, attached, is_ours, with_layer
from layer_builder.registry.release import LayerRelease, ReleaseLayer

SENTRY = "943013980633"
OTHER = "111122223333"
REGION = "eu-west-1"


def release() -> LayerRelease:
    layer = ReleaseLayer("SentryNodeServerlessSDKv8", ("x86_64", "arm64"), {REGION: "12"})
    return LayerRelease("aws-layer:node", "8.1.0", SENTRY, ("nodejs20.x",), (layer,), "test")


def arn(account: str, name: str, version: int) -> str:
    return f"arn:aws:lambda:{REGION}:{account}:layer:{name}:{version}"


def snapshot(layers: tuple[str, ...]) -> Snapshot:
    return Snapshot(
        name="fn",
        arn=f"arn:aws:lambda:{REGION}:{OTHER}:function:fn",
        runtime="nodejs20.x",
        architecture="x86_64",
        handler="index.handler",
        layers=layers,
        env={},
        revision_id=None,
        update_status="Successful",
        update_reason="",
        state="Active",
    )


def test_an_older_major_is_ours_only_in_sentrys_account() -> None:
    rel = release()
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv7", 3), rel) is True
    assert is_ours(arn(OTHER, "SentryNodeServerlessSDKv7", 3), rel) is False
    assert is_ours(arn(SENTRY, "SomethingElse", 3), rel) is False
    # The same name in another account is someone else's too.
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv8", 12), rel) is True
    assert is_ours(arn(OTHER, "SentryNodeServerlessSDKv8", 12), rel) is False


def test_someone_elses_similar_layer_is_kept_in_place() -> None:
    rel = release()
    latest = arn(SENTRY, "SentryNodeServerlessSDKv8", 12)
    theirs = arn(OTHER, "SentryNodeServerlessSDKv7", 3)
    mine = arn(OTHER, "my-deps", 1)
    assert attached((theirs, mine), rel) is None
    assert with_layer(snapshot((theirs, mine)), latest, rel) == (theirs, mine, latest)
    # Sentry's own older major is replaced where it stood.
    old = arn(SENTRY, "SentryNodeServerlessSDKv7", 3)
    assert attached((mine, old), rel) == old
    assert with_layer(snapshot((mine, old, theirs)), latest, rel) == (mine, latest, theirs)
