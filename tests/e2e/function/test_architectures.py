"""`function enable` on documents as upstream writes them, against moto's server.

- A document without ``compatible_architectures`` (upstream's Node documents) is read as
  Sentry's integration reads it: its layer is attached to a function of any architecture.
- ``enable`` warns when the function's runtime is not among the layer's compatible runtimes,
  and still enables it (Lambda attaches the layer anyway).
"""

from __future__ import annotations

from typing import Any

from tests.helpers.function import (
    ACCOUNT,
    DSN,
    REGION,
    World,
    fn_cmd,
    run,
)
from tests.helpers.registry_docs import write_version


def upstream_node_document(version: str, layer_arn: str, runtimes: list[str]) -> dict[str, Any]:
    """A Node document as Sentry's release registry holds it: no ``compatible_architectures``,
    no ``layers``; the one ``layer_name`` with its per-region versions."""
    doc: dict[str, Any] = {
        "name": "AWS Lambda Node Layer",
        "canonical": "aws-layer:node",
        "sdk_version": version,
        "account_number": ACCOUNT,
        "layer_name": layer_arn.split(":")[-2],
        "regions": [{"region": REGION, "version": layer_arn.rsplit(":", 1)[1]}],
    }
    if runtimes:
        doc["compatible_runtimes"] = runtimes
    return doc


def publish_neutral_layer(world: World, name: str) -> str:
    """A layer version published without CompatibleArchitectures, as upstream's Node layers."""
    out = world.lam(REGION).publish_layer_version(
        LayerName=name, Content={"ZipFile": b"PK\5\6" + bytes(18)}
    )
    return str(out["LayerVersionArn"])


def test_an_arm64_function_is_enabled_from_a_document_without_architectures(
    world: World, capsys: Any
) -> None:
    ours = publish_neutral_layer(world, f"SentryNodeUp{world.uid}")
    write_version(world.root, upstream_node_document("10.1.0", ours, []), runtime_dir="node")
    fn = world.function(runtime="nodejs22.x", handler="index.handler", arch="arm64")
    before = world.config(fn)

    code, st, err = run(capsys, *fn_cmd(world, "status", fn))
    assert code == 0, err
    assert st["architecture"] == "arm64" and st["latest_arn"] == ours

    code, out, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0, err
    assert out["layer_arn"] == ours and out["warnings"] == [] and "warning:" not in err
    handler, env, layers = world.config(fn)
    assert layers == [ours] and handler == "index.handler"
    assert env["NODE_OPTIONS"].endswith("@sentry/aws-serverless/awslambda-auto")

    code, st, _ = run(capsys, *fn_cmd(world, "status", fn))
    assert st["instrumented"] is True and st["out_of_date"] is False
    assert run(capsys, *fn_cmd(world, "disable", fn))[0] == 0
    assert world.config(fn) == before


def test_enable_warns_about_a_runtime_the_layer_does_not_list(world: World, capsys: Any) -> None:
    ours = publish_neutral_layer(world, f"SentryNodeRt{world.uid}")
    doc = upstream_node_document("10.1.0", ours, ["nodejs18.x", "nodejs20.x"])
    write_version(world.root, doc, runtime_dir="node")
    fn = world.function(runtime="nodejs22.x", handler="index.handler")

    code, out, err = run(capsys, *fn_cmd(world, "enable", fn, "--dsn", DSN))
    assert code == 0, err  # a warning, not a refusal: the function is enabled
    assert world.config(fn)[2] == [ours]
    (warning,) = out["warnings"]
    assert f"function {fn} runs nodejs22.x" in warning
    assert "not list among its compatible runtimes (nodejs18.x, nodejs20.x)" in warning
    assert f"warning: {warning}" in err

    # A runtime the layer lists: no warning.
    listed = world.function(runtime="nodejs20.x", handler="index.handler")
    code, out, err = run(capsys, *fn_cmd(world, "enable", listed, "--dsn", DSN))
    assert code == 0 and out["warnings"] == [] and "warning:" not in err
