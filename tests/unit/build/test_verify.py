"""`layer-builder verify` on good and bad layer zips: exit 0, or exit 2 with the reason."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from layer_builder.aws import facts as aws_facts
from layer_builder.build.verify import VerifyError, verify_zip
from layer_builder.build.zipcheck import inspect_zip
from layer_builder.build.zipper import write_zip
from layer_builder.cli import main
from layer_builder.errors import ArtifactError
from layer_builder.model import ReleaseVersion
from tests.helpers.elf_fixtures import make_elf
from tests.helpers.layers import ConfigFactory, write_layer
from tests.helpers.verify import WRAPPER, layer_tree, verify


def test_good_layer_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    code, out, err = verify(capsys, str(z), "--arch", "x86_64", "--json")
    assert code == 0, err
    (report,) = json.loads(out)["zips"]
    assert report["family"] == "python" and report["elf_files"] == ["relay/relay"]
    assert report["room_left"] == 262_144_000 - report["unzipped_size"]
    assert not report["needs_s3_upload"]


def node_layer_tree(root: Path) -> Path:
    """A Node layer: the SDK's package.json exporting the preload (cjs and esm), its two files,
    and the extension of :func:`layer_tree`."""
    shutil.rmtree(layer_tree(root) / "python")
    sdk = root / "nodejs/node_modules/@sentry/aws-serverless"
    exports = {
        "./awslambda-auto": {
            "import": {"types": "./build/types/auto.d.ts", "default": "./build/esm/auto.js"},
            "require": {"default": "./build/cjs/auto.js"},
        }
    }
    (sdk / "build/esm").mkdir(parents=True)
    (sdk / "build/cjs").mkdir()
    (sdk / "package.json").write_text(
        json.dumps({"name": "@sentry/aws-serverless", "exports": exports})
    )
    (sdk / "build/esm/auto.js").write_text("export {};\n")
    (sdk / "build/cjs/auto.js").write_text("module.exports = {};\n")
    return root


def test_a_node_layer_without_its_preload_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = node_layer_tree(tmp_path / "t")
    z = write_zip(tree, tmp_path / "good.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    assert code == 0, err
    (tree / "nodejs/node_modules/@sentry/aws-serverless/build/esm/auto.js").unlink()
    z = write_zip(tree, tmp_path / "bad.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    assert code == 2
    assert "the SDK's preload @sentry/aws-serverless/awslambda-auto is missing " in err
    assert "./build/esm/auto.js (named by" in err and "./build/cjs/auto.js" not in err


def test_wrong_architecture_binary_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = write_zip(layer_tree(tmp_path / "t", arch="x86_64"), tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "arm64")
    assert code == 2
    assert err == (
        f"error: {z}:relay/relay: is an x86_64 binary; an x86_64 binary in an arm64 layer "
        "would fail with 'exec format error' (need aarch64)\n"
    )


def test_wrong_architecture_shared_library_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = layer_tree(tmp_path / "t", arch="arm64")
    (tree / "python/_native.so").write_bytes(make_elf("x86_64", kind="shared"))
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "arm64")
    assert code == 2
    assert err == (
        f"error: {z}:python/_native.so: is a library built for x86_64; "
        "an arm64 layer needs aarch64\n"
    )


def test_missing_wrapper_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(layer_tree(tmp_path / "t", wrapper=False), tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert err == f"error: {z}: the handler wrapper {WRAPPER} is missing\n"


def test_non_executable_extension_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = layer_tree(tmp_path / "t")
    (tree / "extensions/sentry-lambda-extension").chmod(0o644)
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert "extensions/sentry-lambda-extension is not executable (it needs mode 0755)" in err


def test_wrong_root_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib/x.py").write_text("x = 1\n")
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert (
        err
        == f"error: {z}: neither python/ nor nodejs/ at the root; Lambda would not find the SDK\n"
    )


def test_non_deterministic_and_traversal_zips_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A zip as a careless script makes it: local timestamps, extra fields, a path escaping /opt.
    z = tmp_path / "careless.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("python/a.py", date_time=(2024, 5, 1, 12, 0, 0))
        zf.writestr(info, "a = 1\n")
        info = zipfile.ZipInfo("../etc/evil", date_time=(2024, 5, 1, 12, 0, 2))
        zf.writestr(info, "x")
    code, _, err = verify(capsys, str(z))
    assert code == 2
    # Every problem, one line each, the one that matters most to Lambda first.
    assert err.splitlines() == [
        f"error: {z}: unsafe member names: ../etc/evil",
        f"error: {z}: python/a.py has mode 0o600; expected 0644 or 0755",
        f"error: {z}: ../etc/evil has mode 0o600; expected 0644 or 0755",
        f"error: {z}: members have different timestamps",
        f"error: {z}: members are not sorted by name",
    ]


def test_corrupt_and_missing_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    code, _, err = verify(capsys, str(bad))
    assert code == 2 and err.startswith(f"error: {bad}: not a valid zip")
    code, _, err = verify(capsys, str(tmp_path / "nope.zip"))
    assert code == 2 and err == f"error: {tmp_path / 'nope.zip'}: no such file\n"


def test_zip_changed_after_build_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    manifest = {"sha256": "0" * 64, "architecture": "x86_64"}
    # A minimal manifest is enough to show the mismatch; verify reads only what it needs.
    full = {
        "layer_name": "L",
        "canonical": "aws-layer:python",
        "version": "1.0.0",
        "architecture": "x86_64",
        "compatible_runtimes": ["python3.12"],
        "description": "",
        "license": "MIT",
        "zip_file": z.name,
        "code_sha256": "",
        "zip_size": 0,
        "unzipped_size": 0,
        "file_count": 0,
        "sdk_name": "s",
        "sdk_version": "1",
        "extension": None,
        "source_date_epoch": 315532800,
        **manifest,
    }
    z.with_name(z.name + ".json").write_text(json.dumps(full))
    code, _, err = verify(capsys, str(z))
    assert code == 2
    assert "differs from its build manifest" in err and "the zip changed after it was built" in err


# ------------------------------------------------------------------------------------------------
# `layer-builder verify` at the edges of its guards: the unzipped-size limit, an --arch that
# contradicts the build manifest, and the 0644/0755 mode whitelist.


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


# ------------------------------------------------------------------------------------------------
# `verify` on layers without a build manifest (the inferred layout), on what a launcher in
# /opt/extensions/ may start, and the order of findings by severity: exact texts and outcomes.


DIR, FILE, EXE = 0o40755, 0o100644, 0o100755
SHARED = "is a shared library (ET_DYN without a program interpreter or the PIE flag), not an "


def _zip(path: Path, members: dict[str, tuple[int, bytes]]) -> Path:
    """Members in sorted order, every determinism marker right."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, (mode, data) in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _layer(path: Path, **extra: tuple[int, bytes]) -> Path:
    members = {"python/": (DIR, b""), "python/a.py": (FILE, b"a = 1\n")}
    members.update({name.replace("__", "/"): value for name, value in extra.items()})
    return _zip(path, members)


