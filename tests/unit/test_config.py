"""Config validation: every invalid config exits 2 with one line naming the file and key."""

from __future__ import annotations

import locale
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_builder.cli import main
from layer_builder.config import FileCopy, PermissionConfig, load_config
from layer_builder.errors import ArgumentError, ConfigError
from layer_builder.model import ReleaseVersion
from tests.helpers.configs import VALID, write
from tests.helpers.paths import REPO


def test_valid_config_loads_into_typed_objects(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    v = ReleaseVersion.parse("2.75.0")
    assert cfg.layer_name(v, "x86_64") == "TestLayer"
    assert cfg.layer_name(v, "arm64") == "TestLayer-arm64"
    assert cfg.description.render(v, "arm64") == "Test SDK 2.75.0 (arm64)"
    assert cfg.sdk_version(v) == "2.75.0"
    assert cfg.sdk.source == "pypi"
    assert cfg.publish.regions is None and cfg.publish.permission.statement_id == "public"
    assert (
        cfg.files[0].dest == "python/wrapper.py" and cfg.files[0].source == tmp_path / "wrapper.py"
    )
    with pytest.raises(AttributeError, match="cannot assign to field 'license'"):
        cfg.license = "other"  # type: ignore[misc]


def test_reference_configs_are_valid() -> None:
    root = REPO
    v = ReleaseVersion.parse("10.5.0")
    py = load_config(root / "configs/sentry-python.yml")
    node = load_config(root / "configs/sentry-node.yml")
    # Both are universal: one layer name per release, whatever the architecture.
    assert py.layout == node.layout == "universal"
    assert py.layer_name(v) == py.layer_name(v, "arm64") == "SentryPythonServerlessSDK"
    assert node.layer_name(v) == node.layer_name(v, "arm64") == "SentryNodeServerlessSDKv10"
    assert py.canonical == "aws-layer:python" and node.canonical == "aws-layer:node"
    assert py.architectures == node.architectures == ("x86_64", "arm64")


CASES = [
    # (replace this, with this, expected message after "error: <file>: ")
    ("license: MIT", "licence: MIT", "licence: unknown key; did you mean 'license'?"),
    (
        "python3.13]",
        "python3.13, python3.99]",
        "compatible_runtimes[2]: unknown Lambda runtime 'python3.99'; did you mean 'python3.9'?",
    ),
    (
        "python3.13]",
        "python3.13, nodejs22.x]",
        "compatible_runtimes[2]: runtime 'nodejs22.x' cannot load a python layer",
    ),
    (
        "[x86_64, arm64]",
        "[x86_64, arm65]",
        "architectures[1]: 'arm65' is not one of x86_64, arm64; did you mean 'arm64'?",
    ),
    (
        "{{ arch_suffix }}",
        "{{ arch_sufix }}",
        "name: template uses unknown variable 'arch_sufix'; did you mean 'arch_suffix'? "
        "(known: version, major, minor, patch, arch, arch_suffix)",
    ),
    (
        '"TestLayer{{ arch_suffix }}"',
        '"Test Layer{{ arch_suffix }}"',
        "name: layer name 'Test Layer' must match [a-zA-Z0-9-_]+",
    ),
    (
        '"TestLayer{{ arch_suffix }}"',
        '"' + "L" * 141 + '{{ arch_suffix }}"',
        f"name: layer name '{'L' * 141}' is 141 characters; the limit is 140",
    ),
    (
        '"TestLayer{{ arch_suffix }}"',
        '"TestLayer"',
        "name: renders to the same layer name for every architecture; with layout: per-arch "
        "each architecture needs its own layer (use {{ arch_suffix }} or {{ arch }})",
    ),
    (
        '  principal: "*"',
        '  principal: "*"\n    organisation_id: o-abc',
        "publish.permission.organisation_id: unknown key; did you mean 'organization_id'?",
    ),
    (
        "regions: all",
        "regions: all\n  max_workers: lots",
        "publish.max_workers: expected a whole number, got a string",
    ),
    (
        "regions: all",
        "regions: [us-east-1, Mars]",
        "publish.regions[1]: 'Mars' is not a region name",
    ),
    (
        "  package: sentry-sdk",
        "  package: sentry-sdk\n  source: npm",
        "sdk.source: a python layer installs its SDK from pypi or a local path",
    ),
    (
        "registry:\n  runtime_dir: python\n",
        "registry: {}\n",
        "registry.runtime_dir: missing required key",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize:\n  bytecode: sometimes",
        "optimize.bytecode: 'sometimes' is not one of all, cold-path, true, false",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize: [bytecode]",
        "optimize: expected a mapping, got a list",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize: true",
        "optimize: expected a mapping, got a boolean",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize: {single_sdk_copy: true}",
        "optimize.single_sdk_copy: only a node layer has the SDK's handler shim",
    ),
    (
        "layout: per-arch",
        "layout: per-arch\noptimize: {bytcode: false}",
        "optimize.bytcode: unknown key; did you mean 'bytecode'?",
    ),
    (
        "license: MIT",
        "license: [MIT",
        "invalid YAML: line 4, column 10: expected ',' or ']', but got ':'",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_invalid_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    code = main(["build", str(path), "--version", "1.2.3", "--out", str(tmp_path / "dist")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: {path}: {message}\n"
    assert not (tmp_path / "dist").exists()  # nothing built


def test_more_than_15_runtimes_is_refused(tmp_path: Path) -> None:
    runtimes = ", ".join(["python3.12"] * 16)
    path = write(tmp_path, VALID.replace("[python3.12, python3.13]", f"[{runtimes}]"))
    with pytest.raises(
        ConfigError, match=r"compatible_runtimes: lists 16 runtimes; Lambda allows at most 15"
    ):
        load_config(path)


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["build", str(tmp_path / "nope.yml"), "--version", "1.0.0"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yml'}: config file not found\n"


@pytest.mark.parametrize("bad", ["1.2", "v1.2.3", "latest", "1.2.3.4.x y"])
def test_bad_release_version_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    path = write(tmp_path, VALID)
    assert main(["build", str(path), "--version", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --version: {bad!r} is not a release version")
    assert err.count("\n") == 1


def test_release_versions_parse() -> None:
    assert ReleaseVersion.parse("2.75.0").sort_key() > ReleaseVersion.parse("2.75.0rc1").sort_key()
    v = ReleaseVersion.parse("8.0.0-beta.1")
    assert (v.major, v.minor, v.patch, v.is_prerelease) == (8, 0, 0, True)
    assert not ReleaseVersion.parse("10.75.2").is_prerelease


def test_unknown_arch_argument_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID.replace("[x86_64, arm64]", "[x86_64]"))
    assert main(["build", str(path), "--version", "1.0.0", "--arch", "arm64"]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --arch arm64: not an architecture of {path} (configured: x86_64)\n"
    )
    # A parse error is returned like every user error (main() does not exit).
    assert main(["build", str(path), "--version", "1.0.0", "--arch", "mips"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: layer-builder build: argument --arch: invalid choice: 'mips'")
    assert err.count("\n") == 1


# ------------------------------------------------------------------------------------------------
# Config validation at its edges: Lambda's 140-character layer-name limit and duplicate
# runtimes.


# One architecture, so the name renders without an arch suffix and its length is exact.
ONE_ARCH = VALID.replace("[x86_64, arm64]", "[x86_64]")


def test_a_140_character_layer_name_is_accepted(tmp_path: Path) -> None:
    name = "L" * 140
    cfg = load_config(write(tmp_path, ONE_ARCH.replace("TestLayer{{ arch_suffix }}", name)))
    assert cfg.layer_name(ReleaseVersion.parse("1.0.0"), "x86_64") == name


def test_a_141_character_layer_name_is_refused(tmp_path: Path) -> None:
    name = "L" * 141
    path = write(tmp_path, ONE_ARCH.replace("TestLayer{{ arch_suffix }}", name))
    with pytest.raises(ConfigError, match=r"is 141 characters; the limit is 140$") as exc:
        load_config(path)
    assert exc.value.key == "name"
    assert str(exc.value).startswith(f"{path}: name: layer name '{name}' ")


def test_a_runtime_listed_twice_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("[python3.12, python3.13]", "[python3.12, python3.13, python3.12]")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"compatible_runtimes: lists a runtime twice$") as exc:
        load_config(path)
    assert exc.value.key == "compatible_runtimes"


# ------------------------------------------------------------------------------------------------
# The canonical registry entry must not name the other runtime family: consumers pick the
# entry by the function's runtime (``python3.*`` -> ``aws-layer:python``), so a Python layer
# recorded as ``aws-layer:node`` would be attached to Node functions. A name of the layer's
# own (``aws-layer:tiny``) stays allowed: consumers reach it with ``--canonical``. Only the
# ``<runtime>`` of ``aws-layer:<runtime>`` (after the first colon) is compared.


PYTHON_ENTRY = 'canonical: "aws-layer:python"'
NODE = (
    VALID.replace("runtime: python", "runtime: node")
    .replace("[python3.12, python3.13]", "[nodejs20.x]")
    .replace(PYTHON_ENTRY, 'canonical: "aws-layer:node"')
)


def test_a_python_layer_under_the_node_entry_is_refused(tmp_path: Path) -> None:
    assert PYTHON_ENTRY in VALID
    path = write(tmp_path, VALID.replace(PYTHON_ENTRY, 'canonical: "aws-layer:node"'))
    expected = "canonical: 'aws-layer:node' names the node layer, but runtime is python"
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_a_node_layer_under_the_python_entry_is_refused(tmp_path: Path) -> None:
    assert 'canonical: "aws-layer:node"' in NODE
    path = write(tmp_path, NODE.replace('"aws-layer:node"', '"aws-layer:python"'))
    expected = "canonical: 'aws-layer:python' names the python layer, but runtime is node"
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("base", "canonical", "family"),
    [
        (VALID, "aws-layer:python", "python"),
        (NODE, "aws-layer:node", "node"),
        (VALID, "aws-layer:tiny", "python"),
        (NODE, "aws-layer:tiny", "node"),
        (VALID, "sentry:aws-layer:node", "python"),  # its <runtime> is "aws-layer:node"
    ],
)
def test_the_own_entry_or_a_custom_one_is_kept(
    tmp_path: Path, base: str, canonical: str, family: str
) -> None:
    text = re.sub(r"(?m)^canonical: .*$", f'canonical: "{canonical}"', base)
    cfg = load_config(write(tmp_path, text))
    assert (cfg.canonical, cfg.family) == (canonical, family)


# ------------------------------------------------------------------------------------------------
# load_config at its edges: required keys of a files entry, the 15-runtime limit at exactly
# 15, a universal layer's name check (its message and the empty arch suffix), the extension
# path, YAML errors without a position, the key of a choice that is not a string, and UTF-8
# reading whatever the locale.


UNIVERSAL = VALID.replace("layout: per-arch\n", "").replace(
    '"TestLayer{{ arch_suffix }}"', '"TestLayer"'
)


def refused(path: Path, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  - from: wrapper.py\n    to: python/wrapper.py", "  - to: python/wrapper.py",
         "files[0].from: missing required key"),
        ("  - from: wrapper.py\n    to: python/wrapper.py", "  - from: wrapper.py",
         "files[0].to: missing required key"),
        ("runtime: python", "runtime: 5", "runtime: expected a string, got a number"),
    ],
)  # fmt: skip
def test_missing_file_keys_and_a_runtime_that_is_no_string(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    refused(write(tmp_path, VALID.replace(old, new)), expected)


def test_fifteen_runtimes_pass_the_count_limit(tmp_path: Path) -> None:
    # 15 entries is Lambda's limit itself: the only refusal left is the duplicate.
    runtimes = ", ".join(["python3.12"] * 15)
    path = write(tmp_path, VALID.replace("[python3.12, python3.13]", f"[{runtimes}]"))
    refused(path, "compatible_runtimes: lists a runtime twice")


def test_a_universal_layer_name_is_checked_with_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, UNIVERSAL.replace('"TestLayer"', '"Test.Layer"'))
    refused(path, "name: layer name 'Test.Layer' must match [a-zA-Z0-9-_]+")


def test_a_universal_name_renders_its_arch_suffix_empty(tmp_path: Path) -> None:
    # 140 characters plus an empty suffix is exactly Lambda's limit.
    text = UNIVERSAL.replace('"TestLayer"', '"' + "U" * 140 + '{{ arch_suffix }}"')
    cfg = load_config(write(tmp_path, text))
    assert cfg.layer_name(ReleaseVersion.parse("1.2.3")) == "U" * 140


def test_the_extension_path_is_resolved_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "relay.yml").write_text("x: 1\n")
    cfg = load_config(write(tmp_path, VALID + "extension: ext/relay.yml\n"))
    assert cfg.extension == (tmp_path / "ext" / "relay.yml").resolve()


def test_a_missing_extension_names_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "extension: ext/none.yml\n")
    refused(path, f"extension: {(tmp_path / 'ext' / 'none.yml').resolve()} does not exist")


def test_a_yaml_error_without_a_position_keeps_its_first_line(tmp_path: Path) -> None:
    # The YAML reader refuses control characters with an error that has no problem_mark.
    path = write(tmp_path, VALID.replace("license: MIT", "license: M\x01T"))
    refused(
        path,
        "invalid YAML: unacceptable character #x0001: special characters are not allowed",
    )


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # the locale's encoding is now ASCII
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_a_config_is_read_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale: None) -> None:
    path = write(tmp_path, VALID)
    path.write_bytes(VALID.replace("license: MIT", "license: Café-Licence").encode("utf-8"))
    assert load_config(path).license == "Café-Licence"


def test_a_per_arch_layer_name_without_its_architecture_is_a_programming_error(
    tmp_path: Path,
) -> None:
    cfg = load_config(write(tmp_path, VALID))
    with pytest.raises(AssertionError, match="^a per-arch layer name needs its architecture$"):
        cfg.layer_name(ReleaseVersion.parse("1.2.3"))


# ------------------------------------------------------------------------------------------------
# load_config's own refusals word for word: top-level shape, runtime, architectures, layout,
# canonical, templates, the SDK section and compatible runtimes, unreadable files.


ARCHS = "architectures: [x86_64, arm64]"
RUNTIMES = "compatible_runtimes: [python3.12, python3.13]"
DESCRIPTION = 'description: "Test SDK {{ version }} ({{ arch }})"'
PACKAGE = "  package: sentry-sdk"
KNOWN = "(known: version, major, minor, patch, arch, arch_suffix)"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("runtime: python", "runtime: ruby", "runtime: 'ruby' is not one of python, node"),
        (ARCHS, "architectures: []", "architectures: list at least one architecture"),
        (ARCHS, "architectures: x86_64",
         "architectures: expected a list of strings, got a string"),
        (ARCHS, "architectures: [x86_64, x86_64]", "architectures: lists an architecture twice"),
        (ARCHS, "architectures: [x86_64, true]",
         "architectures[1]: expected a string, got a boolean"),
        (ARCHS, "architectures: [x86_64, ' ']", "architectures[1]: must not be empty"),
        ("layout: per-arch", "layout: mixed", "layout: 'mixed' is not one of universal, per-arch"),
        ('canonical: "aws-layer:python"', 'canonical: "python"',
         "canonical: 'python' should look like 'aws-layer:python'"),
        ('canonical: "aws-layer:python"', "canonical: 5",
         "canonical: expected a string, got a number"),
        (DESCRIPTION, "description: 5", "description: expected a string, got a number"),
        (DESCRIPTION, 'description: "{{ nope }}"',
         f"description: template uses unknown variable 'nope' {KNOWN}"),
        (DESCRIPTION, 'description: "{{ version"', "description: bad template: unexpected end "
         "of template, expected 'end of print statement'."),
        ("license: MIT", "license: ''", "license: must not be empty"),
        ("license: MIT", "license: true", "license: expected a string, got a boolean"),
        ("license: MIT", "license: MIT\nfoo: 1", "foo: unknown key"),
        ("license: MIT", "license: MIT\n1: 1", "1: unknown key"),
        ('name: "TestLayer{{ arch_suffix }}"\n', "", "name: missing required key"),
        (PACKAGE, PACKAGE + "\n  source: path", "sdk.path: required when sdk.source is 'path'"),
        (PACKAGE, PACKAGE + "\n  path: .", "sdk.path: only used with sdk.source: path"),
        (PACKAGE, PACKAGE + "\n  source: git", "sdk.source: 'git' is not one of pypi, path, npm"),
        (PACKAGE, PACKAGE + "\n  version: 7", "sdk.version: expected a string, got a number"),
        ("sdk:\n" + PACKAGE, "sdk: sentry-sdk", "sdk: expected a mapping, got a string"),
        ("sdk:\n" + PACKAGE, "sdk: {}", "sdk.package: missing required key"),
        ("runtime: python", "runtime: node",
         "compatible_runtimes[0]: runtime 'python3.12' cannot load a node layer"),
        (RUNTIMES, "compatible_runtimes: []", "compatible_runtimes: list at least one runtime"),
        (RUNTIMES, "compatible_runtimes: python3.12",
         "compatible_runtimes: expected a list of strings, got a string"),
        (RUNTIMES, "compatible_runtimes: [python3.12, 3]",
         "compatible_runtimes[1]: expected a string, got a number"),
        (RUNTIMES, "compatible_runtimes: [pyton3.12]",
         "compatible_runtimes[0]: unknown Lambda runtime 'pyton3.12'; did you mean 'python3.12'?"),
        (RUNTIMES, "compatible_runtimes: [ruby3.3]",
         "compatible_runtimes[0]: runtime 'ruby3.3' cannot load a python layer"),
    ],
)  # fmt: skip
def test_load_refusals_word_for_word(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_sdk_from_a_missing_local_path(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace(PACKAGE, PACKAGE + "\n  source: path\n  path: nope"))
    with pytest.raises(ConfigError, match="does not exist$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: sdk.path: {tmp_path / 'nope'} does not exist"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping, got a list"),
        ("", "expected a mapping, got nothing (null)"),
        ("just text\n", "expected a mapping, got a string"),
        ("a: [\n", "invalid YAML: line 2, column 1: expected the node content, but found "
         "'<stream end>'"),
    ],
)  # fmt: skip
def test_file_level_refusals(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "layer.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert (str(exc.value), exc.value.key) == (f"{path}: {expected}", None)


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: Is a directory$") as exc:
        load_config(tmp_path)
    assert str(exc.value) == f"{tmp_path}: cannot read: Is a directory"
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text") as exc:
        load_config(latin)
    assert str(exc.value) == (
        f"{latin}: not UTF-8 text: 'utf-8' codec can't decode byte 0xe9 in position 9: "
        "invalid continuation byte"
    )


def test_a_valid_config_keeps_every_value(tmp_path: Path) -> None:
    text = VALID.replace(PACKAGE, PACKAGE + "\n  version: '{{ major }}.x'").replace(
        "license: MIT", "license: Apache-2.0"
    )
    cfg = load_config(write(tmp_path, text))
    assert (cfg.license, cfg.family, cfg.layout) == ("Apache-2.0", "python", "per-arch")
    assert cfg.compatible_runtimes == ("python3.12", "python3.13")
    assert (cfg.sdk.package, cfg.sdk.source, cfg.sdk.path) == ("sentry-sdk", "pypi", None)
    assert cfg.sdk.version.source == "{{ major }}.x"
    assert cfg.extension is None
    universal = load_config(write(tmp_path, VALID.replace("layout: per-arch\n", "").replace(
        '"TestLayer{{ arch_suffix }}"', '"TestLayer"')))  # fmt: skip
    assert universal.layout == "universal"


@pytest.mark.parametrize("layout", ["layout: universal\n", ""])  # universal is the default
def test_a_universal_name_must_not_use_arch(tmp_path: Path, layout: str) -> None:
    text = VALID.replace("layout: per-arch\n", layout).replace("{{ arch_suffix }}", "-{{ arch }}")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="uses {{ arch }}") as exc:
        load_config(path)
    assert str(exc.value) == (
        f"{path}: name: uses {{{{ arch }}}}, but a universal layer has one name for every "
        "architecture (drop it, or set layout: per-arch for one layer per architecture)"
    )


