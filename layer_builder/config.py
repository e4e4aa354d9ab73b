"""Layer configs: YAML validated once into frozen, typed objects.

A config describes one layer family (e.g. the Sentry Python layer) for every architecture.
Nothing outside this module sees the raw YAML. Every problem is reported as
``ConfigError(file, key path, message)`` -> ``error: configs/x.yml: publish.regions: ...``.

Paths inside a config are relative to the config file's directory. Templated fields
(``name``, ``description``, ``sdk.version``, ``publish.s3_bucket``) are Jinja2 templates over
``version``, ``major``, ``minor``, ``patch``, ``arch``, ``arch_suffix`` and, for the S3 bucket
only, ``region``.

``layout: universal`` (the default) builds one layer per release serving every architecture:
``arch_suffix`` is ``""`` and ``arch`` lists the served architectures (``x86_64, arm64``), so
``name`` and ``publish.s3_bucket`` may not use ``arch``. ``layout: per-arch`` builds one layer
per architecture: ``arch`` is that architecture, ``arch_suffix`` ``""`` for x86_64 and
``"-arm64"`` for arm64, and each architecture's ``name`` must differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import jinja2
import jinja2.meta
import jinja2.sandbox

from layer_builder.aws import facts as aws_facts
from layer_builder.errors import ArgumentError, ConfigError
from layer_builder.model import LAYOUTS, PER_ARCH, UNIVERSAL, ReleaseVersion, sort_architectures
from layer_builder.types import Family
from layer_builder.validate import Reader, did_you_mean, read_yaml

SdkSource = Literal["pypi", "path", "npm"]

TEMPLATE_VARS = ("version", "major", "minor", "patch", "arch", "arch_suffix")
_SAMPLE_VERSION = ReleaseVersion.parse("10.20.30")

#: What a template may build: far more than a layer name or a description needs.
_MAX_TEMPLATE_ITEMS = 10_000


class _TemplateEnvironment(jinja2.sandbox.SandboxedEnvironment):
    """Jinja2's sandbox (no reaching into Python objects, bounded ``range``), with ``*`` and
    ``**`` bounded too: ``'x' * 10**10`` or ``9 ** 9 ** 9`` in a config would otherwise take
    the memory or the CPU instead of being an error naming the key."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise jinja2.exceptions.SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                repeated = isinstance(seq, (str, list, tuple)) and isinstance(n, int)
                if repeated and len(seq) * n > _MAX_TEMPLATE_ITEMS:
                    raise jinja2.exceptions.SecurityError("repeats to more than 10,000 items")
        return super().call_binop(context, operator, left, right)


#: Sandboxed: a template is data from a file, and may not reach into Python objects.
_env = _TemplateEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)
#: Lambda's limits on PublishLayerVersion's LicenseInfo and Description.
MAX_LICENSE = 512
MAX_DESCRIPTION = 256
#: ``aws-layer:python``: the registry's canonical name (a directory and a JSON key).
_CANONICAL_RE = re.compile(r"^[A-Za-z0-9._-]+(?::[A-Za-z0-9._-]+)+$")
#: A requirement name pip or npm reads as a package, never as an option or a URL.
_PYPI_NAME_RE = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._, -]+\])?$"
)
_NPM_NAME_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
#: AddLayerVersionPermission's StatementId.
_STATEMENT_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,100}")
#: A registry directory name (``python``, ``node``).
_RUNTIME_DIR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: What a rendered sdk.version may hold: for pip a version (it becomes ``package==version``);
#: for npm any one-word spec (a version, a range, ``file:...tgz``), never an option.
_SDK_VERSION_RE = {
    "python": re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*"),
    "node": re.compile(r"[^\s\-][^\s]*"),
}


def arch_suffix(arch: str) -> str:
    return "" if arch == "x86_64" else f"-{arch}"


@dataclass(frozen=True)
class Template:
    """A validated Jinja2 template string from a config."""

    source: str
    path: str = ""  #: the config file, for errors
    key: str = ""  #: the config key it came from, for errors

    def render(self, version: ReleaseVersion, arch: str | None = None, **extra: str) -> str:
        variables: dict[str, Any] = version.template_vars()
        if arch is not None:
            variables.update(arch=arch, arch_suffix=arch_suffix(arch))
        variables.update(extra)
        try:
            return _env.from_string(self.source).render(variables).strip()
        except (
            jinja2.TemplateError,
            ArithmeticError,
            TypeError,
            ValueError,
            RecursionError,
        ) as exc:
            # e.g. {{ version.major }} (a string has no major) or {{ major // 0 }}
            raise ConfigError(
                self.path, self.key or None, f"template {self.source!r} fails: {exc}"
            ) from None

    def uses(self, variable: str) -> bool:
        return variable in jinja2.meta.find_undeclared_variables(_env.parse(self.source))


