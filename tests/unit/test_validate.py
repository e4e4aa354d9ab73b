"""layer_builder.validate: the one way YAML documents are loaded and checked, and the one
"did you mean" hint. Each error is one ConfigError naming the file, the key path and the line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import ConfigError
from layer_builder.validate import (
    MAX_BYTES,
    MAX_DEPTH,
    Reader,
    closest,
    did_you_mean,
    kind,
    parse_yaml,
    read_yaml,
)

DOC = "doc.yml"


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_yaml(text, DOC)
    assert exc.value.path == DOC and exc.value.key is None
    return str(exc.value)


# --- loading ------------------------------------------------------------------------------


def test_a_plain_document_loads_as_safe_load_would() -> None:
    text = "a: 1\nb: [x, 2.5, true]\nc: {d: null}\n"
    assert parse_yaml(text, DOC) == {"a": 1, "b": ["x", 2.5, True], "c": {"d": None}}


def test_a_duplicate_key_names_both_lines() -> None:
    message = refused("name: a\nother: 1\nname: b\n")
    assert (
        message == "doc.yml: invalid YAML: line 3, column 1: duplicate key 'name' (lines 1 and 3)"
    )


def test_a_duplicate_key_in_a_nested_mapping_is_found_too() -> None:
    message = refused("top:\n  k: 1\n  k: 2\n")
    assert "line 3, column 3: duplicate key 'k' (lines 2 and 3)" in message


def test_a_duplicate_after_an_unhashable_key_is_still_found() -> None:
    assert "duplicate key 'k' (lines 1 and 1)" in refused("{[1]: a, k: 1, k: 2}\n")


def test_the_same_key_in_two_mappings_is_not_a_duplicate() -> None:
    assert parse_yaml("a: {k: 1}\nb: {k: 2}\n", DOC) == {"a": {"k": 1}, "b": {"k": 2}}


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_is_allowed_up_to_the_limit_and_refused_beyond_it() -> None:
    assert parse_yaml(nested(MAX_DEPTH), DOC) is not None
    assert refused(nested(MAX_DEPTH + 1)) == (
        f"doc.yml: invalid YAML: line 1, column {MAX_DEPTH + 1}: "
        f"nested deeper than {MAX_DEPTH} levels"
    )


def test_depth_counts_down_again_after_each_sibling() -> None:
    # [[0, <63 levels>]]: the scalar 0 closes at depth 3, its sibling then reaches 65.
    message = refused("[[0, " + nested(MAX_DEPTH - 1) + "]]")
    assert message.endswith(f"nested deeper than {MAX_DEPTH} levels")


def test_running_out_of_stack_below_the_limit_is_still_one_error() -> None:
    # A caller deep in its own stack (or a smaller recursion limit) must not get a traceback.
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 60)
    try:
        message = refused(nested(MAX_DEPTH - 4))
    finally:
        sys.setrecursionlimit(limit)
    assert message == "doc.yml: invalid YAML: nested too deeply"


def test_aliases_are_refused_unless_asked_for() -> None:
    text = "base: &b {x: 1}\nother: *b\n"
    message = refused(text)
    assert message == (
        "doc.yml: invalid YAML: line 2, column 8: alias *b (anchors and aliases are not supported)"
    )
    assert parse_yaml(text, DOC, aliases=True) == {"base": {"x": 1}, "other": {"x": 1}}


def test_read_yaml_refuses_aliases_unless_asked_for(tmp_path: Path) -> None:
    path = tmp_path / ".craft.yml"
    path.write_text("base: &b {x: 1}\nother: *b\n")
    with pytest.raises(ConfigError, match=r"line 2, column 8: alias \*b"):
        read_yaml(path)
    assert read_yaml(path, aliases=True) == {"base": {"x": 1}, "other": {"x": 1}}


@pytest.mark.parametrize("number", [".nan", ".inf", "-.inf", ".NaN"])
def test_a_number_that_is_not_finite_is_refused(number: str) -> None:
    assert refused(f"x: 1\ny: {number}\n").endswith(
        f"line 2, column 4: {number} is not a finite number"
    )


def test_a_syntax_error_is_one_line_with_its_position() -> None:
    message = refused("a: [1, 2\n")
    assert message.startswith("doc.yml: invalid YAML: line ")
    assert "\n" not in message


def test_read_yaml_reads_a_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_bytes("label: Relay für Lambda\n".encode())
    assert read_yaml(path) == {"label": "Relay für Lambda"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "{path}: manifest not found"),
        (b"a: \xff\n", "{path}: not UTF-8 text: "),
        (b"#" * (MAX_BYTES + 1), f"{{path}}: over {MAX_BYTES:,} bytes; not a manifest"),
    ],
    ids=["missing", "not-utf8", "too-large"],
)
def test_read_yaml_refuses_a_file_it_cannot_use(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "m.yml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        read_yaml(path, "manifest")
    assert str(exc.value).startswith(expected.format(path=path))


def test_read_yaml_calls_it_a_file_unless_told_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        read_yaml(tmp_path / "gone.yml")
    assert str(exc.value) == f"{tmp_path / 'gone.yml'}: file not found"


def test_read_yaml_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": cannot read: "):
        read_yaml(tmp_path)


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"a: 1\n" + b"#" * (MAX_BYTES - 5))
    assert read_yaml(path) == {"a": 1}


# --- suggesting ---------------------------------------------------------------------------


def test_did_you_mean_names_the_closest_choice() -> None:
    assert did_you_mean("licence", ["name", "license"]) == "; did you mean 'license'?"
    assert closest("eu-wset-1", ["us-east-1", "eu-west-1"]) == "eu-west-1"


def test_did_you_mean_is_empty_or_the_fallback_when_nothing_is_close() -> None:
    assert closest("zzz", ["license"]) is None
    assert did_you_mean("zzz", ["license"]) == ""
    assert did_you_mean("zzz", ["a", "b"], otherwise="; known: a, b") == "; known: a, b"


def test_did_you_mean_takes_another_separator_and_any_choices() -> None:
    assert did_you_mean("x86", {"x86_64": 1}, sep=": ") == ": did you mean 'x86_64'?"
    assert did_you_mean("1", [1, 2]) == "; did you mean '1'?"


# --- checking -----------------------------------------------------------------------------


@pytest.fixture
def r(tmp_path: Path) -> Reader:
    return Reader(tmp_path / "c.yml")


def message_of(r: Reader, check: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        check()
    return str(exc.value).removeprefix(f"{r.path}: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "nothing (null)"), (True, "a boolean"), (1, "a number"), (1.5, "a number"),
     ("s", "a string"), ([], "a list"), ({}, "a mapping"), (b"x", "bytes")],
)  # fmt: skip
def test_kind_says_what_a_value_is(value: Any, expected: str) -> None:
    assert kind(value) == expected


def test_mapping_checks_unknown_and_required_keys(r: Reader) -> None:
    allowed = {"license": True, "name": False}
    assert r.mapping({"license": "MIT"}, "sdk", allowed) == {"license": "MIT"}
    assert message_of(r, lambda: r.mapping({"licence": 1}, "sdk", allowed)) == (
        "sdk.licence: unknown key; did you mean 'license'?"
    )
    assert message_of(r, lambda: r.mapping({"name": "x"}, "", allowed)) == (
        "license: missing required key"
    )
    assert message_of(r, lambda: r.mapping({1: "x"}, "", allowed)) == "1: unknown key"
    assert message_of(r, lambda: r.mapping([1], "", allowed)) == "expected a mapping, got a list"


def test_check_keys_can_list_the_allowed_keys(r: Reader) -> None:
    assert message_of(r, lambda: r.check_keys({"fil": 1}, "files.arm64", ("file", "sha256"),
                                              listing=True)) == (
        "files.arm64.fil: unknown key; did you mean 'file'? (allowed: file, sha256)"
    )  # fmt: skip


def test_section_is_a_mapping_that_must_be_there(r: Reader) -> None:
    assert r.section({"a": 1}, "source") == {"a": 1}
    assert message_of(r, lambda: r.section(None, "source")) == "source: is required"
    assert message_of(r, lambda: r.section("x", "source")) == "source: must be a mapping"
    assert message_of(r, lambda: r.section("x", "")) == "must be a mapping"


def test_typed_refuses_a_boolean_for_a_number(r: Reader) -> None:
    assert r.typed(3, "n", int, "a whole number") == 3
    assert r.typed(True, "b", bool, "true or false") is True
    assert r.typed(True, "b", (int, bool), "a number or a boolean") is True
    assert message_of(r, lambda: r.typed(True, "n", int, "a whole number")) == (
        "n: expected a whole number, got a boolean"
    )
    assert message_of(r, lambda: r.typed("3", "n", (int, float), "a number")) == (
        "n: expected a number, got a string"
    )


def test_string_and_string_list(r: Reader) -> None:
    assert r.string_list(["a", "b"], "l") == ("a", "b")
    assert message_of(r, lambda: r.string("  ", "s")) == "s: must not be empty"
    assert message_of(r, lambda: r.string_list(["a", 2], "l")) == (
        "l[1]: expected a string, got a number"
    )


def test_field_is_a_required_string_with_a_hint_to_quote_numbers(r: Reader) -> None:
    assert r.field({"version": "25.10"}, "version") == "25.10"
    assert message_of(r, lambda: r.field({}, "url", prefix="source.")) == "source.url: is required"
    assert message_of(r, lambda: r.field({"v": ""}, "v")) == "v: is required"
    assert (
        message_of(r, lambda: r.field({"v": 25.1}, "v")) == 'v: must be a string; quote it: "25.1"'
    )
    assert message_of(r, lambda: r.field({"v": True}, "v")) == "v: must be a string"


def test_choice_suggests_the_closest(r: Reader) -> None:
    assert r.choice("arm64", "arch", ("x86_64", "arm64")) == "arm64"
    assert message_of(r, lambda: r.choice("arm46", "arch", ("x86_64", "arm64"))) == (
        "arch: 'arm46' is not one of x86_64, arm64; did you mean 'arm64'?"
    )


def test_path_in_is_relative_to_the_document(r: Reader) -> None:
    (r.path.parent / "there.txt").write_text("x")
    assert r.path_in("there.txt", "f") == (r.path.parent / "there.txt").resolve()
    missing = (r.path.parent / "nope").resolve()
    assert message_of(r, lambda: r.path_in("nope", "f")) == f"f: {missing} does not exist"
    assert r.path_in("nope", "f", must_exist=False) == missing
