"""What instrumenting a function means, as pure functions of its configuration.

Split from :mod:`.function`, which reads and updates the function on Lambda: everything
here only looks at the data it is given (a function's snapshot and the registry's newest
release) and says which layers, handler and environment the function should have.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from layer_builder.aws.facts import MAX_LAYERS_PER_FUNCTION, runtime_family
from layer_builder.errors import ArgumentError, FunctionError, RegistryError
from layer_builder.registry.reader import LayerRelease
from layer_builder.types import Family

#: The wrapper the Python layer ships; it calls the handler named in SENTRY_INITIAL_HANDLER.
PYTHON_WRAPPER_HANDLER = "sentry_sdk.integrations.init_serverless_sdk.sentry_lambda_handler"
#: The auto-init module the Node layer ships, loaded through NODE_OPTIONS.
NODE_AUTO_MODULE = "@sentry/aws-serverless/awslambda-auto"
# The same module under the legacy path Sentry's layer build keeps (a symlink in the layer).
_NODE_CURRENT_MODULES = (NODE_AUTO_MODULE, "@sentry/aws-serverless/dist/awslambda-auto")
# Older Node layers (SDK v7) shipped it under another name, which a new layer lacks.
_NODE_LEGACY_MODULES = ("@sentry/serverless/dist/awslambda-auto",)
_NODE_AUTO_MODULES = _NODE_CURRENT_MODULES + _NODE_LEGACY_MODULES
#: The three NODE_OPTIONS values Sentry's integration sets, by layer (see node_preload).
NODE_PRELOAD_V7 = f"-r {_NODE_LEGACY_MODULES[0]}"
NODE_PRELOAD_REQUIRE = f"-r {NODE_AUTO_MODULE}"
NODE_PRELOAD_IMPORT = f"--import {NODE_AUTO_MODULE}"
#: Layer versions of Sentry's own Node layer names up to which it preloads with `-r`.
_REQUIRE_UP_TO: dict[str, int | None] = {
    "SentryNodeServerlessSDK": None,  # every version (v8 SDKs from version 236 on)
    "SentryNodeServerlessSDKv8": None,
    "SentryNodeServerlessSDKv9": None,
    "SentryNodeServerlessSDKv10": 13,  # --import from version 14 on
}

DSN_VAR = "SENTRY_DSN"
TRACES_VAR = "SENTRY_TRACES_SAMPLE_RATE"
INITIAL_HANDLER_VAR = "SENTRY_INITIAL_HANDLER"
NODE_OPTIONS_VAR = "NODE_OPTIONS"
RESTORE_VAR = "SENTRY_LAYER_BUILDER_RESTORE"
#: Set when enabling a function that has no sample rate yet, as Sentry's own integration does.
DEFAULT_TRACES_SAMPLE_RATE = "1.0"
#: Lambda's limit on the whole environment, counted here as its compact JSON (an upper bound).
MAX_ENVIRONMENT_BYTES = 4096

_LAYER_ARN_RE = re.compile(
    r"^arn:[a-z0-9-]+:lambda:[a-z0-9-]+:(?P<account>\d{12}):layer:(?P<name>[A-Za-z0-9_-]+)"
    r":(?P<version>\d+)$"
)
# Our preload in NODE_OPTIONS: `-r MOD`, `--require MOD`, `--require=MOD` (CommonJS) or
# `--import MOD`, `--import=MOD` (ESM), for any of our auto-init modules, by package name or
# by the layer's path (/opt/nodejs/node_modules/..., as Sentry's integration once set it).
_NODE_PRELOAD_RE = re.compile(
    r"(?:^|\s+)(?P<flag>--require[=\s]\s*|-r\s+|--import[=\s]\s*)"
    r"(?:/opt/nodejs/node_modules/)?(?P<mod>"
    + "|".join(re.escape(m) for m in _NODE_AUTO_MODULES)
    + r")(?:\.js)?(?=\s|$)"
)
# A major-version marker inside a layer name (SentryNodeServerlessSDKv8-arm64).
_MAJOR_MARK_RE = re.compile(r"v\d+(?=$|[-_])")
# An architecture suffix of a per-architecture layer name (SentryPythonServerlessSDK-arm64).
_ARCH_SUFFIX_RE = re.compile(r"[-_](?:arm64|aarch64|x86_64|x86-64|amd64)$", re.IGNORECASE)


@dataclass(frozen=True)
class Snapshot:
    name: str
    arn: str
    runtime: str
    architecture: str
    handler: str
    layers: tuple[str, ...]
    env: dict[str, str]
    revision_id: str | None
    update_status: str
    update_reason: str
    state: str


@dataclass(frozen=True)
class Wanted:
    handler: str
    layers: tuple[str, ...]
    env: dict[str, str]
    ours: str | None


def validate_dsn(dsn: str) -> str:
    """The DSN, stripped; ArgumentError (without echoing it) unless it looks like a Sentry DSN."""
    value = dsn.strip()
    if not re.match(r"^https?://[^/@\s]+@[^/@\s]+/(?:[^\s]*/)?\d+/?$", value):
        raise ArgumentError("--dsn: not a Sentry DSN (expected https://PUBLIC_KEY@HOST/PROJECT_ID)")
    return value


def validate_sample_rate(rate: float | str | None) -> str | None:
    """The rate as the SDK reads it (``"0.25"``); ArgumentError unless 0 <= rate <= 1."""
    if rate is None:
        return None
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ArgumentError(f"--traces-sample-rate: {rate!r} is not a number from 0 to 1")
    return repr(value)


# --- pure helpers: everything below only looks at the data it is given --------------------


def family(snap: Snapshot) -> Family:
    family = runtime_family(snap.runtime)
    if family is None:
        what = f"runtime {snap.runtime}" if snap.runtime else "a container image"
        raise FunctionError(
            f"function {snap.name}: {what} is not supported "
            "(Sentry layers exist for python and nodejs runtimes)"
        )
    return family


def layer_parts(arn: str) -> tuple[str, str, int] | None:
    m = _LAYER_ARN_RE.match(arn)
    return (m["account"], m["name"], int(m["version"])) if m else None


def _line(name: str) -> str:
    """A layer name without its major-version marker and architecture suffix."""
    return _MAJOR_MARK_RE.sub("", _ARCH_SUFFIX_RE.sub("", name))


def is_ours(arn: str, release: LayerRelease) -> bool:
    """Published by the registry's account under one of its layer names, any version.

    The account decides: a layer of another account with the same name is someone else's.
    Names of the same line count too: another major (SentryNodeServerlessSDKv7 for v8) or
    architecture (SentryPythonServerlessSDK-arm64 from the per-architecture layout), so an
    upgrade replaces them instead of attaching a second SDK.
    """
    parts = layer_parts(arn)
    if parts is None:
        return False
    account, name, _ = parts
    if account != release.account_number:
        return False
    return name in release.layer_names or _line(name) in {_line(n) for n in release.layer_names}


def attached(layers: tuple[str, ...], release: LayerRelease) -> str | None:
    return next((arn for arn in layers if is_ours(arn, release)), None)


def is_older(attached: str, latest: str) -> bool:
    a, b = layer_parts(attached), layer_parts(latest)
    if a is None or b is None or a[:2] != b[:2]:
        return attached != latest  # another account or layer name (e.g. architecture)
    return a[2] < b[2]


def latest_arn(snap: Snapshot, release: LayerRelease, region: str) -> str:
    """The newest layer for the function's region and architecture.

    A release with no layer serving the function's architecture is refused: attaching the
    other architecture's layer would give the function an extension it cannot execute.
    """
    if not any(layer.serves(snap.architecture) for layer in release.layers):
        raise FunctionError(
            f"function {snap.name} is {snap.architecture} and no layer of "
            f"{release.canonical} {release.sdk_version} serves {snap.architecture} (it serves: "
            f"{', '.join(release.architectures)}); refusing to attach a layer whose extension "
            "cannot run there"
        )
    try:
        return release.arn(region, snap.architecture)
    except RegistryError as exc:
        raise FunctionError(f"function {snap.name}: {exc}") from None


def with_layer(snap: Snapshot, latest: str, release: LayerRelease) -> tuple[str, ...]:
    """Ours replaced in place (or appended); the user's layers keep their order."""
    out: list[str] = []
    placed = False
    for arn in snap.layers:
        if is_ours(arn, release):
            if not placed:
                out.append(latest)
                placed = True
            continue  # a second copy of ours would shadow the first
        out.append(arn)
    if not placed:
        out.append(latest)
    if len(out) > MAX_LAYERS_PER_FUNCTION:
        raise FunctionError(
            f"function {snap.name}: already has {len(snap.layers)} layers, the most Lambda "
            f"allows is {MAX_LAYERS_PER_FUNCTION}; remove one to make room for {release.canonical}"
        )
    return tuple(out)


