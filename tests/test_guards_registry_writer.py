"""The registry writer: refusals word for word, the universal layout, layer order, merges into
older documents, what --json reports, and where the writer's temporary files go."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from test_registry import ACCOUNT, BASE, layer, registration, rt, write

from layer_builder import fsutil
from layer_builder.errors import RegistryError
from layer_builder.model import UNIVERSAL, PublishedLayer, Registration
from layer_builder.registry import writer
from layer_builder.registry.files import clean_stray_temps
from layer_builder.registry.writer import SchemaViolation, write_release

X86, ARM = "SentryPythonServerlessSDK", "SentryPythonServerlessSDKArm64"


def arn(region: str, name: str, version: int) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}"


def published(
    name: str, archs: tuple[str, ...], regions: list[tuple[str, int]], code: str = "Y29kZQ=="
) -> PublishedLayer:
    return PublishedLayer(archs, name, code, tuple((r, v, arn(r, name, v)) for r, v in regions))


def with_layers(reg: Registration, *layers: PublishedLayer, **changes: Any) -> Registration:
    return replace(reg, layers=tuple(layers), **changes)


def universal(
    version: str = "2.75.0", regions: list[tuple[str, int]] | None = None
) -> Registration:
    one = published(X86, ("x86_64", "arm64"), regions or [("us-east-1", 3)])
    return with_layers(registration(version), one, layout=UNIVERSAL)


def document(root: Path, version: str = "2.75.0") -> dict[str, Any]:
    return dict(json.loads((rt(root) / f"{version}.json").read_text()))


# --- refusals ---------------------------------------------------------------------------


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.write_text("")
    with pytest.raises(RegistryError) as info:
        write(root, registration())
    assert str(info.value) == f"{root}: the registry root is not a directory"


def test_a_release_without_layers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as info:
        write(tmp_path, with_layers(registration()))
    assert str(info.value) == f"{tmp_path}: aws-layer:python 2.75.0: no layers to record"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("runtime_dir", ["", ".git", "python/3", ".."])
def test_a_runtime_dir_that_is_not_a_directory_name_is_refused(
    tmp_path: Path, runtime_dir: str
) -> None:
    with pytest.raises(RegistryError) as info:
        write(tmp_path, registration(runtime_dir=runtime_dir))
    assert str(info.value) == f"registry.runtime_dir: {runtime_dir!r} is not a directory name"
    assert list(tmp_path.iterdir()) == []


def test_a_schema_violation_names_the_version_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaViolation) as info:
        write(tmp_path, registration(account="12345"))
    assert str(info.value).startswith(
        f"{rt(tmp_path) / '2.75.0.json'}: refusing to write a document that breaks "
        "version.schema.json: $.account_number: "
    )


def test_an_unknown_architecture_is_a_schema_violation_not_a_crash(tmp_path: Path) -> None:
    reg = with_layers(
        registration(),
        published(X86, ("x86_64",), [("us-east-1", 3)]),
        published("SentryPythonRiscv", ("riscv64",), [("us-east-1", 1)]),
    )
    with pytest.raises(SchemaViolation, match=r"\$\.layers\[1\]\.architecture: 'riscv64' is not"):
        write(tmp_path, reg)


# --- universal layout -------------------------------------------------------------------


def test_a_universal_release_records_one_layer_without_an_architecture_field(
    tmp_path: Path,
) -> None:
    write(tmp_path, universal())
    doc = document(tmp_path)
    assert doc["layers"] == [
        {
            "layer_name": X86,
            "compatible_architectures": ["x86_64", "arm64"],
            "code_sha256": "Y29kZQ==",
            "regions": [{"region": "us-east-1", "version": "3", "arn": arn("us-east-1", X86, 3)}],
        }
    ]
    assert doc["compatible_architectures"] == ["x86_64", "arm64"]


def test_a_universal_rerun_adds_its_regions_to_the_one_layer(tmp_path: Path) -> None:
    write(tmp_path, universal())
    write(tmp_path, universal(regions=[("eu-west-1", 7)]))
    doc = document(tmp_path)
    assert [(e["layer_name"], e["compatible_architectures"]) for e in doc["layers"]] == [
        (X86, ["x86_64", "arm64"])
    ]
    assert doc["regions"] == [
        {"region": "eu-west-1", "version": "7"},
        {"region": "us-east-1", "version": "3"},
    ]


def test_a_universal_release_of_a_version_recorded_per_arch_is_refused(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0", [("us-east-1", 3)]))
    recorded = layer("x86_64", []).code_sha256  # the same zip as the x86_64 layer
    one = published(X86, ("x86_64", "arm64"), [("us-east-1", 3)], code=recorded)
    with pytest.raises(RegistryError) as info:
        write(tmp_path, with_layers(registration(), one, layout=UNIVERSAL))
    assert str(info.value) == (
        f"{rt(tmp_path) / '2.75.0.json'}: records 2 layers ({X86}, {ARM}); a universal release "
        "has one layer (was this version published per-arch before?)"
    )


# --- per-arch layer order and merges ----------------------------------------------------


def test_layers_are_ordered_by_architecture_not_by_name(tmp_path: Path) -> None:
    reg = with_layers(
        registration(),
        published("Zeta", ("x86_64",), [("us-east-1", 3)]),
        published("Alpha", ("arm64",), [("us-east-1", 4)]),
    )
    write(tmp_path, reg)
    doc = document(tmp_path)
    assert [e["layer_name"] for e in doc["layers"]] == ["Zeta", "Alpha"]
    assert (doc["layer_name"], doc["compatible_architectures"]) == ("Zeta", ["x86_64"])


def test_layers_of_one_architecture_are_ordered_by_name(tmp_path: Path) -> None:
    # The x86_64 layer was renamed between two runs of one version: both stay recorded.
    write(
        tmp_path,
        with_layers(registration(), published("Beta", ("x86_64",), [("us-east-1", 3)], "YWFh")),
    )
    write(
        tmp_path,
        with_layers(registration(), published("Alpha", ("x86_64",), [("us-east-1", 5)], "enp6")),
    )
    doc = document(tmp_path)
    assert [e["layer_name"] for e in doc["layers"]] == ["Alpha", "Beta"]
    assert doc["layer_name"] == "Alpha"


def test_with_no_x86_64_layer_the_first_layer_is_the_top_level_one(tmp_path: Path) -> None:
    # The x86_64 layer failed everywhere (sorted first, and skipped); arm64 succeeded.
    reg = with_layers(registration(), layer("x86_64", []), layer("arm64", [("us-east-1", 4)]))
    write(tmp_path, reg, allow_partial_regions=True)
    doc = document(tmp_path)
    assert [e["layer_name"] for e in doc["layers"]] == [ARM]
    assert (doc["layer_name"], doc["compatible_architectures"]) == (ARM, ["arm64"])
    assert doc["regions"] == [{"region": "us-east-1", "version": "4"}]


def test_a_rerun_publishing_the_same_versions_replaces_nothing(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    assert write(tmp_path, registration("2.75.0")).replaced == ()


def test_a_rerun_merges_into_an_older_document_that_has_only_architecture(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0", [("us-east-1", 3)]))
    doc = document(tmp_path)
    for entry in doc["layers"]:
        del entry["compatible_architectures"]  # what older versions of this tool wrote
    (rt(tmp_path) / "2.75.0.json").write_text(json.dumps(doc))
    write(tmp_path, registration("2.75.0", [("eu-west-1", 9)], archs=["x86_64"]))
    merged = document(tmp_path)
    assert [(e["architecture"], e["compatible_architectures"]) for e in merged["layers"]] == [
        ("x86_64", ["x86_64"]),
        ("arm64", ["arm64"]),
    ]


def craft_document(**extra: Any) -> dict[str, Any]:
    return {
        **BASE,
        "canonical": "aws-layer:python",
        "sdk_version": "2.75.0",
        "account_number": ACCOUNT,
        "layer_name": X86,
        "regions": [{"region": "us-east-1", "version": "12"}],
        **extra,
    }


def test_a_craft_layer_this_release_does_not_publish_is_refused_not_a_crash(
    tmp_path: Path,
) -> None:
    # craft recorded the x86_64 layer without a code_sha256; a run that adds only the arm64
    # layer cannot record it (every layer entry carries its zip's digest).
    rt(tmp_path).mkdir(parents=True)
    (rt(tmp_path) / "2.75.0.json").write_text(json.dumps(craft_document()))
    before = (rt(tmp_path) / "2.75.0.json").read_text()
    with pytest.raises(RegistryError) as info:
        write(tmp_path, registration("2.75.0", [("eu-west-1", 2)], archs=["arm64"]))
    assert str(info.value) == (
        f"{rt(tmp_path) / '2.75.0.json'}: the layer {X86} is recorded without a code_sha256 "
        f"(a document written by craft); publish {X86} in this run too, so its zip is recorded"
    )
    assert (rt(tmp_path) / "2.75.0.json").read_text() == before


# --- links ------------------------------------------------------------------------------


def link_rows(result: Any) -> list[tuple[str, str | None, str | None, str]]:
    return [(u.name, u.previous, u.current, u.reason) for u in result.links]


def test_links_say_moved_then_already_linked(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    moved = write(tmp_path, registration("2.76.0"))
    again = write(tmp_path, registration("2.76.0"))
    assert link_rows(moved) == [
        ("latest.json", "2.75.0", "2.76.0", "moved"),
        ("2.json", "2.75.0", "2.76.0", "moved"),
        ("2.76.json", None, "2.76.0", "moved"),
    ]
    assert link_rows(again) == [
        ("latest.json", "2.76.0", "2.76.0", "already linked"),
        ("2.json", "2.76.0", "2.76.0", "already linked"),
        ("2.76.json", "2.76.0", "2.76.0", "already linked"),
    ]


def test_a_prerelease_keeps_the_links_and_says_why(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    result = write(tmp_path, registration("3.0.0a1"))
    assert link_rows(result) == [
        ("latest.json", "2.75.0", "2.75.0", "kept: prerelease (link_prereleases is off)"),
        ("3.json", None, None, "kept: prerelease (link_prereleases is off)"),
        ("3.0.json", None, None, "kept: prerelease (link_prereleases is off)"),
    ]


def test_a_copied_link_without_sdk_version_is_replaced_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, registration("2.75.0"))
    latest = rt(tmp_path) / "latest.json"
    latest.unlink()
    latest.write_text("{}")
    with caplog.at_level(logging.WARNING, logger="layer_builder.registry.writer"):
        result = write(tmp_path, registration("2.75.1"))
    assert f"{latest}: cannot tell which version it links to (''); replacing it" in [
        r.getMessage() for r in caplog.records
    ]
    assert link_rows(result)[0] == ("latest.json", None, "2.75.1", "moved")


# --- what the CLI reports (--json) -------------------------------------------------------


def test_the_json_summary_of_a_write(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0", [("us-east-1", 3)], archs=["x86_64"]))
    legacy = tmp_path / "aws-lambda-layers" / "index.json"
    legacy.write_text("{}")  # an index an older layer-builder kept inside aws-lambda-layers/
    d = rt(tmp_path)
    result = write(
        tmp_path,
        registration("2.75.0", [("us-east-1", 4)], archs=["x86_64"]),
        expected_regions={"us-east-1", "eu-west-1"},
    )
    assert result.to_dict() == {
        "version_file": str(d / "2.75.0.json"),
        "index_file": str(tmp_path / "aws-lambda-layers.json"),
        "written": [str(d / "2.75.0.json"), str(tmp_path / "aws-lambda-layers.json")],
        "links": [
            {
                "name": name,
                "previous": "2.75.0",
                "current": "2.75.0",
                "reason": "kept: partial release: 1 expected region(s) missing",
                "moved": False,
            }
            for name in ("latest.json", "2.json", "2.75.json")
        ],
        "latest_moved": False,
        "latest_version": "2.75.0",
        "base_created": False,
        "replaced": [[X86, "us-east-1", "3", "4"]],
        "missing_regions": [[X86, "eu-west-1"]],
        "removed": [str(legacy)],
    }
    assert not os.path.lexists(legacy)


def test_the_json_summary_of_a_first_write_removes_nothing(tmp_path: Path) -> None:
    result = write(tmp_path, registration("2.75.0", [("us-east-1", 3)], archs=["x86_64"]))
    summary = result.to_dict()
    assert (summary["removed"], summary["base_created"], summary["latest_moved"]) == (
        [],
        True,
        True,
    )
    assert summary["links"][0] == {
        "name": "latest.json",
        "previous": None,
        "current": "2.75.0",
        "reason": "moved",
        "moved": True,
    }


# --- base.json and timestamps -----------------------------------------------------------


def test_base_json_keeps_the_registry_s_order_then_extra_fields_by_name(tmp_path: Path) -> None:
    reg = replace(registration(), base_defaults={**BASE, "zz_team": "sdk", "aa_tier": "1"})
    write(tmp_path, reg)
    base = json.loads((rt(tmp_path) / "base.json").read_text())
    assert list(base.items()) == [
        *BASE.items(),
        ("created_at", "2025-01-02T03:04:05.678Z"),
        ("aa_tier", "1"),
        ("zz_team", "sdk"),
    ]


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_created_at_is_utc_whatever_the_local_time_zone() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    assert writer.timestamp(moment) == "2025-01-02T03:04:05.678Z"


def test_created_at_defaults_to_now(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    write_release(tmp_path, registration())
    after = datetime.now(timezone.utc)
    created = json.loads((rt(tmp_path) / "base.json").read_text())["created_at"]
    stamp = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before <= stamp <= after


# --- files: temporaries, links, write failures -------------------------------------------


def test_stray_temps_anywhere_in_the_registry_are_removed_by_the_next_write(
    tmp_path: Path,
) -> None:
    write(tmp_path, registration("2.75.0"))
    strays = [
        rt(tmp_path) / ".2.75.0.json.0123456789ab.tmp",
        tmp_path / "aws-lambda-layers" / ".index.json.0123456789ab.tmp",
        tmp_path / ".aws-lambda-layers.json.0123456789ab.tmp",
    ]
    for path in strays:
        path.write_text("{half")
    write(tmp_path, registration("2.76.0"))
    assert [p.name for p in strays if os.path.lexists(p)] == []


def test_every_temporary_name_the_writer_uses_is_one_it_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[Path] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        used.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write(tmp_path, registration("2.75.0"))
    monkeypatch.undo()
    assert len(used) == 6  # base, version, three links, index
    for path in used:  # as if a crash had left each behind
        path.write_text("{half")
    assert sorted(clean_stray_temps(*{p.parent for p in used})) == sorted(used)


def test_a_file_that_is_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    index = tmp_path / "aws-lambda-layers.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(index.read_bytes())  # the same bytes the writer would write
    index.unlink()
    index.symlink_to(elsewhere)
    result = write(tmp_path, registration("2.75.0"))
    assert not index.is_symlink() and index.read_bytes() == elsewhere.read_bytes()
    assert result.written == (index,)


def test_a_failed_create_reports_its_own_error_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, registration("2.75.0"))
    before = document(tmp_path)

    def read_only(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "x" in mode:  # the writer's exclusive create of its temporary file
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(fsutil, "open", read_only, raising=False)
    with pytest.raises(PermissionError, match=r"Permission denied"):
        write(tmp_path, registration("2.75.0", [("ap-south-1", 2)]))
    monkeypatch.undo()
    assert document(tmp_path) == before
    assert list(tmp_path.rglob(".*.tmp")) == []


def test_in_an_append_only_directory_the_failed_rename_is_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chattr +a: new entries can be made, none renamed over or removed. The link's rename
    # fails and so does removing its temporary; the user sees why the rename failed.
    write(tmp_path, registration("2.75.0"))
    (rt(tmp_path) / "latest.json").unlink()  # the only thing left to do
    runtime = rt(tmp_path)
    real_replace, real_unlink = os.replace, os.unlink

    def no_rename(src: Any, dst: Any) -> None:
        if Path(dst).parent == runtime:
            raise PermissionError(1, "Operation not permitted", str(src))
        real_replace(src, dst)

    def no_unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).parent == runtime:
            raise PermissionError(1, "Operation not permitted", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "replace", no_rename)
    monkeypatch.setattr(os, "unlink", no_unlink)
    with pytest.raises(PermissionError, match=r"Operation not permitted: '.*\.latest\.json\."):
        write(tmp_path, registration("2.75.0"))