@dataclass(frozen=True)
class SdkConfig:
    package: str
    source: SdkSource
    version: Template
    path: Path | None  # a local SDK checkout, for source: path


@dataclass(frozen=True)
class FileCopy:
    source: Path  # absolute
    dest: str  # POSIX path inside the layer
    mode: int


@dataclass(frozen=True)
class PermissionConfig:
    principal: str = "*"
    statement_id: str = "public"
    organization_id: str | None = None
    accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublishConfig:
    regions: tuple[str, ...] | None = None  # None means "all"
    exclude_regions: tuple[str, ...] = ()
    permission: PermissionConfig = PermissionConfig()
    s3_bucket: Template | None = None
    max_workers: int = 64
    region_timeout: float = 600.0
    attempts: int = 4


@dataclass(frozen=True)
class RegistryConfig:
    runtime_dir: str
    link_prereleases: bool = False
    base: tuple[tuple[str, str], ...] = ()  # defaults for base.json when it does not exist yet


@dataclass(frozen=True)
class LayerConfig:
    path: Path
    name: Template
    description: Template
    license: str
    canonical: str
    family: Family
    compatible_runtimes: tuple[str, ...]
    architectures: tuple[str, ...]
    sdk: SdkConfig
    files: tuple[FileCopy, ...]
    extension: Path | None
    publish: PublishConfig
    registry: RegistryConfig
    layout: str = UNIVERSAL
    #: ``optimize.bytecode``: compile python/ for each runtime: ``"cold-path"`` (the modules a
    #: cold start compiles; the default for python layers), ``"all"``, or ``""`` (none)
    bytecode: str = ""
    #: ``optimize.single_sdk_copy``: the Node handler shim reuses the preloaded SDK (default
    #: for node layers)
    single_sdk_copy: bool = False
    #: ``optimize.bundle``: each npm package with an exports map bundled on its own (default
    #: for node layers)
    bundle: bool = False

    @property
    def universal(self) -> bool:
        return self.layout == UNIVERSAL

    def template_vars(self, archs: tuple[str, ...] | str | None) -> dict[str, str]:
        """``arch``/``arch_suffix`` for a layer serving ``archs`` (a per-arch layer: one)."""
        if archs is None:
            return {}
        if isinstance(archs, str):
            archs = (archs,)
        if self.universal:
            # One name for every architecture: the suffix is always empty.
            return {"arch": ", ".join(archs), "arch_suffix": ""}
        (arch,) = archs
        return {"arch": arch, "arch_suffix": arch_suffix(arch)}

    def layer_name(self, version: ReleaseVersion, arch: str | None = None) -> str:
        """The layer's name: per-arch, ``arch``'s layer; universal, the one layer (``arch``
        is ignored: its name never depends on the architectures)."""
        if self.universal:
            variables = {"arch_suffix": ""}
        else:
            assert arch is not None, "a per-arch layer name needs its architecture"
            variables = self.template_vars(arch)
        name = self.name.render(version, **variables)
        _check_layer_name(name, self.path, "name")
        return name

    def description_for(self, version: ReleaseVersion, archs: tuple[str, ...]) -> str:
        return self.description.render(version, **self.template_vars(archs))

    def sdk_version(self, version: ReleaseVersion) -> str:
        return self.sdk.version.render(version)

    def select_architectures(self, requested: list[str] | None) -> tuple[str, ...]:
        """The architectures to build, x86_64 first: all configured ones, or those requested."""
        if not requested:
            return sort_architectures(self.architectures)
        out: list[str] = []
        for arch in requested:
            if arch not in self.architectures:
                raise ArgumentError(
                    f"--arch {arch}: not an architecture of {self.path} "
                    f"(configured: {', '.join(self.architectures)})"
                )
            out.append(arch)
        return sort_architectures(out)


# --------------------------------------------------------------------------- loading


T = TypeVar("T")