def node_preload(layer_name: str, layer_version: int | None) -> str:
    """The NODE_OPTIONS preload Sentry's integration sets for that Node layer version.

    Sentry's v7 layers carry only the old module, loaded with ``-r``; its v8 and v9 layers,
    and its v10 layer up to version 13, load ``awslambda-auto`` with ``-r`` (CommonJS); from
    v10's version 14 on, and for every other layer, with ``--import`` (ESM, which loads
    CommonJS handlers too). A per-architecture suffix (``-arm64``) does not change the rule.
    """
    name = _ARCH_SUFFIX_RE.sub("", layer_name)
    if name == "SentryNodeServerlessSDKv7" or (
        name == "SentryNodeServerlessSDK" and layer_version is not None and layer_version <= 235
    ):
        return NODE_PRELOAD_V7
    if name in _REQUIRE_UP_TO:
        limit = _REQUIRE_UP_TO[name]
        if limit is None or (layer_version is not None and layer_version <= limit):
            return NODE_PRELOAD_REQUIRE
    return NODE_PRELOAD_IMPORT


def preload_for(latest: str) -> str:
    """:func:`node_preload` for a layer version ARN."""
    parts = layer_parts(latest)
    return NODE_PRELOAD_IMPORT if parts is None else node_preload(parts[1], parts[2])


