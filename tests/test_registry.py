"""The registry writer: layout, forward-only links, merges, atomicity, determinism."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from layer_builder.errors import RegistryError
from layer_builder.model import PublishedLayer, Registration, ReleaseVersion
from layer_builder.registry.layout import schema_error
from layer_builder.registry.reader import RegistryClient
from layer_builder.registry.writer import SchemaViolation, write_release

ACCOUNT = "943013980633"
NAMES = {"x86_64": "SentryPythonServerlessSDK", "arm64": "SentryPythonServerlessSDKArm64"}
BASE = {
    "name": "AWS Lambda Python Layer",
    "repo_url": "https://github.com/getsentry/sentry-python",
    "main_docs_url": "https://docs.sentry.io/platforms/python/guides/aws-lambda/",
}
REGIONS = (("us-east-1", 12), ("eu-west-1", 9))


def fixed_now() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def layer(
    arch: str, regions: Iterable[tuple[str, int]], *, code: str = "c29tZS1oYXNo"
) -> PublishedLayer:
    name = NAMES[arch]
    entries = sorted(
        (region, version, f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}")
        for region, version in regions
    )
    return PublishedLayer((arch,), name, f"{code}-{arch}", tuple(entries))


def registration(
    version: str = "2.75.0",
    regions: Sequence[tuple[str, int]] = REGIONS,
    *,
    archs: Sequence[str] = ("x86_64", "arm64"),
    runtime_dir: str = "python",
    canonical: str = "aws-layer:python",
    account: str = ACCOUNT,
    link_prereleases: bool = False,
    code: str = "c29tZS1oYXNo",
) -> Registration:
    return Registration(
        runtime_dir=runtime_dir,
        canonical=canonical,
        version=ReleaseVersion.parse(version),
        sdk_version=version,
        account_number=account,
        compatible_runtimes=("python3.12", "python3.13"),
        layers=tuple(layer(a, regions, code=code) for a in archs),
        link_prereleases=link_prereleases,
        base_defaults=dict(BASE),
    )


def write(root: Path, reg: Registration, **kwargs: Any) -> Any:
    return write_release(root, reg, now=fixed_now, **kwargs)


def rt(root: Path, runtime: str = "python") -> Path:
    return root / "aws-lambda-layers" / runtime


def link_of(root: Path, name: str, runtime: str = "python") -> str:
    return os.readlink(rt(root, runtime) / name)


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
