"""With ``CI=true`` every line of output fits 100 columns: long paths, URLs and ARNs are shortened
in the middle (both ends tell which file), then words wrap under the first line; an error stays
one ``error:`` line with indented continuation lines.

``tests/golden/lines-ci-100.txt`` is the expected output byte for byte; regenerate it with
``LB_UPDATE_GOLDEN=1 pytest tests/unit/cli/test_output_width_ci.py`` after a deliberate change.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from layer_builder.cli import main
from layer_builder.cli.output import UI, fit_line
from tests.helpers.paths import GOLDEN as GOLDEN_DIR
from tests.helpers.smoke_layers import make_layer

GOLDEN = GOLDEN_DIR / "lines-ci-100.txt"
DEEP = "/home/runner/work/sentry-layers/sentry-layers/build-output/artifacts/python/3.13/dist"

LINES = [
    ("info", "x86_64: installing sentry-sdk 2.75.0"),
    ("info", f"wrote {DEEP}/sentry-python-serverless-2.75.0-universal.zip (2.9 MB)"),
    ("info", f"  verify: {DEEP}/sentry-python-serverless-2.75.0-universal.zip: ok, 1,234 files"),
    (
        "info",
        "  environment: python3.13 + awslambdaric 4.2.2; layer mounted at /opt (read-only, "
        "private mount namespace, processes as uid 65534; only /tmp writable)",
    ),
    (
        "info",
        "plan: ap-southeast-2 SentryPythonServerlessSDK: reuse "
        "arn:aws:lambda:ap-southeast-2:943013980633:layer:SentryPythonServerlessSDK:123",
    ),
    ("error", f"{DEEP}/configs/sentry-python.yml: license: is 600 characters; Lambda allows 512"),
    (
        "error",
        "GetFunctionConfiguration in eu-wset-1: EndpointConnectionError: Could not connect to "
        'the endpoint URL: "https://lambda.eu-wset-1.amazonaws.com/2015-03-31/functions/f/'
        "configuration\" (eu-wset-1: did you mean 'eu-west-1'?)",
    ),
]


def _render(capsys: pytest.CaptureFixture[str]) -> str:
    ui = UI(terminal=False, width=100)
    for kind, line in LINES:
        getattr(ui, kind)(line)
    out, err = capsys.readouterr()
    return out + err


def test_golden_lines_in_ci(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    text = _render(capsys)
    if os.environ.get("LB_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    # Every error is one error: line; what did not fit continues indented below it.
    assert sum(line.startswith("error: ") for line in lines) == 2
    assert "sentry-python.yml: license:" in text  # the file's name survives the shortening


def test_outside_ci_lines_are_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A developer's terminal or a pipe gets whole lines (grep finds the full path).
    text = _render(capsys)
    assert f"{DEEP}/sentry-python-serverless-2.75.0-universal.zip (2.9 MB)" in text
    assert len(text.splitlines()) == len(LINES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", ["short"]),
        ("a " + "p" * 120, ["a " + "p" * 47 + "..." + "p" * 48]),
        ("  " + "word " * 30, ["  " + "word " * 18 + "word", "      " + "word " * 10 + "word"]),
    ],
)
def test_fit_line(text: str, expected: list[str]) -> None:
    assert fit_line(text, 100) == expected


def _deep_dir(tmp_path: Path) -> Path:
    deep = tmp_path.joinpath(*[f"directory-{i:02d}" for i in range(8)])
    deep.mkdir(parents=True)
    return deep


def test_real_commands_fit_100_columns_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("COLUMNS", raising=False)
    deep = _deep_dir(tmp_path)
    good = make_layer(deep / "sentry-python-serverless-2.75.0-universal.zip")
    bad = deep / "a-layer-with-an-unsafe-member-name-and-a-long-file-name.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("python/../../../escape.py", "")
    config = deep / "sentry-python-with-a-rather-long-config-file-name.yml"
    config.write_text("name: x\nname: y\n")
    runs = [
        (["verify", str(good)], 0),
        (["verify", str(bad)], 2),
        (["build", str(config), "--version", "2.75.0", "--out", str(deep / "dist")], 2),
        (["smoke", str(bad)], 2),
        (["smoke", str(good), "--timeout", "inf"], 2),
        (["smoke", str(good), "--no-baseline"], 0),
    ]
    for argv, code in runs:
        got = main(argv)
        out, err = capsys.readouterr()
        assert code != 0 or got == 0, (argv, err)
        if code:
            assert got == code, (argv, err)
            assert (
                err.startswith("error: ")
                and sum(ln.startswith("error: ") for ln in err.splitlines()) >= 1
            )
        lines = (out + err).splitlines()
        assert lines and max(len(line) for line in lines) <= 100, (argv, lines)