def _preload_key(flag: str, module: str) -> tuple[str, bool]:
    """What a preload token does: (require or import, the v7 module or the current one)."""
    kind = "import" if flag.strip().startswith("--import") else "require"
    return kind, module in _NODE_LEGACY_MODULES


def node_requires_ours(options: str) -> bool:
    """NODE_OPTIONS preloads our current auto-init module (``-r`` or ``--import``)."""
    return any(m["mod"] in _NODE_CURRENT_MODULES for m in _NODE_PRELOAD_RE.finditer(options))


def without_node_require(options: str) -> str:
    """NODE_OPTIONS without any preload of ours (``-r``/``--require``/``--import``)."""
    return _NODE_PRELOAD_RE.sub("", options).strip()


def node_options_with(options: str, preload: str) -> str | None:
    """NODE_OPTIONS loading the SDK with ``preload``; None when it already does just that.

    One token of ours that does what ``preload`` does (same flag kind, same module, however
    spelled) stays as it is; otherwise every token of ours goes and ``preload`` is appended,
    after the user's own flags, which stay as they are.
    """
    ours = list(_NODE_PRELOAD_RE.finditer(options))
    want = _NODE_PRELOAD_RE.search(preload)
    assert want is not None, preload
    if len(ours) == 1 and _preload_key(ours[0]["flag"], ours[0]["mod"]) == _preload_key(
        want["flag"], want["mod"]
    ):
        return None
    rest = without_node_require(options) if ours else options.strip()
    return f"{rest} {preload}".strip()


def wired(snap: Snapshot, family: Family) -> bool:
    if family == "python":
        return snap.handler == PYTHON_WRAPPER_HANDLER and bool(snap.env.get(INITIAL_HANDLER_VAR))
    return node_requires_ours(snap.env.get(NODE_OPTIONS_VAR, ""))


def load_record(snap: Snapshot) -> dict[str, Any]:
    """The restore record ``enable`` left on the function (empty if there is none).

    ``env``: each variable's value before the first enable (``null``: absent); ``set``: a
    short digest of the value enable set, so ``disable`` can tell whether the user changed
    it since (records from before ``set`` existed have none); ``handler``: the handler
    before enable, a fallback only.
    """
    raw = snap.env.get(RESTORE_VAR)
    if raw is None:
        return {"env": {}, "set": {}}
    try:
        record = json.loads(raw)
        ok = (
            isinstance(record, dict)
            and isinstance(record.get("env", {}), dict)
            and isinstance(record.get("set", {}), dict)
        )
    except ValueError:
        ok = False
    if not ok:
        raise FunctionError(
            f"function {snap.name}: {RESTORE_VAR} is not a record this tool wrote; fix or remove it"
        )
    record.setdefault("env", {})
    record.setdefault("set", {})
    return dict(record)


