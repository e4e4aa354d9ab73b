"""`function status|enable|update|disable` against moto's server, and the retry loop in unit.

The end-to-end tests publish real layer versions into moto, record them in a registry
written in the contract's document shapes (``registry_docs``, as craft or a person would),
create real functions, and drive the command line through ``cli.main``.
moto's state is shared by the whole run, so every test uses its own names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from layer_builder.consumer import rules as instrumentation
from layer_builder.consumer.function import FunctionInstrumenter
from layer_builder.errors import ArgumentError, FunctionError
from layer_builder.registry.reader import LayerRelease, ReleaseLayer
from tests.helpers.api_server import ApiServer
from tests.helpers.function import ACCOUNT, DSN, REGION, WRAPPER, World, fn_cmd, run

# --- end to end -------------------------------------------------------------------------


def test_python_lifecycle_ends_exactly_as_it_started(world: World, capsys: Any) -> None:
    other = world.layer(f"Other{world.uid}")
    ours_v1 = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours_v1]})
    env = {"FOO": "bar", "EMPTY": "", "SENTRY_ENVIRONMENT": "prod"}
    fn = world.function(handler="src/app.handler", env=env, layers=[other])
    before = world.config(fn)

    code, out, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0, err
    assert out["changed"] is True and out["layer_arn"] == ours_v1
    assert DSN not in json.dumps(out) and "0123456789abcdef" not in err
    handler, fenv, layers = world.config(fn)
    assert handler == WRAPPER and layers == [other, ours_v1]
    assert fenv["SENTRY_INITIAL_HANDLER"] == "src/app.handler"
    assert fenv["SENTRY_DSN"] == DSN and fenv["SENTRY_TRACES_SAMPLE_RATE"] == "1.0"
    assert {k: fenv[k] for k in env} == env

    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert code == 0
    assert st["family"] == "python" and st["canonical"] == "aws-layer:python"
    assert st["instrumented"] is True and st["out_of_date"] is False
    assert st["layer_version"] == 1 and st["latest_arn"] == ours_v1

    # A newer release: the function is now out of date.
    ours_v2 = world.layer(f"Sentry{world.uid}")
    assert ours_v2.endswith(":2")
    world.release("1.1.0", {"x86_64": [ours_v2]})
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert (code, st["out_of_date"], st["layer_version"], st["latest_version"]) == (0, True, 1, 2)

    enabled = world.config(fn)
    code, out, _ = run(capsys, *fn_cmd(world, "update", fn))
    assert code == 0 and out["layers_after"] == [other, ours_v2] and out["env_changed"] == []
    assert world.config(fn) == (enabled[0], enabled[1], [other, ours_v2])
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert st["out_of_date"] is False and st["instrumented"] is True

    code, out, _ = run(capsys, *fn_cmd(world, "disable", fn))
    assert code == 0 and out["changed"] is True
    assert world.config(fn) == before
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert st["layer_attached"] is False and st["instrumented"] is False and not st["out_of_date"]


def test_enable_twice_keeps_original_handler(world: World, capsys: Any) -> None:
    ours = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours]})
    fn = world.function(handler="app.handler", env={"A": "1"})
    before = world.config(fn)
    assert run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))[0] == 0
    code, out, _ = run(
        capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN, "--traces-sample-rate", "0.25")
    )
    # The record keeps the rate from before the first enable and learns the one set now.
    assert code == 0
    assert out["env_changed"] == ["SENTRY_LAYER_BUILDER_RESTORE", "SENTRY_TRACES_SAMPLE_RATE"]
    handler, env, layers = world.config(fn)
    assert handler == WRAPPER and env["SENTRY_INITIAL_HANDLER"] == "app.handler"
    assert env["SENTRY_TRACES_SAMPLE_RATE"] == "0.25" and layers == [ours]
    # Same again: nothing to change.
    code, out, _ = run(
        capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN, "--traces-sample-rate", "0.25")
    )
    assert code == 0 and out["changed"] is False
    assert run(capsys, *fn_cmd(world, "disable", fn))[0] == 0
    assert world.config(fn) == before


def test_node_keeps_other_node_options(world: World, capsys: Any) -> None:
    ours = world.layer(f"SentryNode{world.uid}")
    world.release("8.0.0", {"x86_64": [ours]}, canonical="aws-layer:node", runtime_dir="node")
    options = "--enable-source-maps  --max-old-space-size=256"
    fn = world.function(
        runtime="nodejs22.x",
        handler="index.handler",
        env={"NODE_OPTIONS": options, "SENTRY_DSN": "https://old@x.io/1"},
    )
    before = world.config(fn)
    code, out, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0, err
    handler, env, layers = world.config(fn)
    assert handler == "index.handler" and layers == [ours]
    # A layer that is none of Sentry's own names: --import, as Sentry's integration sets it.
    assert env["NODE_OPTIONS"] == f"{options} --import @sentry/aws-serverless/awslambda-auto"
    assert env["SENTRY_DSN"] == DSN and "SENTRY_INITIAL_HANDLER" not in env
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert st["family"] == "node" and st["instrumented"] is True
    assert run(capsys, *fn_cmd(world, "disable", fn))[0] == 0
    assert world.config(fn) == before


def test_arm64_function_gets_the_arm64_layer(world: World, capsys: Any) -> None:
    x86 = world.layer(f"Sentry{world.uid}")
    arm = world.layer(f"Sentry{world.uid}-arm64", arch="arm64")
    world.release("1.0.0", {"x86_64": [x86], "arm64": [arm]})
    fn = world.function(arch="arm64")
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert code == 0 and st["architecture"] == "arm64" and st["latest_arn"] == arm
    assert run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))[0] == 0
    assert world.config(fn)[2] == [arm]
    # An x86_64 layer of ours on an arm64 function is out of date: update swaps it.
    fn2 = world.function(arch="arm64", layers=[x86])
    code, st, _ = run(capsys, *fn_cmd(world, "status", fn2))
    assert st["layer_arn"] == x86 and st["out_of_date"] is True
    assert run(capsys, *fn_cmd(world, "update", fn2))[0] == 0
    assert world.config(fn2)[2] == [arm]


def test_region_missing_from_registry(world: World, capsys: Any) -> None:
    ours = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours]})
    fn = world.function(region="eu-west-3")
    before = world.config(fn, "eu-west-3")
    for verb in ("status", "enable"):
        extra = ("--dsn", DSN) if verb == "enable" else ()
        code, out, err = run(capsys, *fn_cmd(world, verb, fn, "--region", "eu-west-3", *extra))
        assert code == 2
        # --json: the failure is a JSON document on stdout too, with the same message.
        assert out == {"error": err.removeprefix("error: ").rstrip("\n"), "exit_code": 2}
        assert err.startswith("error: ") and err.count("\n") == 1
        assert "no x86_64 layer in region 'eu-west-3'" in err
    assert world.config(fn, "eu-west-3") == before
    # The function's ARN carries the region.
    arn = f"arn:aws:lambda:eu-west-3:{ACCOUNT}:function:{fn}"
    code, _, err = run(capsys, *fn_cmd(world, "status", arn))
    assert code == 2 and "eu-west-3" in err


def test_unsupported_runtime_and_unknown_function(world: World, capsys: Any) -> None:
    ours = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours]})
    fn = world.function(runtime="java21", handler="example.Handler::handleRequest")
    code, _, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 2 and f"function {fn}: runtime java21 is not supported" in err
    code, _, err = run(capsys, *fn_cmd(world, "status", "no-such-fn-" + world.uid))
    assert code == 2 and "not found in us-east-1" in err
    code, _, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", "not-a-dsn"))
    assert code == 2 and "--dsn: not a Sentry DSN" in err and "not-a-dsn" not in err


def test_layer_limit_and_replace_in_place(world: World, capsys: Any) -> None:
    others = [world.layer(f"Other{i}{world.uid}") for i in range(5)]
    old = world.layer(f"Sentry{world.uid}")
    new = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [new]})
    full = world.function(layers=others)
    before = world.config(full)
    code, _, err = run(capsys, *fn_cmd(world, "enable", full, "--dsn", DSN))
    assert code == 2 and "already has 5 layers, the most Lambda allows is 5" in err
    assert world.config(full) == before
    # Five layers, one of them an older one of ours: replaced in place, order kept.
    fn = world.function(layers=[others[0], others[1], old, others[2], others[3]])
    assert run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))[0] == 0
    assert world.config(fn)[2] == [others[0], others[1], new, others[2], others[3]]


@pytest.fixture
def http_registry(world: World) -> Iterator[str]:
    """The world's registry served on 127.0.0.1 by a stand-in for the API server's route."""
    (world.root / "aws-lambda-layers").mkdir(parents=True, exist_ok=True)
    server = ApiServer(world.root)
    yield server.url
    server.close()
    assert server.errors == []


def test_registry_over_http(world: World, http_registry: str, capsys: Any) -> None:
    ours = world.layer(f"Sentry{world.uid}")
    world.release("1.0.0", {"x86_64": [ours]})
    fn = world.function()
    argv = ["function", "enable", fn, "--registry", http_registry, "--dsn", DSN, "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert out["layer_arn"] == ours
    code, st, _ = run(capsys, "function", "status", fn, "--registry", http_registry + "/", "--json")
    assert code == 0 and st["instrumented"] is True and st["out_of_date"] is False


# --- unit: retries, waits, helpers ------------------------------------------------------


class FakeFunctionApi:
    """GetFunctionConfiguration / UpdateFunctionConfiguration with scripted failures."""

    def __init__(self, failures: list[str], statuses: list[str]) -> None:
        self.failures = failures  # error codes raised by the next updates
        self.statuses = statuses  # LastUpdateStatus of the next reads ("Successful" after)
        self.cfg: dict[str, Any] = {
            "FunctionName": "fn",
            "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
            "Runtime": "python3.12",
            "Handler": "app.handler",
            "Architectures": ["x86_64"],
            "Layers": [],
            "Environment": {"Variables": {"KEEP": "1"}},
            "RevisionId": "r1",
        }
        self.updates: list[dict[str, Any]] = []

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        status = self.statuses.pop(0) if self.statuses else "Successful"
        return {**self.cfg, "LastUpdateStatus": status}

    def update_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        if self.failures:
            code = self.failures.pop(0)
            raise ClientError(
                {"Error": {"Code": code, "Message": "busy"}}, "UpdateFunctionConfiguration"
            )
        self.updates.append(kwargs)
        if "Layers" in kwargs:
            self.cfg["Layers"] = [{"Arn": a} for a in kwargs["Layers"]]
        if "Handler" in kwargs:
            self.cfg["Handler"] = kwargs["Handler"]
        if "Environment" in kwargs:
            self.cfg["Environment"] = kwargs["Environment"]
        return self.cfg


class FakeRegistry:
    def __init__(self, region: str = REGION, name: str = "SentryPythonServerlessSDK") -> None:
        self.region, self.name = region, name

    def latest(self, canonical: str) -> LayerRelease:
        layer = ReleaseLayer(self.name, ("x86_64",), {self.region: "7"})
        return LayerRelease(canonical, "2.0.0", ACCOUNT, ("python3.12",), (layer,), "fake")


def _tool(fake: FakeFunctionApi, sleeps: list[float], **kw: Any) -> FunctionInstrumenter:
    return FunctionInstrumenter(
        FakeRegistry(),
        lambda_client=lambda region: fake,
        default_region=REGION,
        sleep=sleeps.append,
        clock=lambda: float(len(sleeps)),
        jitter=lambda: 0.5,
        **kw,
    )


def test_resource_conflict_is_retried_with_backoff() -> None:
    fake = FakeFunctionApi(
        ["ResourceConflictException", "ResourceConflictException", "PreconditionFailedException"],
        ["InProgress"],
    )
    sleeps: list[float] = []
    result = _tool(fake, sleeps).enable("fn", dsn=DSN)
    # One wait for the update already in progress, then backoff of 1, 2, 4 seconds with
    # equal jitter (half fixed, half random: 0.5 here), so racing tools spread apart.
    assert sleeps == [2.0, 0.75, 1.5, 3.0]
    assert result.changed and len(fake.updates) == 1
    update = fake.updates[0]
    assert update["RevisionId"] == "r1" and update["Handler"] == WRAPPER
    layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryPythonServerlessSDK:7"
    assert update["Layers"] == [layer]
    assert update["Environment"]["Variables"]["KEEP"] == "1"


def test_conflict_gives_up_and_failed_update_is_reported() -> None:
    fake = FakeFunctionApi(["ResourceConflictException"] * 3, [])
    with pytest.raises(FunctionError, match="fn: still busy after 3 attempts"):
        _tool(fake, [], conflict_attempts=3).enable("fn", dsn=DSN)
    fake = FakeFunctionApi([], ["Successful", "Failed"])
    fake.cfg["LastUpdateStatusReason"] = "layer too big"
    with pytest.raises(FunctionError, match="could not apply the change: layer too big"):
        _tool(fake, []).enable("fn", dsn=DSN)


def test_update_waits_and_times_out() -> None:
    fake = FakeFunctionApi([], ["InProgress"] * 10)
    with pytest.raises(FunctionError, match="still updating after 5s"):
        _tool(fake, [], settle_timeout=5.0, poll_interval=1.0).disable("fn")


def test_argument_checks() -> None:
    with pytest.raises(ArgumentError, match=r"--traces-sample-rate: '2' is not a number"):
        instrumentation.validate_sample_rate("2")
    assert instrumentation.validate_sample_rate("0.5") == "0.5"
    tool = _tool(FakeFunctionApi([], []), [])
    with pytest.raises(ArgumentError, match="contradicts the function ARN's region us-east-1"):
        tool.status(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn", region="eu-west-1")
    with pytest.raises(ArgumentError, match="a version or alias cannot be changed"):
        tool.update(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn:prod")
    with pytest.raises(FunctionError, match="no aws-layer:python layer is attached"):
        tool.update("fn")


def test_other_partitions_get_their_own_arns() -> None:
    fake = FakeFunctionApi([], [])
    arn = f"arn:aws-cn:lambda:cn-north-1:{ACCOUNT}:function:fn"
    fake.cfg["FunctionArn"] = arn
    regions: list[str] = []

    def client(region: str) -> FakeFunctionApi:
        regions.append(region)
        return fake

    tool = FunctionInstrumenter(FakeRegistry("cn-north-1"), lambda_client=client)
    result = tool.enable(arn, dsn=DSN)
    assert set(regions) == {"cn-north-1"}
    layer = f"arn:aws-cn:lambda:cn-north-1:{ACCOUNT}:layer:SentryPythonServerlessSDK:7"
    assert result.layer_arn == layer
    assert tool.status(arn).out_of_date is False


def test_node_major_upgrade_replaces_the_old_layer_and_module() -> None:
    fake = FakeFunctionApi([], [])
    old_layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryNodeServerlessSDK:40"
    mine = f"arn:aws:lambda:{REGION}:999999999999:layer:Mine:1"
    legacy = "-r @sentry/serverless/dist/awslambda-auto --x"
    fake.cfg.update(
        Runtime="nodejs22.x",
        Handler="index.handler",
        Layers=[{"Arn": old_layer}, {"Arn": mine}],
        Environment={"Variables": {"NODE_OPTIONS": legacy}},
    )
    tool = FunctionInstrumenter(
        FakeRegistry(name="SentryNodeServerlessSDKv8"),
        lambda_client=lambda r: fake,
        default_region=REGION,
    )
    assert tool.status("fn").out_of_date is True  # v7's layer is ours, under its old name
    tool.enable("fn", dsn=DSN)
    new_layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:SentryNodeServerlessSDKv8:7"
    assert [layer["Arn"] for layer in fake.cfg["Layers"]] == [new_layer, mine]
    env = fake.cfg["Environment"]["Variables"]
    # Sentry's v8 layer: its module with -r, as Sentry's integration sets it.
    assert env["NODE_OPTIONS"] == "--x -r @sentry/aws-serverless/awslambda-auto"
    tool.disable("fn")
    # Restored, minus the require of a module no layer provides any more.
    assert fake.cfg["Environment"]["Variables"] == {"NODE_OPTIONS": "--x"}
    assert [layer["Arn"] for layer in fake.cfg["Layers"]] == [mine]