NODE_VALID = (
    VALID.replace("runtime: python", "runtime: node")
    .replace("[python3.12, python3.13]", "[nodejs20.x]")
    .replace('"aws-layer:python"', '"aws-layer:node"')
)


@pytest.mark.parametrize(
    ("base", "old", "new", "expected"),
    [
        (UNIVERSAL, "  regions: all", "  regions: all\n  s3_bucket: 'b-{{ region }}-{{ arch }}'",
         "publish.s3_bucket: uses {{ arch }}, which a universal layer does not have (one "
         "bucket per region serves it)"),
        (UNIVERSAL, "  regions: all",
         "  regions: all\n  s3_bucket: 'b-{{ region }}{{ arch_suffix }}'",
         "publish.s3_bucket: uses {{ arch_suffix }}, which a universal layer does not have "
         "(one bucket per region serves it)"),
        (VALID, "  regions: all", "  regions: all\n  s3_bucket: 5",
         "publish.s3_bucket: expected a string, got a number"),
        (VALID, 'publish:\n  regions: all\n  permission:\n    principal: "*"\n', "publish: [1]\n",
         "publish: expected a mapping, got a list"),
        (VALID, "    to: python/wrapper.py", "    to: 5",
         "files[0].to: expected a string, got a number"),
        (VALID, "  - from: wrapper.py", "  - from: 5",
         "files[0].from: expected a string, got a number"),
        (VALID, PACKAGE, "  package: 5", "sdk.package: expected a string, got a number"),
        (VALID, "  runtime_dir: python", "  runtime_dir: 5",
         "registry.runtime_dir: expected a string, got a number"),
        (VALID, '  principal: "*"', '  accounts: "123456789012"',
         "publish.permission.accounts: expected a list of strings, got a string"),
        (NODE_VALID, PACKAGE, PACKAGE + "\n  source: pypi",
         "sdk.source: a node layer installs its SDK from npm"),
    ],
)  # fmt: skip
def test_more_refusals_word_for_word(
    tmp_path: Path, base: str, old: str, new: str, expected: str
) -> None:
    assert old in base
    path = write(tmp_path, base.replace(old, new))
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_sdk_sources_and_the_smallest_numbers(tmp_path: Path) -> None:
    node = load_config(write(tmp_path, NODE_VALID))
    assert (node.family, node.sdk.source) == ("node", "npm")
    local = load_config(
        write(tmp_path, VALID.replace(PACKAGE, PACKAGE + "\n  source: path\n  path: ."))
    )
    assert (local.sdk.source, local.sdk.path) == ("path", tmp_path)
    one = load_config(
        write(
            tmp_path,
            VALID.replace("  regions: all", "  regions: all\n  max_workers: 1\n  attempts: 1"),
        )
    )
    assert (one.publish.max_workers, one.publish.attempts) == (1, 1)