class _Reader(Reader):
    """The shared accessors, and Jinja2 templates over a release's version."""

    def template(self, value: Any, key: str, extra_vars: tuple[str, ...] = ()) -> Template:
        source = self.string(value, key)
        try:
            ast = _env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise self.fail(key, f"bad template: {exc.message}") from None
        allowed = TEMPLATE_VARS + extra_vars
        for name in sorted(jinja2.meta.find_undeclared_variables(ast)):
            if name not in allowed:
                raise self.fail(
                    key,
                    f"template uses unknown variable {name!r}"
                    + did_you_mean(name, allowed)
                    + f" (known: {', '.join(allowed)})",
                )
        template = Template(source, str(self.path), key)
        # Rendered once now, so that a template that fails ({{ major // 0 }}) fails here,
        # naming its key, and not halfway through a build.
        template.render(_SAMPLE_VERSION, "x86_64", **{v: "x" for v in extra_vars})
        return template


def _check_layer_name(name: str, path: Path, key: str) -> None:
    if not aws_facts.LAYER_NAME_RE.fullmatch(name):
        raise ConfigError(str(path), key, f"layer name {name!r} must match [a-zA-Z0-9-_]+")
    if len(name) > aws_facts.LAYER_NAME_MAX:
        raise ConfigError(
            str(path),
            key,
            f"layer name {name!r} is {len(name)} characters; "
            f"the limit is {aws_facts.LAYER_NAME_MAX}",
        )


_TOP = {
    "name": True,
    "description": True,
    "license": True,
    "canonical": True,
    "runtime": True,
    "compatible_runtimes": True,
    "architectures": True,
    "sdk": True,
    "files": False,
    "extension": False,
    "publish": False,
    "registry": True,
    "layout": False,
    "optimize": False,
}


def load_config(path: str | Path) -> LayerConfig:
    """Read and validate a layer config; raises ConfigError naming the file and key."""
    path = Path(path)
    raw = read_yaml(path, "config file")
    r = _Reader(path)
    data = r.mapping(raw, "", _TOP)

    family: Family = r.choice(data["runtime"], "runtime", ("python", "node"))  # type: ignore[assignment]
    runtimes = _runtimes(r, data["compatible_runtimes"], family)
    archs = r.string_list(data["architectures"], "architectures")
    if not archs:
        raise r.fail("architectures", "list at least one architecture")
    for i, a in enumerate(archs):
        r.choice(a, f"architectures[{i}]", aws_facts.ARCHITECTURES)
    if len(set(archs)) != len(archs):
        raise r.fail("architectures", "lists an architecture twice")

    layout = r.choice(data.get("layout", UNIVERSAL), "layout", LAYOUTS)
    name = r.template(data["name"], "name")
    if layout == UNIVERSAL:
        if name.uses("arch"):
            raise r.fail(
                "name",
                "uses {{ arch }}, but a universal layer has one name for every architecture "
                "(drop it, or set layout: per-arch for one layer per architecture)",
            )
        _check_layer_name(name.render(_SAMPLE_VERSION, arch_suffix=""), path, "name")
    else:
        names = {a: name.render(_SAMPLE_VERSION, a) for a in archs}
        for a in archs:
            _check_layer_name(names[a], path, "name")
        if len(set(names.values())) != len(names):
            raise r.fail(
                "name",
                "renders to the same layer name for every architecture; with layout: per-arch "
                "each architecture needs its own layer (use {{ arch_suffix }} or {{ arch }})",
            )
    canonical = r.string(data["canonical"], "canonical")
    if not _CANONICAL_RE.fullmatch(canonical):
        raise r.fail("canonical", f"{canonical!r} should look like 'aws-layer:{family}'")
    named = canonical.partition(":")[2]  # the <runtime> of aws-layer:<runtime>
    if named in ("python", "node") and named != family:
        # Consumers pick the entry by the function's runtime (python3.* -> aws-layer:python):
        # a python layer under the node entry would be attached to Node functions.
        raise r.fail("canonical", f"{canonical!r} names the {named} layer, but runtime is {family}")

    description = r.template(data["description"], "description")
    shown = description.render(_SAMPLE_VERSION, "x86_64")
    if len(shown) > MAX_DESCRIPTION:
        raise r.fail(
            "description", f"renders to {len(shown)} characters; Lambda allows {MAX_DESCRIPTION}"
        )
    license_text = r.string(data["license"], "license")
    if len(license_text) > MAX_LICENSE:
        raise r.fail("license", f"is {len(license_text)} characters; Lambda allows {MAX_LICENSE}")
    return LayerConfig(
        path=path,
        name=name,
        description=description,
        license=license_text,
        canonical=canonical,
        family=family,
        compatible_runtimes=runtimes,
        architectures=archs,
        sdk=_sdk(r, data["sdk"], family),
        files=_files(r, data.get("files") or []),
        extension=None
        if data.get("extension") is None
        else r.path_in(data["extension"], "extension"),
        publish=_publish(r, data.get("publish") or {}, layout),
        registry=_registry(r, data["registry"]),
        layout=layout,
        **_optimize(r, data.get("optimize"), family),
    )


