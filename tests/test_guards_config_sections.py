"""Config sections that guard a release, loaded and refused word for word: who may use the
layer (publish.permission), the registry section, extra files, the publish numbers, and the
template variables per layout (mutation testing found these unchecked; see
docs/mutation-testing.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from layer_builder.config import FileCopy, PermissionConfig, load_config
from layer_builder.errors import ArgumentError, ConfigError
from layer_builder.model import ReleaseVersion
from tests.helpers.configs import VALID, write

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