def test_a_directory_is_not_a_layer_zip(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is a directory") as exc:
        verify_zip(tmp_path)
    assert str(exc.value) == f"{tmp_path}: is a directory, not a layer zip"


def test_unsafe_names_are_listed_comma_separated(tmp_path: Path) -> None:
    z = _layer(tmp_path / "l.zip", **{"../up": (FILE, b"x"), "/abs": (FILE, b"y")})
    with pytest.raises(VerifyError, match="unsafe member names") as exc:
        verify_zip(z)
    assert str(exc.value).splitlines()[0] == f"{z}: unsafe member names: ../up, /abs"


def test_a_foreign_library_in_a_two_machine_layer_names_both(tmp_path: Path) -> None:
    z = _layer(
        tmp_path / "l.zip",
        extensions__a=(EXE, make_elf("x86_64")),
        extensions__b=(EXE, make_elf("arm64")),
        lib__x_so=(FILE, make_elf("i386", kind="shared")),
    )
    with pytest.raises(VerifyError, match="is a library built for") as exc:
        verify_zip(z)
    assert str(exc.value) == (
        f"{z}:lib/x_so: is a library built for i386; an x86_64, arm64 layer needs x86_64 or aarch64"
    )


def test_an_executable_library_that_nothing_starts_is_only_a_library(tmp_path: Path) -> None:
    z = _layer(tmp_path / "l.zip", lib__x_so=(EXE, make_elf("x86_64", kind="shared")))
    assert verify_zip(z, arch="x86_64").elf_files == ("lib/x_so",)


def test_findings_keep_their_severity_order(tmp_path: Path) -> None:
    # A library for i386 marked executable (cannot load, listed first by name) and a shared
    # library Lambda would have to start (cannot start): the second is the more serious.
    z = _layer(
        tmp_path / "l.zip",
        a__bad=(EXE, make_elf("i386")),
        extensions__relay=(EXE, make_elf("x86_64", kind="shared")),
        extensions__relay_arm=(EXE, make_elf("arm64")),
    )
    with pytest.raises(VerifyError, match="shared library") as exc:
        verify_zip(z)
    lines = str(exc.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{z}:extensions/relay",
        f"{z}:a/bad",
    ]


def test_elf_files_in_the_sdk_tree_do_not_make_a_layer_universal(tmp_path: Path) -> None:
    z = _layer(
        tmp_path / "l.zip",
        python__bin__tool=(EXE, make_elf("arm64")),
        extensions__relay=(EXE, make_elf("x86_64")),
    )
    report = verify_zip(z)
    assert (report.architectures, report.layout, report.notes) == (
        (),
        None,
        ("no build manifest beside the zip and no --arch: architecture not checked",),
    )


def test_files_below_a_subdirectory_of_extensions_are_not_started(tmp_path: Path) -> None:
    z = _layer(tmp_path / "l.zip", extensions__docs__readme=(FILE, b"read me"))
    assert verify_zip(z, arch="x86_64").layout == "per-arch"


def test_only_scripts_in_extensions_count_as_launchers(tmp_path: Path) -> None:
    z = _layer(
        tmp_path / "l.zip",
        python__run_sh=(FILE, b"#!/bin/sh\nexec /opt/lib/tool\n"),
        lib__tool=(FILE, make_elf("x86_64", kind="shared")),
    )
    assert verify_zip(z, arch="x86_64").elf_files == ("lib/tool",)


def test_the_sdk_root_is_the_first_path_part(tmp_path: Path) -> None:
    z = _zip(tmp_path / "l.zip", {"python/pkg/a.py": (FILE, b"a = 1\n")})
    assert verify_zip(z).family == "python"


def test_an_arch_a_two_machine_layer_does_not_serve(tmp_path: Path) -> None:
    # Reachable from the library only (the CLI's --arch has two choices, both served).
    z = _layer(
        tmp_path / "l.zip",
        extensions__a=(EXE, make_elf("x86_64")),
        extensions__b=(EXE, make_elf("arm64")),
        lib__x_so=(FILE, make_elf("i386", kind="shared")),
    )
    with pytest.raises(VerifyError, match="serves") as exc:
        verify_zip(z, arch="mips")
    assert str(exc.value).splitlines()[0] == f"{z}: serves x86_64, arm64, not mips"


# ------------------------------------------------------------------------------------------------
# What `layer-builder verify --json` reports about a good layer, field by field, and the
# findings about layout, archive and extensions/ word for word.


NO_ARCH_NOTE = "no build manifest beside the zip and no --arch: architecture not checked"


def report(capsys: pytest.CaptureFixture[str], zip_path: Path, *args: str) -> dict[str, Any]:
    code = main(["verify", str(zip_path), "--json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (one,) = json.loads(captured.out)["zips"]
    return one  # type: ignore[no-any-return]


def test_the_report_of_a_good_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    data = z.read_bytes()
    inspection = inspect_zip(z)
    got = report(capsys, z)
    assert got == {
        "architecture": None,
        "architectures": [],
        "code_sha256": inspection.code_sha256,
        "elf_files": ["relay/relay"],
        "family": "python",
        "file_count": 4,
        "layout": None,
        "needs_s3_upload": False,
        "notes": [NO_ARCH_NOTE],
        "ok": True,
        "path": str(z),
        "room_left": 262_144_000 - inspection.unzipped_size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "unzipped_size": inspection.unzipped_size,
        "zip_size": len(data),
    }
    with_arch = report(capsys, z, "--arch", "x86_64")
    assert (with_arch["architecture"], with_arch["notes"]) == ("x86_64", [])


def test_the_direct_upload_note_at_its_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    z = write_zip(layer_tree(tmp_path / "t"), tmp_path / "layer.zip").path
    size = z.stat().st_size
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", size)
    at = report(capsys, z, "--arch", "x86_64")
    assert (at["needs_s3_upload"], at["notes"]) == (False, [])
    monkeypatch.setattr(aws_facts, "MAX_DIRECT_UPLOAD_ZIP_BYTES", size - 1)
    over = report(capsys, z, "--arch", "x86_64")
    assert over["needs_s3_upload"] is True
    assert over["notes"] == ["over the 50 MB direct-upload limit: publishing goes through S3"]


def test_a_node_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t"
    (tree / "nodejs" / "node_modules" / "x").mkdir(parents=True)
    (tree / "nodejs" / "node_modules" / "x" / "index.js").write_text("module.exports = 1\n")
    z = write_zip(tree, tmp_path / "layer.zip").path
    got = report(capsys, z, "--arch", "arm64")
    assert (got["family"], got["file_count"], got["elf_files"]) == ("node", 1, [])


def _zip_in_order(path: Path, members: dict[str, tuple[int, bytes]]) -> Path:
    """Members in the given order, every other determinism marker right."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, (mode, data) in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_extensions_that_are_neither_elf_nor_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for size in (20, 64, 100):
        z = _zip_in_order(tmp_path / f"l{size}.zip", {
            "extensions/": (0o40755, b""),
            "extensions/ext": (0o100755, b"x" * size),
            "python/": (0o40755, b""),
            "python/a.py": (0o100644, b"a = 1\n"),
        })  # fmt: skip
        code, out, err = verify(capsys, str(z), "--arch", "x86_64")
        assert (code, out) == (2, "")
        assert err == (
            f"error: {z}: extensions/ext is neither an ELF executable nor a script with a #! line\n"
        )
    small = _zip_in_order(tmp_path / "small.zip", {
        "extensions/": (0o40755, b""),
        "extensions/ext": (0o100755, b"x" * 19),  # too short to be either: not looked at
        "python/": (0o40755, b""),
    })  # fmt: skip
    assert verify(capsys, str(small), "--arch", "x86_64")[0] == 0


def test_duplicate_and_unsafe_names_word_for_word(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    path = tmp_path / "dup.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")
        for name in ("python/", "python/a.py", "python/a.py", "python/b.py", "python/b.py"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
            zf.writestr(info, b"")
    code, _, err = verify(capsys, str(path))
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {path}: duplicate member names: python/a.py, python/b.py"
    )


SHARED_LIBRARY = (
    "is a shared library (ET_DYN without a program interpreter or the PIE flag), not an "
    "executable; Lambda (x86_64) cannot start it"
)


@pytest.mark.parametrize(
    ("launcher_size", "refused"),
    [(None, True), (65536, True), (65537, False)],  # launchers over 64 KiB are not read
)
def test_what_a_launcher_starts_must_be_an_executable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], launcher_size: int | None, refused: bool
) -> None:
    from tests.helpers.elf_fixtures import make_elf
    from tests.helpers.verify import LAUNCHER

    tree = layer_tree(tmp_path / "t")
    relay = tree / "relay" / "relay"  # not executable itself, but the launcher execs it
    relay.write_bytes(make_elf("x86_64", kind="shared"))
    relay.chmod(0o644)
    if launcher_size is not None:
        script = tree / "extensions" / "sentry-lambda-extension"
        script.write_bytes(LAUNCHER + b"#" * (launcher_size - len(LAUNCHER)))
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    if refused:
        assert (code, err) == (2, f"error: {z}:relay/relay: {SHARED_LIBRARY}\n")
    else:
        assert code == 0, err


def test_a_library_for_another_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.elf_fixtures import make_elf

    tree = layer_tree(tmp_path / "t")
    (tree / "python" / "_x.so").write_bytes(make_elf("arm64", kind="shared"))
    z = write_zip(tree, tmp_path / "layer.zip").path
    code, _, err = verify(capsys, str(z), "--arch", "x86_64")
    assert (code, err) == (
        2,
        f"error: {z}:python/_x.so: is a library built for arm64; an x86_64 layer needs x86_64\n",
    )
