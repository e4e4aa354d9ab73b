"""`function enable/disable` as users and the registry really behave, against moto's server.

- The user changes the function between ``enable`` and ``disable``: their changes win.
- arm64 functions get the layer that serves arm64 (universal or per-arch documents), or
  nothing at all when no layer of the release serves arm64.
- A corrupt registry file stops ``function status`` instead of being answered around.
- "Our layer" means the registry's account, not only a similar name.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from layer_builder.consumer import rules as instr
from layer_builder.registry.reader import LayerRelease, ReleaseLayer
from tests.helpers.function import (
    ACCOUNT,
    DSN,
    REGION,
    WRAPPER,
    World,
    fn_cmd,
    run,
)

OTHER_DSN = "https://fedcba9876543210fedcba9876543210@o2.ingest.sentry.io/77"
AUTO = "--import @sentry/aws-serverless/awslambda-auto"  # for a layer not named like Sentry's


def update_env(world: World, fn: str, **changes: str | None) -> None:
    """The user edits the function's environment (None removes a variable)."""
    _, env, _ = world.config(fn)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    lam = world.lam(REGION)
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": env})


def test_disable_keeps_what_the_user_changed_after_enable_python(world: World, capsys: Any) -> None:
    ours = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours]})
    fn = world.function(handler="app.handler", env={"KEEP": "1"})
    assert run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))[0] == 0

    # After enable, the user points the wrapper at a new handler, tunes the sample rate,
    # adds a variable and a layer of their own.
    update_env(
        world, fn, SENTRY_INITIAL_HANDLER="src/app.new_handler",
        SENTRY_TRACES_SAMPLE_RATE="0.1", ADDED="yes",
    )  # fmt: skip
    mine = world.layer(f"Mine{world.uid}")
    world.lam(REGION).update_function_configuration(FunctionName=fn, Layers=[mine, ours])

    code, out, err = run(capsys, *fn_cmd(world, "disable", fn))
    assert code == 0, err
    handler, env, layers = world.config(fn)
    assert handler == "src/app.new_handler"  # not the handler recorded at enable
    assert layers == [mine]  # only ours detached
    assert env == {"KEEP": "1", "SENTRY_TRACES_SAMPLE_RATE": "0.1", "ADDED": "yes"}
    assert out["handler_after"] == "src/app.new_handler"


def test_disable_keeps_what_the_user_changed_after_enable_node(world: World, capsys: Any) -> None:
    ours = world.layer(f"SentryNode{world.uid}")
    world.release("8.0.0", {"x86_64": [ours]}, canonical="aws-layer:node", runtime_dir="node")
    fn = world.function(
        runtime="nodejs22.x", handler="index.handler", env={"NODE_OPTIONS": "--enable-source-maps"}
    )
    assert run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))[0] == 0
    assert world.config(fn)[1]["NODE_OPTIONS"] == f"--enable-source-maps {AUTO}"

    # The user adds a flag after ours and moves the function to another Sentry project.
    update_env(
        world, fn, NODE_OPTIONS=f"--enable-source-maps {AUTO} --max-old-space-size=512",
        SENTRY_DSN=OTHER_DSN,
    )  # fmt: skip
    code, _, err = run(capsys, *fn_cmd(world, "disable", fn))
    assert code == 0, err
    handler, env, layers = world.config(fn)
    assert (handler, layers) == ("index.handler", [])
    # Only our --import left NODE_OPTIONS; the DSN the user set is theirs; the sample
    # rate enable added (still as enable set it) is gone.
    assert env == {
        "NODE_OPTIONS": "--enable-source-maps --max-old-space-size=512",
        "SENTRY_DSN": OTHER_DSN,
    }


def test_disable_of_a_function_sentry_instrumented_the_node_way(world: World, capsys: Any) -> None:
    # Sentry's integration sets `-r <path>/awslambda-auto` and leaves no record of ours.
    ours = world.layer(f"SentryNode{world.uid}")
    world.release("8.0.0", {"x86_64": [ours]}, canonical="aws-layer:node", runtime_dir="node")
    options = "-r /opt/nodejs/node_modules/@sentry/aws-serverless/dist/awslambda-auto --x"
    fn = world.function(
        runtime="nodejs22.x",
        handler="index.handler",
        env={"NODE_OPTIONS": options, "SENTRY_DSN": DSN},
        layers=[ours],
    )
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert code == 0 and st["instrumented"] is True
    assert run(capsys, *fn_cmd(world, "disable", fn))[0] == 0
    _, env, layers = world.config(fn)
    assert layers == [] and env == {"NODE_OPTIONS": "--x", "SENTRY_DSN": DSN}


