"""The registry writer: layout, forward-only links, merges, atomicity, determinism."""

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

from layer_builder import fsutil
from layer_builder.errors import RegistryError
from layer_builder.model import UNIVERSAL, PublishedLayer, Registration, ReleaseVersion
from layer_builder.registry import writer
from layer_builder.registry.files import clean_stray_temps
from layer_builder.registry.layout import schema_error
from layer_builder.registry.reader import RegistryClient
from layer_builder.registry.writer import SchemaViolation, write_release
from tests.helpers.registrations import (
    ACCOUNT,
    BASE,
    REGIONS,
    layer,
    link_of,
    registration,
    rt,
    write,
)


def snapshot(root: Path) -> dict[str, str | bytes]:
    """Every file's bytes and every link's target under root."""
    out: dict[str, str | bytes] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = path.read_bytes()
    return out


def test_first_release_creates_the_whole_layout(tmp_path: Path) -> None:
    result = write(tmp_path, registration())

    d = rt(tmp_path)
    assert sorted(p.name for p in d.iterdir()) == [
        "2.75.0.json", "2.75.json", "2.json", "base.json", "latest.json",
    ]  # fmt: skip
    base = json.loads((d / "base.json").read_text())
    assert base == {**BASE, "created_at": "2025-01-02T03:04:05.678Z"}

    text = (d / "2.75.0.json").read_text()
    doc = json.loads(text)
    # Same key order and formatting as the real registry's files, then our additions.
    assert list(doc) == [
        "name", "repo_url", "main_docs_url", "created_at", "canonical", "sdk_version",
        "account_number", "layer_name", "regions", "compatible_runtimes",
        "compatible_architectures", "layers",
    ]  # fmt: skip
    assert text.startswith('{\n  "name": "AWS Lambda Python Layer",\n') and text.endswith("}\n")
    assert doc["canonical"] == "aws-layer:python"
    assert doc["sdk_version"] == "2.75.0"
    assert doc["account_number"] == ACCOUNT
    assert doc["layer_name"] == "SentryPythonServerlessSDK"
    assert doc["regions"] == [
        {"region": "eu-west-1", "version": "9"},
        {"region": "us-east-1", "version": "12"},
    ]
    # Per-arch: the top-level fields describe the x86_64 layer only, and claim only x86_64.
    assert doc["compatible_architectures"] == ["x86_64"]
    arm = doc["layers"][1]
    assert arm["architecture"] == "arm64" and arm["compatible_architectures"] == ["arm64"]
    assert arm["layer_name"] == "SentryPythonServerlessSDKArm64"
    assert arm["code_sha256"] == "c29tZS1oYXNo-arm64"
    assert arm["regions"][0] == {
        "region": "eu-west-1",
        "version": "9",
        "arn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:SentryPythonServerlessSDKArm64:9",
    }

    for name in ("latest.json", "2.json", "2.75.json"):
        assert link_of(tmp_path, name) == "2.75.0.json"  # relative, in the same directory
        assert json.loads((d / name).read_text()) == doc
    index_text = (tmp_path / "aws-lambda-layers.json").read_text()
    assert json.loads(index_text) == {"aws-layer:python": doc}
    assert index_text == json.dumps({"aws-layer:python": doc}, indent=2, sort_keys=True) + "\n"

    assert result.latest_moved and result.latest_version == "2.75.0" and result.base_created
    assert result.version_file == d / "2.75.0.json"
    assert [p.name for p in result.written] == [
        "base.json", "2.75.0.json", "latest.json", "2.json", "2.75.json", "aws-lambda-layers.json",
    ]  # fmt: skip
    assert json.loads(json.dumps(result.to_dict()))["latest_moved"] is True
    assert not list(tmp_path.rglob(".*.tmp"))


