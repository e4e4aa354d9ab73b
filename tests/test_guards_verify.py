"""`layer-builder verify` at the edges of its guards: the unzipped-size limit, an --arch that
contradicts the build manifest, and the 0644/0755 mode whitelist (mutants the older tests
let through; see docs/mutation-testing.md)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import write_zip
from layer_builder.model import ReleaseVersion
from tests.helpers.layers import ConfigFactory, write_layer
from tests.helpers.verify import layer_tree, verify


def test_unzipped_size_exactly_at_the_limit_passes_and_one_byte_over_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    size = inspect_zip(z).unzipped_size
    monkeypatch.setattr(aws_facts, "MAX_UNZIPPED_BYTES", size)
    code, out, err = verify(capsys, str(z), "--json")
    assert code == 0, err
    (report,) = json.loads(out)["zips"]
    assert (report["unzipped_size"], report["room_left"]) == (size, 0)

    monkeypatch.setattr(aws_facts, "MAX_UNZIPPED_BYTES", size - 1)
    code, out, err = verify(capsys, str(z))
    assert (code, out) == (2, "")
    assert err == (
        f"error: {z}: {size:,} bytes unzipped; Lambda allows {size - 1:,} "
        "for a function and its layers\n"
    )


def test_arch_that_contradicts_the_build_manifest_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_config: ConfigFactory
) -> None:
    cfg = make_config(architectures="[x86_64]")
    manifest_path, manifest = write_layer(
        tmp_path / "dist", cfg, ReleaseVersion.parse("1.0.0"), "x86_64"
    )
    z = manifest.zip_path(manifest_path)
    assert verify(capsys, str(z), "--arch", "x86_64")[0] == 0  # the manifest agrees
    code, out, err = verify(capsys, str(z), "--arch", "arm64")
    assert (code, out) == (2, "")
    assert err == f"error: {z}: built for x86_64, not arm64\n"


def _zip_with_mode(path: Path, name: str, mode: int) -> Path:
    """A zip with every determinism marker right and one member of the given mode."""
    members = sorted({"python/": 0o40755, "python/ok.py": 0o100644, name: mode}.items())
    with zipfile.ZipFile(path, "w") as zf:
        for member, member_mode in members:
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = member_mode << 16
            zf.writestr(info, b"" if member.endswith("/") else b"x = 1\n")
    return path


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("python/a.py", 0o100600),  # owner-only: unreadable for Lambda's runtime user
        ("python/a.py", 0o100777),  # world-writable
        ("python/a.py", 0o104755),  # setuid
        ("python/a.py", 0o100744),
        ("python/sub/", 0o40700),  # a directory others cannot enter
    ],
)
def test_modes_outside_the_whitelist_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, mode: int
) -> None:
    z = _zip_with_mode(tmp_path / "layer.zip", name, mode)
    assert inspect_zip(z).problems() == []  # only the mode is wrong
    code, out, err = verify(capsys, str(z))
    assert (code, out) == (2, "")
    assert err == f"error: {z}: {name} has mode {oct(mode)}; expected 0644 or 0755\n"


@pytest.mark.parametrize("mode", [0o100644, 0o100755])
def test_whitelisted_modes_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    z = _zip_with_mode(tmp_path / "layer.zip", "python/a.py", mode)
    code, _, err = verify(capsys, str(z))
    assert code == 0, err
