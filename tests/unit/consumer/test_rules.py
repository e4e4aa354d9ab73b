"""What `function enable` writes and refuses, pinned exactly: the restore record left on the
function (its JSON, its digests), the NODE_OPTIONS it builds, the records it will not read,
the argument checks and the refusals' texts."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from layer_builder.consumer.rules import (
    DSN_VAR,
    INITIAL_HANDLER_VAR,
    NODE_OPTIONS_VAR,
    PYTHON_WRAPPER_HANDLER,
    RESTORE_VAR,
    TRACES_VAR,
    Snapshot,
    attached,
    check_env_size,
    family,
    instrumented,
    is_older,
    is_ours,
    latest_arn,
    load_record,
    restored,
    validate_dsn,
    validate_sample_rate,
    value_digest,
    wired,
    with_layer,
)
from layer_builder.errors import ArgumentError, FunctionError
from layer_builder.registry.release import LayerRelease, ReleaseLayer

SENTRY = "943013980633"
REGION = "eu-west-1"
DSN = "https://0123abcd@o1.ingest.sentry.io/42"
PRELOAD = "--import @sentry/aws-serverless/awslambda-auto"  # enable's default


def snap(runtime: str = "nodejs20.x", handler: str = "index.handler", **env: str) -> Snapshot:
    return Snapshot(
        name="fn",
        arn=f"arn:aws:lambda:{REGION}:111122223333:function:fn",
        runtime=runtime,
        architecture="x86_64",
        handler=handler,
        layers=(),
        env=dict(env),
        revision_id=None,
        update_status="Successful",
        update_reason="",
        state="Active",
    )


def digest(value: str) -> str:
    # The record keeps the first 12 hex digits of the value's sha256: records written by
    # earlier releases must still be recognised by `disable`.
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def refusal(error: type[Exception], call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=".") as exc:
        call()
    return str(exc.value)


# ---------------------------------------------------------------- the record enable leaves


def test_enabling_python_records_the_handler_and_what_was_there_as_sorted_compact_json() -> None:
    handler, env = instrumented(snap("python3.12", "app.handler", KEEP="1"), "python", DSN, None)
    assert handler == PYTHON_WRAPPER_HANDLER
    assert env == {
        "KEEP": "1",
        DSN_VAR: DSN,
        TRACES_VAR: "1.0",
        INITIAL_HANDLER_VAR: "app.handler",
        RESTORE_VAR: (
            '{"env":{"SENTRY_DSN":null,"SENTRY_INITIAL_HANDLER":null,'
            '"SENTRY_TRACES_SAMPLE_RATE":null},"handler":"app.handler",'
            f'"set":{{"SENTRY_DSN":"{digest(DSN)}","SENTRY_INITIAL_HANDLER":'
            f'"{digest("app.handler")}","SENTRY_TRACES_SAMPLE_RATE":"{digest("1.0")}"}}}}'
        ),
    }


def test_enabling_node_without_node_options_sets_only_our_preload() -> None:
    _, env = instrumented(snap(), "node", DSN, "0.5")
    assert {k: v for k, v in env.items() if k != RESTORE_VAR} == {
        DSN_VAR: DSN,
        TRACES_VAR: "0.5",
        NODE_OPTIONS_VAR: PRELOAD,
    }


def test_our_preload_follows_the_users_flags_after_one_space() -> None:
    _, env = instrumented(snap(NODE_OPTIONS="--max-old-space-size=256  "), "node", DSN, None)
    assert env[NODE_OPTIONS_VAR] == f"--max-old-space-size=256 {PRELOAD}"


def test_a_function_wired_by_hand_gets_no_record() -> None:
    # Everything enable wants is already there: nothing changes, nothing to restore later.
    before = {DSN_VAR: DSN, TRACES_VAR: "0.5", NODE_OPTIONS_VAR: PRELOAD}
    assert instrumented(snap(**before), "node", DSN, None) == ("index.handler", before)


def test_an_old_record_is_rewritten_in_the_current_form_even_when_nothing_changes() -> None:
    # A record from before `set` existed, holding only the handler: kept, re-encoded, and
    # still without `set` since enable changes nothing this time.
    old = '{"handler": "app.handler", "env": {}}'
    env = {INITIAL_HANDLER_VAR: "app.handler", DSN_VAR: DSN, TRACES_VAR: "1.0", RESTORE_VAR: old}
    handler, after = instrumented(snap("python3.12", PYTHON_WRAPPER_HANDLER, **env), "python",
                                  DSN, None)  # fmt: skip
    assert (handler, after) == (
        PYTHON_WRAPPER_HANDLER,
        {**env, RESTORE_VAR: '{"env":{},"handler":"app.handler"}'},
    )


def test_the_wrapper_without_the_original_handler_is_refused() -> None:
    bare = snap("python3.12", PYTHON_WRAPPER_HANDLER)
    assert refusal(FunctionError, lambda: instrumented(bare, "python", DSN, None)) == (
        "function fn: the handler is already Sentry's wrapper but SENTRY_INITIAL_HANDLER is "
        "not set, so the original handler is unknown; set SENTRY_INITIAL_HANDLER and try again"
    )


# ---------------------------------------------------------------- reading the record back


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1]", '{"env": [], "set": {}}', '{"env": {}, "set": []}', '{"env": "x"}'],
)
def test_a_record_this_tool_did_not_write_is_refused(raw: str) -> None:
    assert refusal(FunctionError, lambda: load_record(snap(**{RESTORE_VAR: raw}))) == (
        "function fn: SENTRY_LAYER_BUILDER_RESTORE is not a record this tool wrote; "
        "fix or remove it"
    )


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ('{"handler": "app.h"}', {"env": {}, "set": {}, "handler": "app.h"}),
        ('{"env": {"A": null}}', {"env": {"A": None}, "set": {}}),
        ('{"set": {"A": "abc"}}', {"env": {}, "set": {"A": "abc"}}),
    ],
)
def test_a_record_missing_env_or_set_reads_as_empty_ones(raw: str, read: dict) -> None:  # type: ignore[type-arg]
    assert load_record(snap(**{RESTORE_VAR: raw})) == read


def test_disable_restores_every_variable_after_one_the_user_changed() -> None:
    record = json.dumps(
        {"env": {DSN_VAR: None, TRACES_VAR: None},
         "set": {DSN_VAR: digest(DSN), TRACES_VAR: digest("1.0")}}
    )  # fmt: skip
    env = {DSN_VAR: "https://their@o2.ingest.sentry.io/7", TRACES_VAR: "1.0", RESTORE_VAR: record}
    assert restored(snap(**env)) == ("index.handler", {DSN_VAR: env[DSN_VAR]})


# ---------------------------------------------------------------- refusals and limits


def test_the_environment_limit_is_4096_bytes_of_compact_json() -> None:
    # {"A":"..."} is 8 bytes of JSON around the value.
    check_env_size("fn", {"A": "x" * 4088})
    assert refusal(FunctionError, lambda: check_env_size("fn", {"A": "x" * 4089})) == (
        "function fn: the environment would be 4097 bytes, over Lambda's 4096-byte limit; "
        "remove some variables"
    )


@pytest.mark.parametrize(
    ("runtime", "what"), [("java21", "runtime java21"), ("", "a container image")]
)
def test_an_unsupported_function_is_named(runtime: str, what: str) -> None:
    assert refusal(FunctionError, lambda: family(snap(runtime))) == (
        f"function fn: {what} is not supported (Sentry layers exist for python and nodejs runtimes)"
    )


def release(*archs: str) -> LayerRelease:
    layers = tuple(
        ReleaseLayer(f"SentryNodeServerlessSDKv8-{a}", (a,), {REGION: "3"}) for a in archs
    )
    return LayerRelease("aws-layer:node", "8.1.0", SENTRY, ("nodejs20.x",), layers, "test")


@pytest.mark.parametrize(
    ("arch", "archs", "serves"),
    [("arm64", ("x86_64",), "x86_64"), ("riscv64", ("x86_64", "arm64"), "x86_64, arm64")],
)
def test_an_architecture_no_layer_serves_is_refused(
    arch: str, archs: tuple[str, ...], serves: str
) -> None:
    fn = dataclasses.replace(snap(), architecture=arch)
    assert refusal(FunctionError, lambda: latest_arn(fn, release(*archs), REGION)) == (
        f"function fn is {arch} and no layer of aws-layer:node 8.1.0 serves {arch} (it serves: "
        f"{serves}); refusing to attach a layer whose extension cannot run there"
    )


def test_a_layer_entry_that_is_no_layer_arn_is_the_users() -> None:
    rel = release("x86_64")
    odd = f"arn:aws:lambda:{REGION}:{SENTRY}:layer:SentryNodeServerlessSDKv8-x86_64"  # no version
    latest = f"{odd}:3"
    assert is_ours(odd, rel) is False
    assert with_layer(dataclasses.replace(snap(), layers=(odd,)), latest, rel) == (odd, latest)


def test_a_dsn_that_is_not_one_is_refused_without_echoing_it() -> None:
    assert refusal(ArgumentError, lambda: validate_dsn("https://o1.ingest.sentry.io/42")) == (
        "--dsn: not a Sentry DSN (expected https://PUBLIC_KEY@HOST/PROJECT_ID)"
    )


@pytest.mark.parametrize(("rate", "read"), [(0, "0.0"), ("1", "1.0"), ("0.25", "0.25")])
def test_sample_rates_from_0_to_1_inclusive(rate: object, read: str) -> None:
    assert validate_sample_rate(rate) == read  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", ["abc", "-0.01", "1.01", "nan"])
def test_other_sample_rates_are_refused(rate: str) -> None:
    assert refusal(ArgumentError, lambda: validate_sample_rate(rate)) == (
        f"--traces-sample-rate: {rate!r} is not a number from 0 to 1"
    )


# ------------------------------------------------------------------------------------------------
# "Is this layer ours" must look at the account: a function's layer from another account
# with a similar (older-major) name is the user's, and must be neither replaced nor removed.


OTHER = "111122223333"


def universal_release() -> LayerRelease:
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
    rel = universal_release()
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv7", 3), rel) is True
    assert is_ours(arn(OTHER, "SentryNodeServerlessSDKv7", 3), rel) is False
    assert is_ours(arn(SENTRY, "SomethingElse", 3), rel) is False
    # The same name in another account is someone else's too.
    assert is_ours(arn(SENTRY, "SentryNodeServerlessSDKv8", 12), rel) is True
    assert is_ours(arn(OTHER, "SentryNodeServerlessSDKv8", 12), rel) is False


def test_someone_elses_similar_layer_is_kept_in_place() -> None:
    rel = universal_release()
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
    rel = universal_release()
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