#: ``optimize`` keys: the family each applies to (on by default there), and what it does.
_OPTIMIZE = {
    "bytecode": ("python", "only a python layer carries bytecode"),
    "single_sdk_copy": ("node", "only a node layer has the SDK's handler shim"),
    "bundle": ("node", "only a node layer has npm packages to bundle"),
}


#: ``optimize.bytecode`` as a word: every module, or those a cold start compiles (the default).
_BYTECODE = ("all", "cold-path")


def _optimize(r: _Reader, value: Any, family: Family) -> dict[str, Any]:
    """``optimize.bytecode`` (python layers: precompiled ``__pycache__``; ``cold-path`` by
    default, ``all``, or ``true``/``false``: all or none, as before the cold path) and
    ``optimize.single_sdk_copy`` (node layers: the handler shim reuses the preloaded SDK) and
    ``optimize.bundle`` (node layers: each npm package bundled on its own); each is on by
    default for its family. ``optimize: false`` turns every one off."""
    if value is None:  # no `optimize`, or an empty one: every default
        value = {}
    elif value is False:  # `optimize: false`: the plain trees, as upstream's build scripts
        value = dict.fromkeys(_OPTIMIZE, False)
    d = r.mapping(value, "optimize", dict.fromkeys(_OPTIMIZE, False))
    out: dict[str, Any] = {}
    for key, (owner, why) in _OPTIMIZE.items():
        if key not in d:
            out[key] = family == owner
            continue
        if key == "bytecode" and isinstance(d[key], str):
            if d[key] not in _BYTECODE:  # a word that is none of them: name the switch too
                words = (*_BYTECODE, "true", "false")
                raise r.fail(
                    "optimize.bytecode",
                    f"{d[key]!r} is not one of {', '.join(words)}" + did_you_mean(d[key], words),
                )
            on: Any = d[key]
        else:
            want = "true or false" + (", all or cold-path" if key == "bytecode" else "")
            on = r.typed(d[key], f"optimize.{key}", bool, want)
        if on and family != owner:
            raise r.fail(f"optimize.{key}", why)
        out[key] = on
    bytecode = out["bytecode"]
    out["bytecode"] = (
        "" if bytecode is False else bytecode if isinstance(bytecode, str)
        else "cold-path" if "bytecode" not in d else "all"
    )  # fmt: skip
    return out


def _runtimes(r: _Reader, value: Any, family: Family) -> tuple[str, ...]:
    runtimes = r.string_list(value, "compatible_runtimes")
    if not runtimes:
        raise r.fail("compatible_runtimes", "list at least one runtime")
    if len(runtimes) > aws_facts.MAX_COMPATIBLE_RUNTIMES:
        raise r.fail(
            "compatible_runtimes",
            f"lists {len(runtimes)} runtimes; "
            f"Lambda allows at most {aws_facts.MAX_COMPATIBLE_RUNTIMES}",
        )
    for i, rt in enumerate(runtimes):
        key = f"compatible_runtimes[{i}]"
        if rt not in aws_facts.RUNTIME_IDS:
            raise r.fail(
                key, f"unknown Lambda runtime {rt!r}" + did_you_mean(rt, aws_facts.RUNTIME_IDS)
            )
        if aws_facts.runtime_family(rt) != family:
            raise r.fail(key, f"runtime {rt!r} cannot load a {family} layer")
    if len(set(runtimes)) != len(runtimes):
        raise r.fail("compatible_runtimes", "lists a runtime twice")
    return runtimes