def test_layer_names_are_checked_when_rendered(tmp_path: Path) -> None:
    from layer_builder.model import ReleaseVersion

    cfg = load_config(
        write(
            tmp_path,
            VALID.replace("TestLayer{{ arch_suffix }}", "L" * 130 + "{{ major }}{{ arch_suffix }}"),
        )
    )
    long = ReleaseVersion.parse("12345678901.0.0")  # 141 characters
    with pytest.raises(ConfigError, match="the limit is 140") as exc:
        cfg.layer_name(long, "x86_64")
    assert exc.value.key == "name"
    assert str(exc.value).startswith(f"{cfg.path}: name: layer name 'LLLL")
    with pytest.raises(AssertionError, match="a per-arch layer name needs its architecture"):
        cfg.layer_name(long)


# ------------------------------------------------------------------------------------------------
# Config sections that guard a release, loaded and refused word for word: who may use the
# layer (publish.permission), the registry section, extra files, the publish numbers, and the
# template variables per layout.


V = ReleaseVersion.parse("2.75.0")
PRINCIPAL = '  principal: "*"'
RUNTIME_DIR = "  runtime_dir: python"
TO = "    to: python/wrapper.py"
REGIONS = "  regions: all"


def load(tmp_path: Path, old: str, new: str):  # type: ignore[no-untyped-def]
    assert old in VALID
    return load_config(write(tmp_path, VALID.replace(old, new)))


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ('  principal: "*"', PermissionConfig("*", "public", None, ())),
        ('  principal: "123456789012"', PermissionConfig("123456789012")),
        ('  principal: "arn:aws:iam::123456789012:root"',
         PermissionConfig("arn:aws:iam::123456789012:root")),
        ('  principal: "*"\n    organization_id: o-abc1234567\n    statement_id: org',
         PermissionConfig("*", "org", "o-abc1234567", ())),
        ('  accounts: ["123456789012", "210987654321"]',
         PermissionConfig("*", "public", None, ("123456789012", "210987654321"))),
    ],
)  # fmt: skip
def test_permissions_load(tmp_path: Path, new: str, expected: PermissionConfig) -> None:
    assert load(tmp_path, PRINCIPAL, new).publish.permission == expected


