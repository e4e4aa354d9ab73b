""" "Is this layer ours" must look at the account: a function's layer from another account
with a similar (older-major) name is the user's, and must be neither replaced nor removed
(a mutant that ignored the account passed the older tests; see docs/mutation-testing.md)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from layer_builder.consumer.rules import (
    INITIAL_HANDLER_VAR,
    NODE_OPTIONS_VAR,
    PYTHON_WRAPPER_HANDLER,
    RESTORE_VAR,
    Snapshot,
    attached,
    is_older,
    is_ours,
    restored,
    value_digest,
    wired,
    with_layer,
)
from layer_builder.errors import FunctionError
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


# ------------------------------------------------------------------ restore and wiring


def snap_with(handler: str, env: dict[str, str]) -> Snapshot:
    return dataclasses.replace(snapshot(()), handler=handler, env=env)


def test_is_older_compares_versions_of_the_same_layer_only() -> None:
    v8 = "SentryNodeServerlessSDKv8"
    assert is_older(arn(SENTRY, v8, 3), arn(SENTRY, v8, 12)) is True
    assert is_older(arn(SENTRY, v8, 12), arn(SENTRY, v8, 12)) is False
    assert is_older(arn(SENTRY, v8, 13), arn(SENTRY, v8, 12)) is False
    # Another layer or account: "older" means "not the latest".
    assert is_older(arn(OTHER, v8, 3), arn(SENTRY, v8, 12)) is True
    assert is_older(arn(SENTRY, "SentryNodeServerlessSDKv7", 99), arn(SENTRY, v8, 12)) is True
    assert is_older("not-an-arn", arn(SENTRY, v8, 12)) is True
    assert is_older(arn(SENTRY, v8, 12), "not-an-arn") is True
    assert is_older("same-text", "same-text") is False


def test_an_architecture_suffix_is_the_same_layer_line() -> None:
    rel = release()
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv7-arm64", 2), rel) is True
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv8_x86_64", 2), rel) is True
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv8XXXX", 2), rel) is False


def test_wired() -> None:
    python = snap_with(PYTHON_WRAPPER_HANDLER, {INITIAL_HANDLER_VAR: "app.handler"})
    assert wired(python, "python") is True
    assert wired(snap_with(PYTHON_WRAPPER_HANDLER, {}), "python") is False
    assert wired(snap_with("app.handler", {INITIAL_HANDLER_VAR: "app.handler"}), "python") is False
    req = "--require @sentry/aws-serverless/awslambda-auto"
    assert wired(snap_with("index.handler", {NODE_OPTIONS_VAR: req}), "node") is True
    assert wired(snap_with("index.handler", {}), "node") is False


def record(env: dict[str, object], set_: dict[str, str], **extra: object) -> str:
    return json.dumps({"env": env, "set": set_, **extra})


def test_restored_python_handler_and_variables() -> None:
    env = {
        INITIAL_HANDLER_VAR: "app.moved_handler",  # pointed elsewhere by the user since
        "SENTRY_DSN": "https://key@o1.ingest/1",
        "SENTRY_TRACES_SAMPLE_RATE": "0.5",  # changed by the user since enable
        "KEEP": "mine",
        RESTORE_VAR: record(
            {INITIAL_HANDLER_VAR: "was-here", "SENTRY_DSN": None,
             "SENTRY_TRACES_SAMPLE_RATE": "0.1", "GONE": "x"},
            {"SENTRY_DSN": value_digest("https://key@o1.ingest/1"),
             "SENTRY_TRACES_SAMPLE_RATE": value_digest("1.0")},
        ),
    }  # fmt: skip
    handler, after = restored(snap_with(PYTHON_WRAPPER_HANDLER, env))
    assert handler == "app.moved_handler"
    assert after == {
        INITIAL_HANDLER_VAR: "was-here",  # its value from before enable
        "SENTRY_TRACES_SAMPLE_RATE": "0.5",  # the user's now
        "KEEP": "mine",
    }


def test_restored_falls_back_to_the_recorded_handler_or_refuses() -> None:
    env = {RESTORE_VAR: record({}, {}, handler="app.original")}
    assert restored(snap_with(PYTHON_WRAPPER_HANDLER, env)) == ("app.original", {})
    with pytest.raises(FunctionError, match="is not set") as exc:
        restored(snap_with(PYTHON_WRAPPER_HANDLER, {}))
    assert str(exc.value) == (
        f"function fn: the handler is Sentry's wrapper but {INITIAL_HANDLER_VAR} is not set; "
        "set the original handler yourself"
    )
    # Not our wrapper any more: the handler is the user's, the variable too.
    assert restored(snap_with("app.other", {INITIAL_HANDLER_VAR: "x"})) == (
        "app.other",
        {INITIAL_HANDLER_VAR: "x"},
    )


def test_restored_node_options_lose_only_our_require() -> None:
    ours = "--require @sentry/aws-serverless/awslambda-auto"
    env = {NODE_OPTIONS_VAR: f"--max-old-space-size=256 {ours}",
           RESTORE_VAR: record({NODE_OPTIONS_VAR: "--max-old-space-size=128"}, {})}  # fmt: skip
    assert restored(snap_with("index.handler", env)) == (
        "index.handler",
        {NODE_OPTIONS_VAR: "--max-old-space-size=256"},
    )
    only = {NODE_OPTIONS_VAR: ours, "B": "2", RESTORE_VAR: record({"B": "1"}, {})}
    assert restored(snap_with("index.handler", only)) == ("index.handler", {"B": "1"})