def _sdk(r: _Reader, value: Any, family: Family) -> SdkConfig:
    d = r.mapping(value, "sdk", {"package": True, "version": False, "source": False, "path": False})
    default_source = "pypi" if family == "python" else "npm"
    source = r.choice(d.get("source", default_source), "sdk.source", ("pypi", "path", "npm"))
    if family == "node" and source != "npm":
        raise r.fail("sdk.source", "a node layer installs its SDK from npm")
    if family == "python" and source == "npm":
        raise r.fail("sdk.source", "a python layer installs its SDK from pypi or a local path")
    path = None
    if source == "path":
        if "path" not in d:
            raise r.fail("sdk.path", "required when sdk.source is 'path'")
        path = r.path_in(d["path"], "sdk.path")
    elif "path" in d:
        raise r.fail("sdk.path", "only used with sdk.source: path")
    package = r.string(d["package"], "sdk.package")
    pattern = _NPM_NAME_RE if family == "node" else _PYPI_NAME_RE
    if not pattern.fullmatch(package):
        raise r.fail(
            "sdk.package",
            f"{package!r} is not a package name (e.g. "
            + ("@sentry/aws-serverless" if family == "node" else "sentry-sdk")
            + "); options, URLs and version specifiers do not go here",
        )
    version = r.template(d.get("version", "{{ version }}"), "sdk.version")
    sample = version.render(_SAMPLE_VERSION)
    if not _SDK_VERSION_RE[family].fullmatch(sample):
        raise r.fail("sdk.version", f"renders to {sample!r}, which is not a version")
    return SdkConfig(package=package, source=source, version=version, path=path)  # type: ignore[arg-type]


def _files(r: _Reader, value: Any) -> tuple[FileCopy, ...]:
    items = r.typed(value, "files", list, "a list")
    out = []
    for i, item in enumerate(items):
        key = f"files[{i}]"
        d = r.mapping(item, key, {"from": True, "to": True, "mode": False})
        src = r.path_in(d["from"], f"{key}.from")
        if not src.is_file():
            raise r.fail(f"{key}.from", f"{src} is not a file")
        dest = r.string(d["to"], f"{key}.to")
        parts = dest.split("/")
        if dest.startswith("/") or ".." in parts:
            raise r.fail(f"{key}.to", f"{dest!r} must be a relative path inside the layer")
        if any(p in ("", ".") for p in parts) or len(parts) < 2:
            raise r.fail(
                f"{key}.to",
                f"{dest!r} must name a file under one of the layer's directories "
                "(e.g. python/x.py), not a directory",
            )
        mode = d.get("mode", "0644")
        if not (isinstance(mode, str) and mode in ("0644", "0755")):
            raise r.fail(f"{key}.mode", "must be the string '0644' or '0755'")
        out.append(FileCopy(src, dest, int(mode, 8)))
    return tuple(out)


def _regions(r: _Reader, value: Any, key: str) -> tuple[str, ...]:
    regions = r.string_list(value, key)
    for i, reg in enumerate(regions):
        if not aws_facts.REGION_RE.fullmatch(reg):
            raise r.fail(f"{key}[{i}]", f"{reg!r} is not a region name")
    return regions


def _publish_regions(r: _Reader, value: Any) -> tuple[str, ...] | None:
    """``publish.regions``: 'all' (None) or a non-empty list of one partition's regions."""
    if value == "all":
        return None
    if isinstance(value, str):
        raise r.fail("publish.regions", f"{value!r}: give 'all' or a list of region names")
    regions = _regions(r, value, "publish.regions")
    if not regions:
        raise r.fail("publish.regions", "lists no region; give 'all' or at least one region")
    partitions = sorted({aws_facts.partition_of_region(reg) for reg in regions})
    if len(partitions) > 1:
        raise r.fail(
            "publish.regions",
            f"mixes partitions ({', '.join(partitions)}); one set of credentials publishes to "
            "one partition: one config per partition",
        )
    return regions


_PUBLISH = {
    "regions": False,
    "exclude_regions": False,
    "permission": False,
    "s3_bucket": False,
    "max_workers": False,
    "region_timeout": False,
    "attempts": False,
}


#: Upper bounds: a thread per region and layer is plenty (about 35 regions today), a day is
#: longer than any region takes, and more attempts than this only hammer a failing API.
_PUBLISH_MAX = {"max_workers": 1024, "region_timeout": 86_400, "attempts": 20}