def test_an_empty_permission_section_is_public(tmp_path: Path) -> None:
    cfg = load(tmp_path, '  permission:\n    principal: "*"\n', "")
    assert cfg.publish.permission == PermissionConfig("*", "public", None, ())


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (PRINCIPAL, "  principal: alice", "publish.permission.principal: must be '*', a "
         "12-digit account id or an account root ARN"),
        (PRINCIPAL, '  principal: "arn:aws:iam::123456789012:user/x"', "publish.permission."
         "principal: must be '*', a 12-digit account id or an account root ARN"),
        (PRINCIPAL, '  principal: "root:aws:iam::123456789012:root"', "publish.permission."
         "principal: must be '*', a 12-digit account id or an account root ARN"),
        (PRINCIPAL, '  principal: "*"\n    organization_id: org-1',
         "publish.permission.organization_id: 'org-1' is not an organization id (o-xxxxxxxxxx)"),
        (PRINCIPAL, '  principal: "123456789012"\n    organization_id: o-abc1234567',
         "publish.permission.organization_id: only allowed with principal '*'"),
        (PRINCIPAL, '  accounts: ["12"]',
         "publish.permission.accounts[0]: '12' is not a 12-digit account id"),
        (PRINCIPAL, '  principal: "123456789012"\n    accounts: ["123456789012"]',
         "publish.permission.accounts: use either accounts, or principal/organization_id, "
         "not both"),
        (PRINCIPAL, '  organization_id: o-abc1234567\n    accounts: ["123456789012"]',
         "publish.permission.accounts: use either accounts, or principal/organization_id, "
         "not both"),
        (PRINCIPAL, '  principal: "*"\n    statement_id: 5',
         "publish.permission.statement_id: expected a string, got a number"),
        (PRINCIPAL, '  principal: 123456789012',
         "publish.permission.principal: expected a string, got a number"),
        (PRINCIPAL, '  principal: "*"\n    organization_id: 7',
         "publish.permission.organization_id: expected a string, got a number"),
        ('  permission:\n    principal: "*"', "  permission: open",
         "publish.permission: expected a mapping, got a string"),
        (RUNTIME_DIR, "  runtime_dir: a/b",
         "registry.runtime_dir: must be a single directory name"),
        (RUNTIME_DIR, "  runtime_dir: .hidden",
         "registry.runtime_dir: must be a single directory name"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  link_prereleases: 'yes'",
         "registry.link_prereleases: expected true or false, got a string"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: {nme: x}",
         "registry.base.nme: unknown key; did you mean 'name'?"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: {name: 5}",
         "registry.base.name: expected a string, got a number"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: [1]",
         "registry.base: expected a mapping, got a list"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: true",
         "registry.base: expected a mapping, got a boolean"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: 3",
         "registry.base: expected a mapping, got a number"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: 2.5",
         "registry.base: expected a mapping, got a number"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: text",
         "registry.base: expected a mapping, got a string"),
        (RUNTIME_DIR, RUNTIME_DIR + "\n  base: 2024-01-01",
         "registry.base: expected a mapping, got date"),
        ("files:\n  - from: wrapper.py\n    to: python/wrapper.py", "files: {a: 1}",
         "files: expected a list, got a mapping"),
        ("files:\n  - from: wrapper.py\n    to: python/wrapper.py", "files: [null]",
         "files[0]: expected a mapping, got nothing (null)"),
        (TO, "    to: /python/wrapper.py",
         "files[0].to: '/python/wrapper.py' must be a relative path inside the layer"),
        (TO, "    to: python/../../x",
         "files[0].to: 'python/../../x' must be a relative path inside the layer"),
        (TO, TO + "\n    mode: '0777'", "files[0].mode: must be the string '0644' or '0755'"),
        (TO, TO + "\n    mode: 755", "files[0].mode: must be the string '0644' or '0755'"),
        (REGIONS, REGIONS + "\n  max_workers: 0", "publish.max_workers: must be greater than 0"),
        (REGIONS, REGIONS + "\n  region_timeout: -1.5",
         "publish.region_timeout: must be greater than 0"),
        (REGIONS, REGIONS + "\n  region_timeout: fast",
         "publish.region_timeout: expected a number of seconds, got a string"),
        (REGIONS, REGIONS + "\n  attempts: true",
         "publish.attempts: expected a whole number, got a boolean"),
        (REGIONS, REGIONS + "\n  attempts: 0", "publish.attempts: must be greater than 0"),
        (REGIONS, REGIONS + "\n  exclude_regions: [eu_west_1]",
         "publish.exclude_regions[0]: 'eu_west_1' is not a region name"),
        (REGIONS, "  regions: [eu-west-1, '']", "publish.regions[1]: must not be empty"),
    ],
)  # fmt: skip
def test_section_refusals_word_for_word(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError, match=re.escape(expected) + "$") as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {expected}"


