"""The runtimes, started as Lambda's managed runtimes start them.

Python runs Lambda's own runtime client, ``awslambdaric``, on this interpreter with ``-S``
(no site-packages): the path is exactly what Lambda gives a function, the function's code,
the layer's ``/opt/python`` directories, and a runtime directory holding only the runtime
client, so nothing from the machine running the smoke test can stand in for something the
layer forgot. Node runs our small runtime loop (``node_runtime.js``) with ``NODE_PATH`` as
Lambda sets it, and with Lambda's ES module resolution (``node_esm_node_path.js``). The SDK
is enabled the way Sentry enables it: the Python wrapper handler with
``SENTRY_INITIAL_HANDLER``; ``NODE_OPTIONS=-r @sentry/aws-serverless/awslambda-auto`` or
``--import`` of the same (one run each).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from layer_builder.aws.facts import ELF_MACHINE, MACHINE_NAME
from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.smoke.api import ACCOUNT_ID, FUNCTION_NAME, REGION

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "samples"
NODE_RUNTIME = HERE / "node_runtime.js"
NODE_ESM_NODE_PATH = HERE / "node_esm_node_path.js"
PYTHON_WRAPPER = "sentry_sdk.integrations.init_serverless_sdk.sentry_lambda_handler"
NODE_PRELOAD = "@sentry/aws-serverless/awslambda-auto"
SAMPLE_HANDLER = "smoke_sample.handler"
SAMPLE_ERROR = "SmokeTestError"
RUNTIMES = ("python", "node")

#: Error types meaning "the handler could not be loaded": a failure of the run, not an
#: error of the user's code (awslambdaric's and Lambda's Node names, and the layer wrapper's).
LOAD_ERRORS = frozenset(
    {
        "Runtime.ImportModuleError",
        "Runtime.HandlerNotFound",
        "Runtime.MalformedHandlerName",
        "Runtime.UserCodeSyntaxError",
        "Runtime.BuiltInModuleConflict",
        "HandlerConfigError",
    }
)


@dataclass(frozen=True)
class Runtime:
    """How to start one runtime process for one run."""

    name: str
    label: str  # e.g. "python3.11 + awslambdaric 4.2.2", for the report
    argv: tuple[str, ...]
    env: dict[str, str]
    tools: tuple[str, ...]  # executables the run needs to see (kept outside the /opt mount)


def detect(layer_dir: Path, wanted: str | None) -> str:
    """The runtime a layer is for: ``python/`` or ``nodejs/`` at its top, or ``--runtime``."""
    if wanted:
        return wanted
    found = [r for r, d in (("python", "python"), ("node", "nodejs")) if (layer_dir / d).is_dir()]
    if len(found) != 1:
        raise ArtifactError(
            f"{layer_dir.name}: cannot tell the layer's runtime (top-level python/ or nodejs/: "
            f"{found or 'neither'}); pass --runtime python|node"
        )
    return found[0]


def lambda_env(*, api: str, task_root: Path, handler: str, dsn: str) -> dict[str, str]:
    """The environment Lambda gives a function (and its extensions); no host variables."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "smoke",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_ACCOUNT_ID": ACCOUNT_ID,
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": handler,
        "SENTRY_DSN": dsn,
    }


def _python_runtime_dir(work: Path) -> tuple[Path, str]:
    """A directory with awslambdaric and its dependencies only, like Lambda's /var/runtime."""
    try:
        version = importlib.metadata.version("awslambdaric")
    except importlib.metadata.PackageNotFoundError:
        raise ArgumentError(
            "smoke: the Python runtime client awslambdaric is not installed; "
            "install it with `pip install 'layer-builder[smoke]'`"
        ) from None
    root = work / "runtime-python"
    root.mkdir(exist_ok=True)
    todo, seen = ["awslambdaric"], set()
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        for f in dist.files or ():
            top = f.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__", "bin"):
                continue
            src, dst = Path(str(dist.locate_file(top))), root / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
        for req in dist.requires or ():
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req.strip(), maxsplit=1)[0])
    return root, version


def python(work: Path, opt: str, task_root: Path, user_handler: str, with_layer: bool) -> Runtime:
    runtime_dir, ric = _python_runtime_dir(work)
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    handler = PYTHON_WRAPPER if with_layer else user_handler
    # Lambda's order: the function, the layers' python directories, then the runtime.
    path = [
        str(task_root),
        f"{opt}/python/lib/python{pyver}/site-packages",
        f"{opt}/python",
        str(runtime_dir),
    ]
    env = {
        "PYTHONPATH": ":".join(path),
        "PYTHONDONTWRITEBYTECODE": "1",  # /opt is read-only, as in Lambda
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{pyver}",
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": handler,
    }
    if with_layer:
        env["SENTRY_INITIAL_HANDLER"] = user_handler
    argv = (sys.executable, "-S", "-m", "awslambdaric", handler)
    return Runtime("python", f"python{pyver} + awslambdaric {ric}", argv, env, (sys.executable,))


