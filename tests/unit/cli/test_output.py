"""Golden output of the progress lines and the summaries, at 80 and 120 columns.

A log (no terminal) gets plain aligned lines that fit the width; a terminal gets rich
tables. The files under ``tests/golden/`` are the expected output byte for byte; after a
deliberate change of the output, regenerate them with ``LB_UPDATE_GOLDEN=1 pytest
tests/unit/cli/test_output.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest

from layer_builder.build.assemble import BuiltLayer
from layer_builder.cli.build import build_table
from layer_builder.cli.output import UI, fit_columns, shorten
from layer_builder.model import BuildManifest, PublishResult, RegionResult
from tests.helpers.paths import GOLDEN

ACCOUNT = "943013980633"
REGIONS = ["us-east-1", "us-east-2", "eu-west-1", "ap-southeast-2", "eu-central-1", "sa-east-1"]
LAYERS = {"x86_64": "SentryPythonServerlessSDK", "arm64": "SentryPythonServerlessSDK-arm64"}


def region_result(**kw: Any) -> RegionResult:
    # RegionResult names its architecture(s) differently across versions of the contract.
    fields = {f.name for f in dataclasses.fields(RegionResult)}
    arch = kw.pop("arch")
    kw["architectures" if "architectures" in fields else "architecture"] = (
        (arch,) if "architectures" in fields else arch
    )
    return RegionResult(**kw)


def publish_result() -> PublishResult:
    """Six regions x two layers: new, reused, one version ahead, one failure."""
    results = []
    for i, region in enumerate(REGIONS):
        for arch, name in LAYERS.items():
            version: int | None = 13 if region == "eu-west-1" else 12
            status, error = ("new" if i % 2 == 0 else "reused"), None
            if region == "sa-east-1" and arch == "arm64":
                status, version = "failed", None
                error = "ThrottlingException: Rate exceeded (gave up after 3 attempts)"
            arn = f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}" if version else None
            results.append(
                region_result(
                    region=region,
                    arch=arch,
                    layer_name=name,
                    status=status,
                    version=version,
                    arn=arn,
                    seconds=0.4 + i / 10,
                    error=error,
                )
            )
    return PublishResult(account=ACCOUNT, partition="aws", results=tuple(results))


def built_layers(dist: Path) -> list[BuiltLayer]:
    out = []
    for arch, name in LAYERS.items():
        zip_path = dist / f"sentry-python-2.75.0-{arch}.zip"
        manifest = BuildManifest.from_dict(
            {
                "layer_name": name,
                "canonical": "aws-layer:python",
                "version": "2.75.0",
                "architecture": arch,
                "compatible_runtimes": ["python3.9", "python3.13"],
                "description": "Sentry Python SDK",
                "license": "MIT",
                "zip_file": zip_path.name,
                "sha256": ("0123456789ab" if arch == "x86_64" else "ba9876543210") * 5 + "abcd",
                "code_sha256": "x",
                "zip_size": 12_345_678 if arch == "x86_64" else 52_000_000,
                "unzipped_size": 35_100_000,
                "file_count": 2663,
                "sdk_name": "sentry-sdk",
                "sdk_version": "2.75.0",
                "extension": {
                    "name": "sentry-lambda-extension",
                    "version": "25.1.0" if arch == "x86_64" else "unknown",
                    "sha256": "f" * 64,
                    "source": "https://example.invalid/relay",
                },
                "source_date_epoch": 315532800,
                "needs_s3_upload": arch == "arm64",
            }
        )
        out.append(BuiltLayer(manifest, zip_path.with_suffix(".zip.json"), zip_path, 41.5))
    return out


def render(terminal: bool, width: int, capsys: pytest.CaptureFixture[str]) -> str:
    ui = UI(terminal=terminal, width=width)
    result = publish_result()
    if not terminal:
        # In a log, progress is one line per region; on a terminal it is a transient bar.
        with ui.region_progress(len(result.results)) as progress:
            for r in result.results:
                progress(r)
    ui.publish_summary(result)
    ui.registry_outcome(
        Path("registry"),
        Path("registry/aws-lambda-layers/python/2.75.0.json"),
        [Path("registry/aws-lambda-layers/python/2.75.0.json")],
        created=True,
    )
    build_table(ui, built_layers(Path("dist")))
    out, err = capsys.readouterr()
    assert err == ""
    # Bold and italic are rich's business; the goldens hold what a reader sees.
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("terminal", [False, True], ids=["log", "terminal"])
def test_golden(
    terminal: bool, width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # box drawing on a terminal, but no colour codes
    monkeypatch.setenv("TERM", "xterm")
    text = render(terminal, width, capsys)
    golden = GOLDEN / f"summary-{'terminal' if terminal else 'log'}-{width}.txt"
    if os.environ.get("LB_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    # Tables fit the width (progress and failure lines carry whole messages; a table may not).
    whole = ("[", "failed:", "ARN e.g.", "registry:")
    tables = [ln for ln in text.splitlines() if not ln.startswith(whole)]
    assert len(tables) >= 10 and max(len(ln) for ln in tables) <= width


def test_a_log_is_never_wider_than_its_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert UI(terminal=False).width == 100
    monkeypatch.delenv("COLUMNS")
    assert UI(terminal=False).width == 100  # a CI log has no width: 100 is the default


def test_progress_says_what_happened_and_nothing_more(capsys: pytest.CaptureFixture[str]) -> None:
    ui = UI(terminal=False, width=100)
    with ui.region_progress(2) as progress:
        progress(region_result(region="us-east-1", arch="x86_64", layer_name="L",
                               status="planned-new", seconds=0.1))  # fmt: skip
        progress(region_result(region="eu-west-1", arch="x86_64", layer_name="L",
                               status="planned-reuse", version=4, seconds=0.1))  # fmt: skip
    assert capsys.readouterr().out.splitlines() == [
        "[1/2] us-east-1       L: would publish a new version (0.1 s)",
        "[2/2] eu-west-1       L: would reuse version 4 (0.1 s)",
    ]


def test_registry_outcome_never_claims_a_write_that_did_not_happen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ui = UI(terminal=False, width=100)
    doc = Path("registry/aws-lambda-layers/python/2.75.0.json")
    ui.registry_outcome(Path("registry"), doc, [], created=False)
    assert capsys.readouterr().out == f"registry: unchanged; {doc} already records this release\n"


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("arn:aws:lambda:eu-west-1:1:layer:L:12", 20, "arn:aws:...:layer:L:12"[:20]),
        ("abcdefghij", 7, "ab...ij"),
    ],
)
def test_shorten_keeps_both_ends(text: str, width: int, expected: str) -> None:
    result = shorten(text, width)
    assert len(result) <= width
    if len(text) > width:
        assert result.startswith(text[:2]) and result.endswith(text[-2:]) and "..." in result
    else:
        assert result == expected


def test_fit_columns_shrinks_the_elastic_columns_first_in_order() -> None:
    rows = [["a" * 40, "b" * 40, "c" * 40]]
    # "z" gives way before "y"; "x" keeps its width while they can.
    assert fit_columns(["x", "y", "z"], rows, 100, elastic=("z", "y")) == [40, 40, 16]
    assert fit_columns(["x", "y", "z"], rows, 70, elastic=("z", "y")) == [40, 16, 10]
    # Nothing left to give: the floors hold and the line runs long.
    assert fit_columns(["x", "y", "z"], rows, 20, elastic=("z", "y")) == [10, 10, 10]


def test_registry_outcome_names_links_and_files_on_short_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = tmp_path / "registry/aws-lambda-layers/python"
    runtime.mkdir(parents=True)
    doc = runtime / "2.75.0.json"
    doc.write_text("{}")
    (runtime / "base.json").write_text("{}")
    for link in ("latest.json", "2.json"):
        (runtime / link).symlink_to("2.75.0.json")
    written = [runtime / "base.json", doc, runtime / "latest.json", runtime / "2.json"]
    UI(terminal=False, width=100).registry_outcome(
        tmp_path / "registry", doc, written, created=False
    )
    assert capsys.readouterr().out.splitlines() == [
        f"registry: wrote {doc}",
        "registry: latest.json, 2.json now -> 2.75.0.json",
        "registry: also wrote base.json",
    ]


def test_failed_regions_are_grouped_by_layer_and_reason() -> None:
    from layer_builder.cli.output import failed_lines
    from layer_builder.model import RegionResult

    def failed(region: str, error: str) -> RegionResult:
        return RegionResult(region, ("x86_64",), "L", "failed", error=error)

    regions = [f"r-{i:02d}" for i in range(9)]
    lines = failed_lines(
        [failed(r, "interrupted before it started") for r in reversed(regions)]
        + [failed("eu-west-1", "AccessDenied")]
    )
    assert lines == [
        "L in 9 regions (r-00, r-01, r-02, r-03, r-04, r-05, and 3 more): "
        "interrupted before it started",
        "eu-west-1 L: AccessDenied",
    ]


def test_a_dry_runs_permission_heal_is_said_and_counted_as_a_reuse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from layer_builder.cli.output import region_line

    heal = region_result(
        region="eu-west-1", arch="x86_64", layer_name="L", status="planned-heal-permission",
        version=7,
    )  # fmt: skip
    assert region_line(heal) == (
        "eu-west-1       L: would reuse version 7 and add its permission statements (0.0 s)"
    )
    ui = UI(terminal=False, width=100)
    ui.publish_summary(
        PublishResult(account=ACCOUNT, partition="aws", results=[heal], dry_run=True)
    )
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("L "))
    assert row.split()[1:4] == ["1/1", "0", "1"], out  # regions ok, would publish, would reuse