def test_extra_files_must_exist_and_be_files(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    for source, problem in (("nope.py", "does not exist"), ("adir", "is not a file")):
        path = write(tmp_path, VALID.replace("  - from: wrapper.py", f"  - from: {source}"))
        with pytest.raises(ConfigError, match=problem) as exc:
            load_config(path)
        assert str(exc.value) == f"{path}: files[0].from: {tmp_path / source} {problem}"


def test_sections_load_into_their_values(tmp_path: Path) -> None:
    text = (
        VALID.replace(TO, TO + "\n    mode: '0755'\n  - from: wrapper.py\n    to: python/w2.py")
        .replace(RUNTIME_DIR, RUNTIME_DIR + "\n  link_prereleases: true\n"
                 "  base: {repo_url: 'https://r', name: Python}")
        .replace(REGIONS, "  regions: [us-east-1, eu-west-1]\n  exclude_regions: [eu-west-3]\n"
                 "  max_workers: 5\n  region_timeout: 90\n  attempts: 2\n"
                 "  s3_bucket: 'stage-{{ region }}{{ arch_suffix }}'")
    )  # fmt: skip
    cfg = load_config(write(tmp_path, text))
    assert cfg.files == (
        FileCopy(tmp_path / "wrapper.py", "python/wrapper.py", 0o755),
        FileCopy(tmp_path / "wrapper.py", "python/w2.py", 0o644),
    )
    assert cfg.registry.runtime_dir == "python" and cfg.registry.link_prereleases is True
    assert cfg.registry.base == (("name", "Python"), ("repo_url", "https://r"))
    pub = cfg.publish
    assert (pub.regions, pub.exclude_regions) == (("us-east-1", "eu-west-1"), ("eu-west-3",))
    assert (pub.max_workers, pub.region_timeout, pub.attempts) == (5, 90.0, 2)
    assert isinstance(pub.region_timeout, float)
    assert pub.s3_bucket is not None
    assert pub.s3_bucket.render(V, "arm64", region="eu-west-1") == "stage-eu-west-1-arm64"


def test_defaults_of_an_unset_publish_section(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'publish:\n  regions: all\n  permission:\n    principal: "*"\n', "")
    pub = cfg.publish
    assert (pub.regions, pub.exclude_regions, pub.s3_bucket) == (None, (), None)
    assert (pub.max_workers, pub.region_timeout, pub.attempts) == (64, 600.0, 4)
    assert cfg.registry.link_prereleases is False and cfg.registry.base == ()


def test_template_variables_per_layout(tmp_path: Path) -> None:
    per_arch = load_config(write(tmp_path, VALID.replace(
        'description: "Test SDK {{ version }} ({{ arch }})"',
        'description: "SDK {{ version }} for {{ arch }}{{ arch_suffix }}"')))  # fmt: skip
    assert per_arch.description_for(V, ("arm64",)) == "SDK 2.75.0 for arm64-arm64"
    assert per_arch.description_for(V, ("x86_64",)) == "SDK 2.75.0 for x86_64"
    assert per_arch.template_vars(None) == {}
    assert per_arch.template_vars("arm64") == {"arch": "arm64", "arch_suffix": "-arm64"}
    assert per_arch.layer_name(V, "arm64") == "TestLayer-arm64"

    text = VALID.replace("layout: per-arch\n", "layout: universal\n").replace(
        '"TestLayer{{ arch_suffix }}"', '"TestLayer"'
    )
    universal = load_config(write(tmp_path, text))
    assert universal.template_vars(("x86_64", "arm64")) == {
        "arch": "x86_64, arm64",
        "arch_suffix": "",
    }
    assert universal.description_for(V, ("x86_64", "arm64")) == "Test SDK 2.75.0 (x86_64, arm64)"
    assert universal.layer_name(V) == universal.layer_name(V, "arm64") == "TestLayer"


def test_select_architectures(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert cfg.select_architectures(None) == ("x86_64", "arm64")
    assert cfg.select_architectures([]) == ("x86_64", "arm64")
    assert cfg.select_architectures(["arm64", "x86_64"]) == ("x86_64", "arm64")
    assert cfg.select_architectures(["arm64"]) == ("arm64",)
    with pytest.raises(ArgumentError, match="not an architecture") as exc:
        cfg.select_architectures(["x86_64", "mips"])
    assert str(exc.value) == (
        f"--arch mips: not an architecture of {cfg.path} (configured: x86_64, arm64)"
    )
