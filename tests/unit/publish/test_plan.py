"""What `plan_layers` hands the publisher, field by field, and every refusal word for word:
a zip checked against its manifest and the config before anything touches AWS. Real zips
and manifests from conftest's ``make_layers``; no AWS at all."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.aws.clients import Statement
from layer_builder.config import PermissionConfig
from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.model import BuildManifest, ExtensionInfo, ReleaseVersion
from layer_builder.publish.plan import (
    LayerPlan,
    is_standin,
    permission_statements,
    plan_layers,
)
from layer_builder.publish.release import refuse_standin
from layer_builder.sandbox.standin import EXTENSIONS_ROOT, standin_digests
from tests.helpers.layers import ConfigFactory, universal_manifest

V = ReleaseVersion.parse("2.75.0")
Manifests = list[tuple[Path, BuildManifest]]
MakeLayers = Callable[..., Manifests]


def test_each_plan_carries_its_manifest_zip_and_the_configs_permission(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(
        publish="""\
        s3_bucket: "stage-{{ region }}"
        permission:
          statement_id: share
          accounts: ["111111111111"]
        """
    )
    manifests = make_layers(cfg, V)
    plans = plan_layers(cfg, V, list(reversed(manifests)), ["eu-west-1", "us-west-2"])

    expected = []
    for manifest_path, m in sorted(manifests, key=lambda pm: pm[1].layer_name):
        data = m.zip_path(manifest_path).read_bytes()
        expected.append(
            LayerPlan(
                manifest_path=manifest_path,
                zip_path=manifest_path.parent / m.zip_file,
                layer_name=m.layer_name,
                architectures=m.architectures,
                description=m.description,
                license_info="MIT",
                runtimes=("python3.12", "python3.13"),
                sha256=hashlib.sha256(data).hexdigest(),
                code_sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                size=len(data),
                statements=(Statement("share-111111111111", "111111111111"),),
                release=V,
                statement_id="share",
                s3_bucket=None,  # small enough to go direct: the bucket is not used
                zip_bytes=data,
                canonical=cfg.canonical,
            )
        )
    assert [p.layer_name for p in expected] == sorted(m.layer_name for _, m in manifests)
    assert plans == expected
    assert [p.description for p in plans] == [
        f"Test layer 2.75.0 ({arch})" for arch in ("x86_64", "arm64")
    ]


def test_a_zip_over_a_mebibyte_is_sent_with_all_its_bytes(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, V, random.Random(5).randbytes(3 * 1024 * 1024 // 2))
    (plan,) = plan_layers(cfg, V, manifests)
    zip_path = manifests[0][1].zip_path(manifests[0][0])
    assert plan.size > 1 << 20
    assert plan.zip_bytes == zip_path.read_bytes()


@pytest.mark.parametrize(
    ("perm", "statements"),
    [
        (
            PermissionConfig(statement_id="share", accounts=("111111111111", "222222222222")),
            (
                Statement("share-111111111111", "111111111111"),
                Statement("share-222222222222", "222222222222"),
            ),
        ),
        (
            PermissionConfig(organization_id="o-abc1234567"),
            (Statement("public", "*", "o-abc1234567"),),
        ),
        (
            PermissionConfig(principal="333333333333", statement_id="mine"),
            (Statement("mine", "333333333333"),),
        ),
    ],
    ids=["accounts", "organization", "one-principal"],
)
def test_the_permission_config_becomes_these_statements(
    perm: PermissionConfig, statements: tuple[Statement, ...]
) -> None:
    assert permission_statements(perm) == statements


# --------------------------------------------------------------------------- refusals


def test_no_manifests_is_refused() -> None:
    with pytest.raises(ArtifactError, match="no build manifests") as exc:
        plan_layers(None, V, [])  # type: ignore[arg-type]
    assert str(exc.value) == "no build manifests given: run `layer-builder build` first"


def test_a_zip_built_with_another_layout_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    per_arch = make_config(architectures="[x86_64]")
    universal = make_config(architectures="[x86_64]", layout="universal")
    manifests = make_layers(per_arch, V)
    with pytest.raises(ArtifactError, match="built with layout") as exc:
        plan_layers(universal, V, manifests)
    assert str(exc.value) == (
        f"{manifests[0][0]}: built with layout per-arch, {universal.path} says universal; rebuild"
    )


def test_an_architecture_the_config_does_not_list_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config()
    manifest_path, m = make_layers(cfg, V)[0]
    odd = dataclasses.replace(m, architectures=("ppc64le",))
    with pytest.raises(ArtifactError, match="is not configured") as exc:
        plan_layers(cfg, V, [(manifest_path, odd)])
    assert str(exc.value) == (
        f"{manifest_path}: architecture 'ppc64le' is not configured in {cfg.path} (x86_64, arm64)"
    )


def test_a_second_zip_for_one_architecture_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    (first,) = make_layers(cfg, V)
    with pytest.raises(ArtifactError, match="a second zip") as exc:
        plan_layers(cfg, V, [first, first])
    assert str(exc.value) == f"{first[0]}: a second zip for x86_64"


def test_a_zip_built_for_another_version_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifests = make_layers(cfg, ReleaseVersion.parse("2.76.0"))
    with pytest.raises(ArtifactError, match="built for version") as exc:
        plan_layers(cfg, V, manifests)
    assert str(exc.value) == (
        f"{manifests[0][0]}: built for version 2.76.0, not 2.75.0; "
        "rebuild or pass the matching --version"
    )


def test_a_zip_with_another_layer_name_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifest_path, m = make_layers(cfg, V)[0]
    renamed = dataclasses.replace(m, layer_name="SomeoneElse")
    with pytest.raises(ArtifactError, match="differs from the config") as exc:
        plan_layers(cfg, V, [(manifest_path, renamed)])
    assert str(exc.value) == (
        f"{manifest_path}: layer name 'SomeoneElse' differs from the config's "
        f"{m.layer_name!r}; rebuild with the current config"
    )


def test_a_missing_zip_is_refused(make_config: ConfigFactory, make_layers: MakeLayers) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifest_path, m = make_layers(cfg, V)[0]
    zip_path = m.zip_path(manifest_path)
    zip_path.unlink()
    with pytest.raises(ArtifactError, match="zip not found") as exc:
        plan_layers(cfg, V, [(manifest_path, m)])
    assert str(exc.value) == f"{zip_path}: zip not found (listed in {manifest_path}); rebuild it"


def test_a_zip_changed_after_the_build_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifest_path, m = make_layers(cfg, V)[0]
    zip_path = m.zip_path(manifest_path)
    zip_path.write_bytes(zip_path.read_bytes() + b"\0")
    actual = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    with pytest.raises(ArtifactError, match="changed after the build") as exc:
        plan_layers(cfg, V, [(manifest_path, m)])
    assert str(exc.value) == (
        f"{zip_path}: sha256 is {actual}, the manifest {manifest_path} says {m.sha256}; "
        "the zip changed after the build, rebuild it"
    )


def test_a_manifest_whose_code_sha256_is_wrong_is_refused(
    make_config: ConfigFactory, make_layers: MakeLayers
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifest_path, m = make_layers(cfg, V)[0]
    wrong = dataclasses.replace(m, code_sha256="AAAA")
    with pytest.raises(ArtifactError, match="does not match the zip") as exc:
        plan_layers(cfg, V, [(manifest_path, wrong)])
    assert str(exc.value) == (
        f"{manifest_path}: code_sha256 'AAAA' does not match the zip ({m.code_sha256!r})"
    )


def test_the_size_in_the_no_bucket_refusal_is_in_mebibytes(
    make_config: ConfigFactory, make_layers: MakeLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # plan_layers checks the bytes against the manifest, not the zip's structure: a file of
    # exactly 0.75 MiB (printed "0.8 MB") stands in for a zip that needs S3.
    cfg = make_config(architectures="[x86_64]")
    manifest_path, m = make_layers(cfg, V)[0]
    data = random.Random(7).randbytes(768 * 1024)
    m.zip_path(manifest_path).write_bytes(data)
    digest = hashlib.sha256(data)
    m = dataclasses.replace(
        m, sha256=digest.hexdigest(), code_sha256=base64.b64encode(digest.digest()).decode()
    )
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", 512 * 1024)
    with pytest.raises(ArgumentError, match="direct-upload limit") as exc:
        plan_layers(cfg, V, [(manifest_path, m)], ["eu-west-1"])
    assert str(exc.value).startswith(
        f"{cfg.path}: publish.s3_bucket: {m.zip_file} is 0.8 MB, over the 0.5 MB direct-upload"
    )


# ------------------------------------------------------------------------------------------------
# The stand-in never reaches AWS by accident, whichever way it entered the zip.


def _file_ext(binary: Path, arch: str) -> ExtensionInfo:
    # What `build --extension-file ARCH=PATH` records: the path and "unknown", no label.
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    return ExtensionInfo("sentry-lambda-extension", "unknown", digest, str(binary), arch, "x")


def test_the_pinned_digests_are_the_shipped_binaries() -> None:
    shipped = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (EXTENSIONS_ROOT / "standin").glob("sentry-standin-*")
    }
    assert len(shipped) == 2 and standin_digests() == shipped


def test_a_standin_given_as_extension_file_is_recognised_by_its_digest(tmp_path: Path) -> None:
    copy = tmp_path / "my-relay"  # renamed: neither its name nor its label says stand-in
    copy.write_bytes((EXTENSIONS_ROOT / "standin" / "sentry-standin-aarch64").read_bytes())
    real = tmp_path / "relay"
    real.write_bytes(b"\x7fELF not the stand-in")
    mixed = universal_manifest(_file_ext(real, "x86_64"), _file_ext(copy, "arm64"))
    assert is_standin(mixed)
    assert not is_standin(universal_manifest(_file_ext(real, "x86_64")))

    with pytest.raises(
        ArtifactError,
        match=rf"^m\.json: the zip carries the sandbox stand-in extension \(from {copy}\), not",
    ):
        refuse_standin([(Path("m.json"), mixed)], allow=False)
    refuse_standin([(Path("m.json"), mixed)], allow=True)


def test_no_source_tree_means_no_digests(tmp_path: Path) -> None:
    assert standin_digests(tmp_path / "missing.yml") == frozenset()