@pytest.mark.parametrize("shape", ["universal", "per-arch"])
def test_arm64_function_gets_the_layer_that_serves_arm64(
    world: World, capsys: Any, shape: str
) -> None:
    x86 = world.layer(f"Sentry{world.uid}")
    if shape == "universal":
        world.release("1.0.0", {"x86_64,arm64": [x86]}, shape="universal")
        expected = x86  # one layer for both architectures
    else:
        arm = world.layer(f"Sentry{world.uid}-arm64", arch="arm64")
        world.release("1.0.0", {"x86_64": [x86], "arm64": [arm]}, shape="per-arch")
        expected = arm
    fn = world.function(arch="arm64")
    code, out, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0, err
    assert out["layer_arn"] == expected and world.config(fn)[2] == [expected]
    x86_fn = world.function()
    assert run(capsys, *fn_cmd(world, "enable", x86_fn, "--dsn", DSN))[0] == 0
    assert world.config(x86_fn)[2] == [x86]


def test_arm64_function_is_refused_when_no_layer_serves_arm64(world: World, capsys: Any) -> None:
    x86 = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [x86]}, shape="universal")
    fn = world.function(arch="arm64")
    before = world.config(fn)
    for verb, extra in (("enable", ("--dsn", DSN)), ("status", ())):
        code, out, err = run(capsys, *fn_cmd(world, verb, fn, *extra))
        # With --json a failure is also a document on stdout (exit code and the same line).
        assert code == 2 and out["exit_code"] == 2 and err.count("\n") == 1
        assert err == f"error: {out['error']}\n"
        assert f"function {fn} is arm64 and no layer of aws-layer:python 1.0.0 serves arm64" in err
    assert world.config(fn) == before  # nothing attached


def test_update_moves_a_per_arch_layer_to_the_universal_one(world: World, capsys: Any) -> None:
    old_arm = world.layer(f"Sentry{world.uid}-arm64", arch="arm64")
    universal = world.layer(f"Sentry{world.uid}")
    world.release("2.0.0", {"x86_64,arm64": [universal]}, shape="universal")
    fn = world.function(arch="arm64", layers=[old_arm])
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert code == 0 and st["layer_arn"] == old_arm and st["out_of_date"] is True
    assert run(capsys, *fn_cmd(world, "update", fn))[0] == 0
    assert world.config(fn)[2] == [universal]


def test_function_status_reports_a_corrupt_version_file(world: World, capsys: Any) -> None:
    ours = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours]})
    fn = world.function(layers=[ours])
    # A stale index beside it holds a good copy: it must not answer.
    version_file = world.root / "aws-lambda-layers" / "python" / "1.0.0.json"
    good = json.loads(version_file.read_text())
    (world.root / "aws-lambda-layers" / "index.json").write_text(
        json.dumps({"aws-layer:python": good})
    )
    version_file.write_text(version_file.read_text()[:-40])
    code, out, err = run(capsys, *fn_cmd(world, "status", fn))
    assert code == 2 and out["exit_code"] == 2
    assert err.startswith(f"error: {version_file}: not valid JSON")


# --- unit: whose layer is it ------------------------------------------------------------


def _release(name: str = "SentryPythonServerlessSDK") -> LayerRelease:
    layer = ReleaseLayer(name, ("x86_64", "arm64"), {REGION: "7"})
    return LayerRelease("aws-layer:python", "2.0.0", ACCOUNT, (), (layer,), "test")


@pytest.mark.parametrize(
    ("arn", "ours"),
    [
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryPythonServerlessSDK:3", True),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryPythonServerlessSDK-arm64:3", True),
        (f"arn:aws:lambda:{REGION}:999999999999:layer:SentryPythonServerlessSDK:3", False),
        (f"arn:aws:lambda:{REGION}:999999999999:layer:SentryPythonServerlessSDK-arm64:3", False),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryPythonServerlessSDKFork:3", False),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:MyLayer:3", False),
    ],
)
def test_ours_means_the_registry_account_and_layer_line(arn: str, ours: bool) -> None:
    assert instr.is_ours(arn, _release()) is ours


def test_disable_detaches_only_the_registry_accounts_layer() -> None:
    foreign = f"arn:aws:lambda:{REGION}:999999999999:layer:SentryPythonServerlessSDK:9"
    ours = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryPythonServerlessSDK:7"
    snap = instr.Snapshot(
        "fn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn", "python3.12", "x86_64",
        "app.handler", (foreign, ours), {}, None, "Successful", "", "Active",
    )  # fmt: skip
    assert instr.attached(snap.layers, _release()) == ours
    kept = tuple(a for a in snap.layers if not instr.is_ours(a, _release()))
    assert kept == (foreign,)
    # Enabling replaces ours in place and leaves the other account's layer alone.
    latest = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryPythonServerlessSDK:8"
    assert instr.with_layer(snap, latest, _release()) == (foreign, latest)


def test_restore_records_digests_not_values() -> None:
    snap = instr.Snapshot(
        "fn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn", "python3.12", "x86_64",
        "app.handler", (), {"A": "1"}, None, "Successful", "", "Active",
    )  # fmt: skip
    handler, env = instr.instrumented(snap, "python", DSN, None)
    assert handler == WRAPPER
    record = env[instr.RESTORE_VAR]
    assert DSN not in record and "0123456789abcdef" not in record
    assert json.loads(record)["set"][instr.DSN_VAR] == instr.value_digest(DSN)