def _publish(r: _Reader, value: Any, layout: str = PER_ARCH) -> PublishConfig:
    d = r.mapping(value, "publish", _PUBLISH)
    regions = _publish_regions(r, d.get("regions", "all"))
    perm = _permission(r, d.get("permission") or {})

    def positive(key: str, default: T, typ: type | tuple[type, ...], what: str) -> T:
        v: Any = r.typed(d.get(key, default), f"publish.{key}", typ, what)
        if v <= 0:
            raise r.fail(f"publish.{key}", "must be greater than 0")
        if v > _PUBLISH_MAX[key]:
            raise r.fail(f"publish.{key}", f"{v} is more than {_PUBLISH_MAX[key]:,}")
        return v  # type: ignore[no-any-return]

    bucket = (
        None
        if d.get("s3_bucket") is None
        else r.template(d["s3_bucket"], "publish.s3_bucket", ("region",))
    )
    for var in ("arch", "arch_suffix") if bucket is not None and layout == UNIVERSAL else ():
        if bucket is not None and bucket.uses(var):
            # One zip serves every architecture: a bucket per architecture means nothing.
            raise r.fail(
                "publish.s3_bucket",
                f"uses {{{{ {var} }}}}, which a universal layer does not have "
                "(one bucket per region serves it)",
            )
    return PublishConfig(
        regions=regions,
        exclude_regions=_regions(r, d.get("exclude_regions", []), "publish.exclude_regions"),
        permission=perm,
        s3_bucket=bucket,
        max_workers=positive("max_workers", 64, int, "a whole number"),
        region_timeout=float(positive("region_timeout", 600, (int, float), "a number of seconds")),
        attempts=positive("attempts", 4, int, "a whole number"),
    )


def _permission(r: _Reader, value: Any) -> PermissionConfig:
    key = "publish.permission"
    d = r.mapping(
        value,
        key,
        {"principal": False, "statement_id": False, "organization_id": False, "accounts": False},
    )
    principal = r.string(d.get("principal", "*"), f"{key}.principal")
    if (
        principal != "*"
        and not aws_facts.ACCOUNT_ID_RE.fullmatch(principal)
        and not (principal.startswith("arn:") and principal.endswith(":root"))
    ):
        raise r.fail(
            f"{key}.principal", "must be '*', a 12-digit account id or an account root ARN"
        )
    org = d.get("organization_id")
    if org is not None:
        org = r.string(org, f"{key}.organization_id")
        if not aws_facts.ORGANIZATION_ID_RE.fullmatch(org):
            raise r.fail(
                f"{key}.organization_id", f"{org!r} is not an organization id (o-xxxxxxxxxx)"
            )
        if principal != "*":
            raise r.fail(f"{key}.organization_id", "only allowed with principal '*'")
    accounts = r.string_list(d.get("accounts", []), f"{key}.accounts")
    for i, a in enumerate(accounts):
        if not aws_facts.ACCOUNT_ID_RE.fullmatch(a):
            raise r.fail(f"{key}.accounts[{i}]", f"{a!r} is not a 12-digit account id")
    if accounts and (org or principal != "*"):
        raise r.fail(
            f"{key}.accounts", "use either accounts, or principal/organization_id, not both"
        )
    statement = r.string(d.get("statement_id", "public"), f"{key}.statement_id")
    if not _STATEMENT_ID_RE.fullmatch(statement):
        raise r.fail(
            f"{key}.statement_id",
            f"{statement[:40]!r} is not 1-100 of [a-zA-Z0-9-_] (Lambda's rule)",
        )
    return PermissionConfig(principal, statement, org, accounts)


def _registry(r: _Reader, value: Any) -> RegistryConfig:
    d = r.mapping(
        value, "registry", {"runtime_dir": True, "link_prereleases": False, "base": False}
    )
    runtime_dir = r.string(d["runtime_dir"], "registry.runtime_dir")
    if not _RUNTIME_DIR_RE.fullmatch(runtime_dir):
        raise r.fail("registry.runtime_dir", "must be a single directory name")
    link = r.typed(
        d.get("link_prereleases", False), "registry.link_prereleases", bool, "true or false"
    )
    base_raw = d.get("base") or {}
    base = r.mapping(
        base_raw, "registry.base", {"name": False, "repo_url": False, "main_docs_url": False}
    )
    return RegistryConfig(
        runtime_dir=runtime_dir,
        link_prereleases=link,
        base=tuple((k, r.string(v, f"registry.base.{k}")) for k, v in sorted(base.items())),
    )