def test_newer_release_moves_the_links(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    before = (rt(tmp_path) / "2.75.0.json").read_bytes()
    result = write(tmp_path, registration("2.76.0", [("us-east-1", 13)]))

    assert link_of(tmp_path, "latest.json") == "2.76.0.json"
    assert link_of(tmp_path, "2.json") == "2.76.0.json"
    assert link_of(tmp_path, "2.76.json") == "2.76.0.json"
    assert link_of(tmp_path, "2.75.json") == "2.75.0.json"
    assert (rt(tmp_path) / "2.75.0.json").read_bytes() == before
    assert result.latest_moved and not result.base_created
    index = json.loads((tmp_path / "aws-lambda-layers.json").read_text())
    assert index["aws-layer:python"]["sdk_version"] == "2.76.0"


def test_older_release_does_not_take_the_links_or_touch_newer_files(tmp_path: Path) -> None:
    write(tmp_path, registration("2.76.0"))
    newer = snapshot(tmp_path)

    result = write(tmp_path, registration("2.75.1"))
    write(tmp_path, registration("1.45.1"))

    assert link_of(tmp_path, "latest.json") == "2.76.0.json"
    assert link_of(tmp_path, "2.json") == "2.76.0.json"
    assert link_of(tmp_path, "2.75.json") == "2.75.1.json"  # its own minor line is new
    assert link_of(tmp_path, "1.json") == "1.45.1.json"
    assert not result.latest_moved and result.latest_version == "2.76.0"
    assert "newer 2.76.0" in result.links[0].reason
    after = snapshot(tmp_path)
    for key, value in newer.items():
        assert after[key] == value, key  # index, base and 2.76.0 untouched


def test_prerelease_moves_nothing_unless_link_prereleases(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    result = write(tmp_path, registration("3.0.0a1"))
    assert (rt(tmp_path) / "3.0.0a1.json").is_file()
    assert link_of(tmp_path, "latest.json") == "2.75.0.json"
    assert not os.path.lexists(rt(tmp_path) / "3.json")
    assert not result.latest_moved and "prerelease" in result.links[0].reason

    write(tmp_path, registration("3.0.0-beta.2", link_prereleases=True))
    assert link_of(tmp_path, "latest.json") == "3.0.0-beta.2.json"
    assert link_of(tmp_path, "3.0.json") == "3.0.0-beta.2.json"

    write(tmp_path, registration("3.0.0"))
    write(tmp_path, registration("3.0.0rc1", link_prereleases=True))  # older than 3.0.0
    assert link_of(tmp_path, "latest.json") == "3.0.0.json"
    assert link_of(tmp_path, "3.json") == "3.0.0.json"


def test_rerun_of_the_same_version_merges_regions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, registration("2.75.0", [("us-east-1", 12), ("eu-west-1", 9)]))
    with caplog.at_level(logging.WARNING, logger="layer_builder.registry.writer"):
        # eu-west-1 failed halfway last time and was published again; ap-south-1 is new.
        result = write(
            tmp_path,
            registration("2.75.0", [("eu-west-1", 10), ("ap-south-1", 3)], archs=["x86_64"]),
        )

    doc = json.loads((rt(tmp_path) / "2.75.0.json").read_text())
    assert doc["regions"] == [
        {"region": "ap-south-1", "version": "3"},
        {"region": "eu-west-1", "version": "10"},
        {"region": "us-east-1", "version": "12"},
    ]
    arm = doc["layers"][1]  # not in this run: kept as recorded
    assert [(r["region"], r["version"]) for r in arm["regions"]] == [
        ("eu-west-1", "9"),
        ("us-east-1", "12"),
    ]
    assert doc["compatible_architectures"] == ["x86_64"]
    assert result.replaced == (("SentryPythonServerlessSDK", "eu-west-1", "9", "10"),)
    assert "eu-west-1" in caplog.text and "10 replaces 9" in caplog.text
    assert json.loads((tmp_path / "aws-lambda-layers.json").read_text()) == {
        "aws-layer:python": doc
    }

    again = snapshot(tmp_path)
    rerun = write(
        tmp_path, registration("2.75.0", [("eu-west-1", 10), ("ap-south-1", 3)], archs=["x86_64"])
    )
    assert rerun.written == () and snapshot(tmp_path) == again  # nothing left to do


def test_rerun_with_a_different_zip_is_refused(tmp_path: Path) -> None:
    write(tmp_path, registration("2.75.0"))
    before = snapshot(tmp_path)
    refused = r"2\.75\.0\.json: the layer SentryPythonServerlessSDK .* code_sha256"
    with pytest.raises(RegistryError, match=refused):
        write(tmp_path, registration("2.75.0", code="b3RoZXI="))
    with pytest.raises(RegistryError, match="account_number"):
        write(tmp_path, registration("2.75.0", account="111111111111"))
    assert snapshot(tmp_path) == before


def test_rerun_merges_into_a_document_written_by_craft(tmp_path: Path) -> None:
    d = rt(tmp_path)
    d.mkdir(parents=True)
    legacy = {
        **BASE,
        "canonical": "aws-layer:python",
        "sdk_version": "2.75.0",
        "account_number": ACCOUNT,
        "layer_name": "SentryPythonServerlessSDK",
        "regions": [{"region": "us-east-1", "version": "12"}],
    }
    (d / "2.75.0.json").write_text(json.dumps(legacy))
    write(tmp_path, registration("2.75.0", [("eu-west-1", 9)], archs=["x86_64"]))
    doc = json.loads((d / "2.75.0.json").read_text())
    assert [r["region"] for r in doc["regions"]] == ["eu-west-1", "us-east-1"]
    assert doc["layers"][0]["regions"][1]["arn"] == (
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:SentryPythonServerlessSDK:12"
    )


def test_existing_base_json_is_kept_as_is(tmp_path: Path) -> None:
    d = rt(tmp_path)
    d.mkdir(parents=True)
    base_text = '{\n  "name": "Old name",\n  "createdAt": "2021-02-11T11:45:36.000Z"\n}\n'
    (d / "base.json").write_text(base_text)
    result = write(tmp_path, registration())
    assert (d / "base.json").read_text() == base_text
    assert not result.base_created
    doc = json.loads((d / "2.75.0.json").read_text())
    assert doc["name"] == "Old name" and doc["createdAt"] == "2021-02-11T11:45:36.000Z"
    assert "repo_url" not in doc


@pytest.mark.parametrize(
    ("relpath", "content", "message"),
    [
        ("python/base.json", "{not json", r"python/base\.json: not valid JSON"),
        ("python/base.json", '["a list"]', r"python/base\.json: expected a JSON object"),
        ("python/base.json", '{"name": 3}', r"python/base\.json: name: expected a string"),
        ("python/2.75.0.json", "[]", r"python/2\.75\.0\.json: expected a JSON object"),
        ("python/2.75.0.json", '{"canonical": 1}', r"2\.75\.0\.json: not a layer version document"),
        ("node/latest.json", "", r"node/latest\.json: not valid JSON"),
    ],
)
def test_malformed_existing_file_is_a_registry_error_and_nothing_is_written(
    tmp_path: Path, relpath: str, content: str, message: str
) -> None:
    path = tmp_path / "aws-lambda-layers" / relpath
    path.parent.mkdir(parents=True)
    path.write_text(content)
    before = snapshot(tmp_path)
    with pytest.raises(RegistryError, match=message) as info:
        write(tmp_path, registration())
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    assert snapshot(tmp_path) == before


def test_schema_rejects_bad_documents(tmp_path: Path) -> None:
    write(tmp_path, registration())
    doc = json.loads((rt(tmp_path) / "2.75.0.json").read_text())
    assert schema_error(doc) is None

    doc["regions"][0]["version"] = 9  # readers expect strings
    assert schema_error(doc) == "$.regions[0].version: 9 is not of type 'string'"
    assert "account_number" in str(schema_error({**doc, "account_number": "94301398"}))
    legacy = {k: v for k, v in doc.items() if k not in ("layers", "compatible_architectures")}
    legacy["regions"][0]["version"] = "9"
    assert schema_error(legacy) is None  # Sentry's documents stay valid
    assert "compatible_architectures" in str(
        schema_error({k: v for k, v in doc.items() if k != "compatible_architectures"})
    )


def test_writer_refuses_to_write_a_document_that_breaks_the_schema(tmp_path: Path) -> None:
    with pytest.raises(SchemaViolation, match=r"account_number"):
        write(tmp_path, registration(account="12345"))
    assert snapshot(tmp_path) == {}
    assert SchemaViolation.exit_code == 1  # a bug, reported with its traceback


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_interrupted_write_leaves_the_previous_registry_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    write(tmp_path, registration("2.75.0"))
    before = snapshot(tmp_path)
    real_replace = os.replace
    calls = 0

    def flaky_replace(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == fail_at:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="No space left"):
        write(tmp_path, registration("2.76.0"))
    monkeypatch.undo()

    after = snapshot(tmp_path)
    assert not [k for k in after if k.endswith(".tmp")]  # no temporary left behind
    for key in ("aws-lambda-layers/python/2.75.0.json", "aws-lambda-layers/python/base.json"):
        assert after[key] == before[key]
    # Whatever step failed, every link resolves and readers get a whole document.
    for name in ("latest.json", "2.json", "2.75.json"):
        assert json.loads((rt(tmp_path) / name).read_text())["canonical"] == "aws-layer:python"
    # Readers follow latest.json, which moves (the second rename) only once the version
    # file is whole: they see the old release or the whole new one.
    seen = RegistryClient(tmp_path).latest("aws-layer:python").sdk_version
    assert seen == ("2.76.0" if fail_at >= 3 else "2.75.0")
    # A re-run finishes the job.
    write(tmp_path, registration("2.76.0"))
    assert RegistryClient(tmp_path).latest("aws-layer:python").sdk_version == "2.76.0"


def test_failed_fsync_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, registration("2.75.0", [("us-east-1", 12)]))
    before = snapshot(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write(tmp_path, registration("2.75.0", [("eu-west-1", 9)]))
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


def test_output_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    def release_all(root: Path, shuffle: bool) -> None:
        regions = list(reversed(REGIONS)) if shuffle else list(REGIONS)
        node = registration("8.0.0", regions, runtime_dir="node", canonical="aws-layer:node")
        python = registration("2.75.0", regions)
        for reg in (node, python) if shuffle else (python, node):
            write(root, reg)
        write(root, registration("2.76.0", regions))

    release_all(tmp_path / "a", shuffle=False)
    release_all(tmp_path / "b", shuffle=True)
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a == b
    index = json.loads(a["aws-lambda-layers.json"])
    assert list(index) == ["aws-layer:node", "aws-layer:python"]


def test_partial_release_keeps_links_until_complete(tmp_path: Path) -> None:
    expected = {"us-east-1", "eu-west-1", "ap-south-1"}
    write(tmp_path, registration("2.75.0"), allow_partial_regions=True, expected_regions=expected)
    assert link_of(tmp_path, "latest.json") == "2.75.0.json"

    result = write(tmp_path, registration("2.76.0"), expected_regions=expected)
    assert result.missing_regions == (
        ("SentryPythonServerlessSDK", "ap-south-1"),
        ("SentryPythonServerlessSDKArm64", "ap-south-1"),
    )
    assert (rt(tmp_path) / "2.76.0.json").is_file()
    assert link_of(tmp_path, "latest.json") == "2.75.0.json"
    assert "partial" in result.links[0].reason

    done = write(tmp_path, registration("2.76.0", [("ap-south-1", 4)]), expected_regions=expected)
    assert done.missing_regions == () and done.latest_moved
    assert link_of(tmp_path, "latest.json") == "2.76.0.json"


def test_a_copied_link_is_read_by_its_content(tmp_path: Path) -> None:
    write(tmp_path, registration("2.76.0"))
    latest = rt(tmp_path) / "latest.json"
    content = latest.read_bytes()
    latest.unlink()
    latest.write_bytes(content)  # a checkout without symlinks
    write(tmp_path, registration("2.75.1"))
    assert not latest.is_symlink() and latest.read_bytes() == content


def test_an_architecture_published_nowhere_is_not_advertised(tmp_path: Path) -> None:
    reg = registration()
    arm_failed = Registration(**{**reg.__dict__, "layers": (reg.layers[0], layer("arm64", []))})
    result = write(tmp_path, arm_failed, expected_regions={"us-east-1"}, allow_partial_regions=True)
    doc = json.loads((rt(tmp_path) / "2.75.0.json").read_text())
    assert doc["compatible_architectures"] == ["x86_64"]
    assert [e["architecture"] for e in doc["layers"]] == ["x86_64"]
    assert result.missing_regions == (("SentryPythonServerlessSDKArm64", "us-east-1"),)

    nothing = Registration(**{**reg.__dict__, "layers": (layer("x86_64", []),)})
    with pytest.raises(RegistryError, match=r"3\.0\.0\.json: no region has a published layer"):
        write(
            tmp_path, Registration(**{**nothing.__dict__, "version": ReleaseVersion.parse("3.0.0")})
        )
    assert not (rt(tmp_path) / "3.0.0.json").exists()


def test_concurrent_writers_share_one_index(tmp_path: Path) -> None:
    import threading

    tmp_path.mkdir(exist_ok=True)
    errors: list[BaseException] = []

    def release(runtime: str) -> None:
        try:
            for minor in range(3):
                reg = registration(
                    f"2.{minor}.0", runtime_dir=runtime, canonical=f"aws-layer:{runtime}"
                )
                write(tmp_path, reg)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=release, args=(r,)) for r in ("python", "node", "ruby")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    index = json.loads((tmp_path / "aws-lambda-layers.json").read_text())
    assert {k: v["sdk_version"] for k, v in index.items()} == {
        "aws-layer:node": "2.2.0",
        "aws-layer:python": "2.2.0",
        "aws-layer:ruby": "2.2.0",
    }


# ------------------------------------------------------------------------------------------------
# The registry writer: refusals word for word, the universal layout, layer order, merges into
# older documents, what --json reports, and where the writer's temporary files go.


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
