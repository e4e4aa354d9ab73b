"""`function enable|update` preload a Node layer's SDK the way Sentry's integration does for
that layer version (``-r`` up to SentryNodeServerlessSDKv10 version 13, ``--import`` from 14
on and for any other layer), and `status`/`disable` recognise both forms.
"""

from __future__ import annotations

from typing import Any

import pytest

from layer_builder.consumer.rules import node_options_with, node_preload
from tests.helpers.function import (
    DSN,
    World,
    fn_cmd,
    run,
)

REQUIRE = "-r @sentry/aws-serverless/awslambda-auto"
IMPORT = "--import @sentry/aws-serverless/awslambda-auto"
V7 = "-r @sentry/serverless/dist/awslambda-auto"


@pytest.mark.parametrize(
    ("name", "version", "preload"),
    [
        ("SentryNodeServerlessSDKv7", 99, V7),
        ("SentryNodeServerlessSDK", 235, V7),
        ("SentryNodeServerlessSDK", 236, REQUIRE),
        ("SentryNodeServerlessSDKv8", 50, REQUIRE),
        ("SentryNodeServerlessSDKv9", 3, REQUIRE),
        ("SentryNodeServerlessSDKv10", 13, REQUIRE),
        ("SentryNodeServerlessSDKv10", 14, IMPORT),
        ("SentryNodeServerlessSDKv10-arm64", 13, REQUIRE),  # a per-arch name, same rule
        ("SentryNodeServerlessSDKv11", 1, IMPORT),
        ("MyCompanySentryLayer", 1, IMPORT),
    ],
)
def test_the_preload_follows_sentrys_rule(name: str, version: int, preload: str) -> None:
    assert node_preload(name, version) == preload


def test_a_token_doing_the_same_is_kept_however_spelled() -> None:
    for same in ("--require @sentry/aws-serverless/awslambda-auto",
                 "--require=/opt/nodejs/node_modules/@sentry/aws-serverless/awslambda-auto.js",
                 "-r @sentry/aws-serverless/dist/awslambda-auto"):  # fmt: skip
        assert node_options_with(f"--x {same}", REQUIRE) is None
    assert node_options_with("--import=@sentry/aws-serverless/awslambda-auto", IMPORT) is None
    # Another form is replaced in place of every token of ours; the user's flags stay.
    assert node_options_with(f"--x {REQUIRE} --y", IMPORT) == f"--x --y {IMPORT}"
    assert node_options_with(f"{V7} {IMPORT}", IMPORT) == IMPORT  # two of ours: one left


def publish_versions(world: World, name: str, up_to: int) -> str:
    """Publish ``name`` until its version is ``up_to``; the ARN of that version."""
    while True:
        out = world.lam("us-east-1").publish_layer_version(
            LayerName=name, Content={"ZipFile": b"PK\5\6" + bytes(18)}
        )
        version = int(out["LayerVersionArn"].rsplit(":", 1)[1])
        if version > up_to:
            pytest.skip(f"moto already holds {name} beyond version {up_to}")
        if version == up_to:
            return str(out["LayerVersionArn"])


def test_enable_and_update_follow_the_layer_version(world: World, capsys: Any) -> None:
    # Sentry's own v10 name (its per-arch spelling, so no other test shares the name).
    name = "SentryNodeServerlessSDKv10-arm64"
    v13 = publish_versions(world, name, 13)
    world.release("10.5.0", {"x86_64,arm64": [v13]}, canonical="aws-layer:node",
                  runtime_dir="node", shape="universal")  # fmt: skip
    fn = world.function(runtime="nodejs22.x", handler="index.handler",
                        env={"NODE_OPTIONS": "--enable-source-maps"})  # fmt: skip
    before = world.config(fn)

    code, out, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0, err
    assert world.config(fn)[1]["NODE_OPTIONS"] == f"--enable-source-maps {REQUIRE}"

    # Version 14: `update` moves the layer and switches our preload to --import.
    v14 = publish_versions(world, name, 14)
    world.release("10.6.0", {"x86_64,arm64": [v14]}, canonical="aws-layer:node",
                  runtime_dir="node", shape="universal")  # fmt: skip
    code, out, err = run(capsys, *fn_cmd(world, "update", fn))
    assert code == 0, err
    assert out["layers_after"] == [v14] and "NODE_OPTIONS" in out["env_changed"]
    assert world.config(fn)[1]["NODE_OPTIONS"] == f"--enable-source-maps {IMPORT}"
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert st["instrumented"] is True and st["out_of_date"] is False

    # Enabling again changes nothing; disable takes the --import token out and restores.
    code, out, _ = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0 and out["changed"] is False
    assert run(capsys, *fn_cmd(world, "disable", fn))[0] == 0
    assert world.config(fn) == before


def test_update_leaves_a_function_loading_the_sdk_its_own_way(world: World, capsys: Any) -> None:
    ours = world.layer(f"SentryNodeOwn{world.uid}")
    world.release("10.6.0", {"x86_64": [ours]}, canonical="aws-layer:node", runtime_dir="node")
    fn = world.function(runtime="nodejs22.x", handler="index.handler", layers=[ours],
                        env={"NODE_OPTIONS": "--import ./instrument.mjs"})  # fmt: skip
    before = world.config(fn)
    code, out, err = run(capsys, *fn_cmd(world, "update", fn))
    assert code == 0, err
    assert out["changed"] is False and world.config(fn) == before