def value_digest(value: str) -> str:
    """What the record keeps of a value enable set: enough to recognise it, not the DSN."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def instrumented(
    snap: Snapshot,
    family: Family,
    dsn: str,
    rate: str | None,
    preload: str = NODE_PRELOAD_IMPORT,
) -> tuple[str, dict[str, str]]:
    """The handler and environment ``enable`` gives the function (``preload``: Node's)."""
    env = dict(snap.env)
    record = load_record(snap)
    handler = snap.handler
    wanted: dict[str, str] = {DSN_VAR: dsn}
    if rate is not None:
        wanted[TRACES_VAR] = rate
    elif TRACES_VAR not in env:
        wanted[TRACES_VAR] = DEFAULT_TRACES_SAMPLE_RATE
    if family == "python":
        if handler != PYTHON_WRAPPER_HANDLER:
            record.setdefault("handler", handler)
            wanted[INITIAL_HANDLER_VAR] = handler
            handler = PYTHON_WRAPPER_HANDLER
        elif not env.get(INITIAL_HANDLER_VAR):
            raise FunctionError(
                f"function {snap.name}: the handler is already Sentry's wrapper "
                f"but {INITIAL_HANDLER_VAR} is not set, so the original handler "
                f"is unknown; set {INITIAL_HANDLER_VAR} and try again"
            )
    else:
        options = node_options_with(env.get(NODE_OPTIONS_VAR, ""), preload)
        if options is not None:
            wanted[NODE_OPTIONS_VAR] = options
    saved: dict[str, str | None] = record["env"]
    digests: dict[str, str] = record["set"]
    for key, value in wanted.items():
        if env.get(key) != value:
            # The first enable's "before" is the one disable returns to.
            saved.setdefault(key, env.get(key))
            env[key] = value
            digests[key] = value_digest(value)
    if not digests:
        del record["set"]
    if saved or "handler" in record:
        env[RESTORE_VAR] = json.dumps(record, separators=(",", ":"), sort_keys=True)
    return handler, env


def updated_env(snap: Snapshot, family: Family, preload: str) -> dict[str, str]:
    """The environment ``update`` leaves: as it is, except that a Node preload of ours is
    switched to the one the new layer version needs (the one ``enable`` would set for it)."""
    env = dict(snap.env)
    options = env.get(NODE_OPTIONS_VAR, "")
    if family != "node" or _NODE_PRELOAD_RE.search(options) is None:
        return env  # not loaded through NODE_OPTIONS: the user's choice, left alone
    new = node_options_with(options, preload)
    if new is None:
        return env
    env[NODE_OPTIONS_VAR] = new
    if RESTORE_VAR in env:
        record = load_record(snap)
        if NODE_OPTIONS_VAR in record["set"]:
            record["set"][NODE_OPTIONS_VAR] = value_digest(new)
            env[RESTORE_VAR] = json.dumps(record, separators=(",", ":"), sort_keys=True)
    return env


def runtime_warning(snap: Snapshot, release: LayerRelease) -> str | None:
    """Why the layer may not work in this function's runtime, or None.

    Lambda attaches a layer whatever its compatible runtimes say (they only filter
    ListLayers and ListLayerVersions), so this is a warning, not a refusal.
    """
    listed = release.compatible_runtimes
    if not listed or snap.runtime in listed:
        return None
    return (
        f"function {snap.name} runs {snap.runtime}, which {release.canonical} "
        f"{release.sdk_version} does not list among its compatible runtimes "
        f"({', '.join(listed)}); Lambda attaches the layer anyway, but its SDK may not load"
    )


def restored(snap: Snapshot) -> tuple[str, dict[str, str]]:
    """Undo ``enable`` on the function as it is now: the current state is the truth.

    - The handler comes back from the current ``SENTRY_INITIAL_HANDLER`` (the user may have
      pointed it elsewhere since), and only while the handler is still our wrapper.
    - ``NODE_OPTIONS`` loses only our ``-r``/``--require``/``--import`` token; flags the user
      added stay.
    - A variable enable set goes back to its value from before enable only while it still
      holds what enable set; one the user changed or removed since is theirs and stays.
    - Variables enable never touched stay, and the record is removed.
    """
    env = dict(snap.env)
    handler = snap.handler
    record = load_record(snap)
    digests: dict[str, str] = record["set"]
    env.pop(RESTORE_VAR, None)
    done = {NODE_OPTIONS_VAR}  # only our token leaves it, below
    if handler == PYTHON_WRAPPER_HANDLER:
        original = env.get(INITIAL_HANDLER_VAR) or record.get("handler")
        if not original:
            raise FunctionError(
                f"function {snap.name}: the handler is Sentry's wrapper but "
                f"{INITIAL_HANDLER_VAR} is not set; set the original handler "
                "yourself"
            )
        handler = str(original)
        # Consumed: its value now lives in the handler itself.
        _put_back(env, INITIAL_HANDLER_VAR, record["env"].get(INITIAL_HANDLER_VAR))
        done.add(INITIAL_HANDLER_VAR)
    for key, old in record["env"].items():
        if key in done or key not in env:
            continue  # handled here, or removed by the user since
        if key in digests and value_digest(env[key]) != digests[key]:
            continue  # changed by the user after enable: theirs now
        _put_back(env, key, old)
    options = env.get(NODE_OPTIONS_VAR)
    if options is not None and _NODE_PRELOAD_RE.search(options):
        rest = without_node_require(options)
        if rest:
            env[NODE_OPTIONS_VAR] = rest
        else:
            env.pop(NODE_OPTIONS_VAR)
    return handler, env


def _put_back(env: dict[str, str], key: str, old: object) -> None:
    if old is None:
        env.pop(key, None)
    else:
        env[key] = str(old)


def check_env_size(name: str, env: Mapping[str, str]) -> None:
    size = len(json.dumps(dict(env), separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_ENVIRONMENT_BYTES:
        raise FunctionError(
            f"function {name}: the environment would be {size} bytes, over "
            f"Lambda's {MAX_ENVIRONMENT_BYTES}-byte limit; remove some variables"
        )
