"""The `function` commands' world on moto's server: a Lambda client and an execution role
(fixtures ``lam``, ``role``), a registry with published layers (``world``), and ``run`` for
``function ...`` with its --json document parsed."""

from __future__ import annotations

import functools
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from layer_builder.consumer import rules as instrumentation
from tests.helpers.cli import run_cli
from tests.helpers.registry_docs import Shape, document, write_version

ACCOUNT = "123456789012"  # moto's


REGION = "us-east-1"


DSN = "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/4242"


WRAPPER = instrumentation.PYTHON_WRAPPER_HANDLER


def _zip(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", text)
    return buf.getvalue()


@pytest.fixture
def lam(aws_env: str) -> Callable[[str], Any]:
    """A Lambda client factory for moto, per region."""
    return functools.cache(lambda region: boto3.client("lambda", region_name=region))


@pytest.fixture
def role(aws_env: str) -> str:
    iam = boto3.client("iam", region_name=REGION)
    name = f"lb-fn-{uuid.uuid4().hex[:8]}"
    trust = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"Service": "lambda.amazonaws.com"},
    }
    doc = json.dumps({"Version": "2012-10-17", "Statement": [trust]})
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc)["Role"]["Arn"])


class World:
    """Layers, a registry and functions for one test, in moto."""

    def __init__(self, lam: Callable[[str], Any], role: str, root: Path) -> None:
        self.lam, self.role, self.root = lam, role, root
        self.uid = uuid.uuid4().hex[:8]

    def layer(self, name: str, region: str = REGION, arch: str = "x86_64") -> str:
        out = self.lam(region).publish_layer_version(
            LayerName=name, Content={"ZipFile": _zip(name)}, CompatibleArchitectures=[arch]
        )
        return str(out["LayerVersionArn"])

    def release(
        self,
        version: str,
        layers: dict[str, list[str]],
        *,
        canonical: str = "aws-layer:python",
        runtime_dir: str = "python",
        shape: Shape = "per-arch",
    ) -> None:
        """Record ``{"arch[,arch]": [layer version ARN, ...]}`` as release ``version``."""
        doc = document(version, layers, shape=shape, canonical=canonical, account=ACCOUNT)
        write_version(self.root, doc, runtime_dir=runtime_dir)

    def function(
        self,
        *,
        runtime: str = "python3.12",
        handler: str = "app.handler",
        env: dict[str, str] | None = None,
        layers: list[str] | None = None,
        arch: str = "x86_64",
        region: str = REGION,
    ) -> str:
        name = f"fn-{uuid.uuid4().hex[:10]}"
        kwargs: dict[str, Any] = {}
        if env is not None:
            kwargs["Environment"] = {"Variables": env}
        self.lam(region).create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=self.role,
            Handler=handler,
            Code={"ZipFile": _zip("def handler(e, c): return 1\n")},
            Layers=layers or [],
            Architectures=[arch],
            **kwargs,
        )
        return name

    def config(self, name: str, region: str = REGION) -> tuple[str, dict[str, str], list[str]]:
        cfg = self.lam(region).get_function_configuration(FunctionName=name)
        env = (cfg.get("Environment") or {}).get("Variables") or {}
        return cfg["Handler"], dict(env), [layer["Arn"] for layer in cfg.get("Layers") or []]


@pytest.fixture
def world(lam: Callable[[str], Any], role: str, tmp_path: Path) -> World:
    return World(lam, role, tmp_path / "registry")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """``cli.main(argv)``: exit code, parsed --json stdout (or None), stderr."""
    code, out, err = run_cli(capsys, *argv)
    return code, (json.loads(out) if "--json" in argv and out else None), err


def fn_cmd(world: World, verb: str, name: str, *extra: str) -> list[str]:
    return ["function", verb, name, "--registry", str(world.root), "--json", *extra]