def _node() -> tuple[str, str]:
    node = shutil.which("node")
    if node is None:
        raise ArgumentError("smoke: a Node layer needs `node` on PATH (Node.js 18 or newer)")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return node, version


def node(work: Path, opt: str, task_root: Path, user_handler: str, with_layer: bool) -> Runtime:
    exe, version = _node()
    major = version.lstrip("v").split(".")[0]
    runtime_dir = work / "runtime-node"
    runtime_dir.mkdir(exist_ok=True)
    env = {
        "NODE_PATH": f"{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules:"
        f"{runtime_dir}/node_modules",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_nodejs{major}.x",
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": user_handler,
    }
    if with_layer:
        env["NODE_OPTIONS"] = f"-r {NODE_PRELOAD}"
    return Runtime(
        "node",
        f"node {version} + layer-builder's runtime loop",
        (exe, str(NODE_RUNTIME)),
        env,
        (exe,),
    )


#: The ways Sentry enables the Node SDK: `-r` (CommonJS), `--import` (ESM; v10 layers).
NODE_ENABLE = {"require": "-r", "import": "--import"}


def enable_modes(name: str) -> tuple[str, ...]:
    """The ways a layer of runtime ``name`` is enabled; each gets a run of its own."""
    return tuple(NODE_ENABLE) if name == "node" else ("wrapper",)


def enable_label(name: str, mode: str) -> str:
    if name == "node":
        return f"NODE_OPTIONS={NODE_ENABLE[mode]} {NODE_PRELOAD}"
    return f"_HANDLER={PYTHON_WRAPPER}"


def node_enable(runtime: Runtime, mode: str | None) -> None:
    """Set NODE_OPTIONS: Lambda's ES module resolution, then the preload (None: no layer).

    Lambda's Node.js (18 and later) also searches the ``NODE_PATH`` folders when it resolves
    an ES module's bare specifier, after the usual ``node_modules`` lookup from the importer
    (an ``--import`` in NODE_OPTIONS is resolved from the working directory, /var/task);
    plain Node does not, so a resolve hook registered first does the same here.
    """
    options = [f"--import={NODE_ESM_NODE_PATH.as_uri()}"]
    if mode is not None:
        options.append(f"{NODE_ENABLE[mode]} {NODE_PRELOAD}")
    runtime.env["NODE_OPTIONS"] = " ".join(options)


def start_spec(
    name: str, work: Path, opt: str, task_root: Path, user_handler: str, with_layer: bool
) -> Runtime:
    factory = python if name == "python" else node
    return factory(work, opt, task_root, user_handler, with_layer)


def needed_tools(name: str) -> tuple[str, ...]:
    """Executables a runtime needs (checked before anything is mounted)."""
    return (sys.executable,) if name == "python" else (_node()[0],)


def sample_function(name: str) -> Path:
    return SAMPLES / name


@dataclass(frozen=True)
class Foreign:
    """How this machine plays another architecture's Lambda."""

    machine: str  # what `uname -m` answers there, e.g. aarch64
    e_machine: int  # the ELF machine of its binaries
    qemu: str | None  # qemu-<machine> to call through shims; None: binfmt_misc runs them
    label: str


def other_arch_runner(arch: str) -> Foreign | None:
    """How ``arch``'s binaries can run here, or None.

    A qemu-user handler registered with binfmt_misc runs them transparently; otherwise the
    ``qemu-<machine>`` program (Debian's qemu-user) runs them through shims (see
    :func:`~layer_builder.smoke.environment.prepare`).
    """
    machine = MACHINE_NAME.get(arch, arch)
    entry = Path(f"/proc/sys/fs/binfmt_misc/qemu-{machine}")
    try:
        if entry.read_text().startswith("enabled"):
            return Foreign(machine, ELF_MACHINE[arch], None, f"binfmt_misc {entry.name}")
    except (OSError, KeyError):
        pass
    qemu = shutil.which(f"qemu-{machine}")
    if qemu is None or arch not in ELF_MACHINE:
        return None
    return Foreign(machine, ELF_MACHINE[arch], qemu, qemu)


def host_machine() -> str:
    return os.uname().machine
