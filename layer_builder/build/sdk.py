"""Install the SDK into a layer tree for the Lambda platform, not the build machine.

Python: ``pip install --target`` with the manylinux platform tags of the layer's architecture
and the lowest Python version among the layer's runtimes, binary wheels only, so a build on
macOS or on x86_64 produces the right files for an arm64 Lambda. A local SDK checkout is first
turned into a wheel with ``python -m build`` (as sentry-python builds its own layer).

Node: ``npm install --omit=dev`` into ``nodejs/`` with lifecycle scripts off and the target
OS/CPU set, so optional native packages are chosen for Lambda.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from layer_builder import proc
from layer_builder.aws import facts as aws_facts
from layer_builder.config import LayerConfig
from layer_builder.errors import InstallError
from layer_builder.model import BundledPackage

# manylinux2014 (glibc 2.17) keeps wheels loadable on every Python runtime Lambda offers,
# including those on Amazon Linux 2 (glibc 2.26).
_PLATFORM_TAGS = ("manylinux2014_{m}", "manylinux_2_17_{m}")
_NPM_CPU = {"x86_64": "x64", "arm64": "arm64"}


def python_version_for(runtimes: tuple[str, ...]) -> str:
    """The lowest ``X.Y`` among python runtimes: wheels for it load on the newer ones too."""
    versions = sorted(
        tuple(int(p) for p in rt.removeprefix("python").split(".")) for rt in runtimes
    )
    return ".".join(str(p) for p in versions[0])


def pip_install_command(
    requirement: str | Sequence[str],
    target: Path,
    arch: str,
    python_version: str,
    *,
    find_links: Path | None = None,
    report: Path | None = None,
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-input",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
    ]
    for tag in _PLATFORM_TAGS:
        cmd += ["--platform", tag.format(m=aws_facts.MACHINE_NAME[arch])]
    if find_links is not None:
        cmd += ["--find-links", str(find_links)]
    if report is not None:
        # What pip installed, with each wheel's URL and sha256: the SBOM's hashes.
        cmd += ["--report", str(report)]
    return [*cmd, *([requirement] if isinstance(requirement, str) else requirement)]


def install_python_locked(cfg: LayerConfig, arch: str, layer_root: Path, lock: Path) -> None:
    """pip install exactly what ``lock`` lists (``--require-hashes``: every wheel must match
    its recorded sha256; ``--no-deps``: nothing the lock does not list)."""
    target = layer_root / "python"
    target.mkdir(parents=True, exist_ok=True)
    pyver = python_version_for(cfg.compatible_runtimes)
    args = ["--require-hashes", "--no-deps", "-r", str(lock)]
    proc.run(
        pip_install_command(args, target, arch, pyver, report=pip_report_path(layer_root)),
        what=f"pip install from {lock.name} (hash-checked) for {arch}",
    )
    normalise_python_tree(target)


def pip_resolve_command(
    requirement: str, target: Path, arch: str, python_version: str, report: Path
) -> list[str]:
    """What ``lock`` runs: the build's install, resolved but not installed (``--dry-run``),
    reporting every wheel it would install with its URL and sha256."""
    cmd = pip_install_command(requirement, target, arch, python_version, report=report)
    return [*cmd[:-1], "--dry-run", "--ignore-installed", cmd[-1]]


def pip_report_path(layer_root: Path) -> Path:
    """Where the install into ``layer_root`` leaves pip's installation report: beside the
    tree, never in it (the SBOM reads the wheels' URLs and sha256 from it)."""
    return layer_root.with_name(layer_root.name + ".pip-report.json")


def install_python_sdk(cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path) -> None:
    target = layer_root / "python"
    report = pip_report_path(layer_root)
    target.mkdir(parents=True, exist_ok=True)
    pyver = python_version_for(cfg.compatible_runtimes)
    if cfg.sdk.source == "path":
        assert cfg.sdk.path is not None
        _require_build_frontend(cfg.sdk.path)
        with tempfile.TemporaryDirectory(prefix="layer-builder-wheel-") as wheels:
            proc.run(
                [sys.executable, "-m", "build", "--wheel", "--outdir", wheels, str(cfg.sdk.path)],
                what=f"building a wheel from {cfg.sdk.path}",
            )
            built = sorted(Path(wheels).glob("*.whl"))
            if not built:
                raise InstallError(f"building a wheel from {cfg.sdk.path} produced no wheel")
            proc.run(
                pip_install_command(
                    str(built[0]), target, arch, pyver, find_links=Path(wheels), report=report
                ),
                what=f"pip install of {built[0].name}",
            )
    else:
        proc.run(
            pip_install_command(
                f"{cfg.sdk.package}=={sdk_version}", target, arch, pyver, report=report
            ),
            what=f"pip install of {cfg.sdk.package}=={sdk_version} for {arch}",
        )
    normalise_python_tree(target)


def _require_build_frontend(path: Path) -> None:
    # `build` is a dependency of layer-builder; an install made with --no-deps (or a venv
    # that lost it) would otherwise fail with python's bare "No module named build".
    if importlib.util.find_spec("build") is None:
        raise InstallError(
            f"sdk.source: path ({path}) needs the `build` package to make a wheel, and it "
            f"is not installed for {sys.executable}; install it with "
            f"`{sys.executable} -m pip install 'build>=1.2'` (a dependency of layer-builder)"
        )


def normalise_python_tree(target: Path) -> None:
    """Remove what embeds build paths, times or the build machine's interpreter."""
    for cache in sorted(target.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    for pyc in target.rglob("*.py[co]"):
        pyc.unlink()
    # Console scripts carry a shebang naming the build machine's python; Lambda never runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for dist_info in target.glob("*.dist-info"):
        # direct_url.json records the local path a wheel came from; INSTALLER and REQUESTED
        # say nothing useful in a layer. RECORD must stop listing what we remove.
        removed = []
        for name in ("direct_url.json", "INSTALLER", "REQUESTED"):
            f = dist_info / name
            if f.exists():
                f.unlink()
                removed.append(f"{dist_info.name}/{name}")
        record = dist_info / "RECORD"
        if record.exists():
            lines = [
                ln
                for ln in record.read_text(encoding="utf-8").splitlines()
                if ln.split(",", 1)[0] not in removed
                and "__pycache__" not in ln
                and not ln.startswith("../")
            ]
            record.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")


def install_node_sdk(cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path) -> None:
    target = layer_root / "nodejs"
    target.mkdir(parents=True, exist_ok=True)
    write_node_package_json(cfg, sdk_version, target)
    run_npm("install", cfg, sdk_version, arch, target)


def write_node_package_json(cfg: LayerConfig, sdk_version: str, target: Path) -> None:
    """The layer's ``package.json``: the SDK as its one dependency (``lock`` writes the
    same, so a locked build's ``npm ci`` finds the lock in step with it)."""
    manifest = {
        "name": "sentry-lambda-layer",
        "private": True,
        "description": "Dependencies of the Sentry Lambda layer (written by layer-builder)",
        "dependencies": {cfg.sdk.package: sdk_version},
    }
    (target / "package.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def install_node_locked(
    cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path, lock: Path
) -> None:
    """``npm ci`` from ``lock``: exactly the versions it records, each tarball checked
    against its ``integrity``; npm refuses a lock out of step with package.json."""
    target = layer_root / "nodejs"
    target.mkdir(parents=True, exist_ok=True)
    write_node_package_json(cfg, sdk_version, target)
    shutil.copyfile(lock, target / "package-lock.json")
    run_npm("ci", cfg, sdk_version, arch, target)


def run_npm(verb: str, cfg: LayerConfig, sdk_version: str, arch: str, target: Path) -> None:
    extra = ["--package-lock-only"] if verb == "lock" else []
    proc.run(
        [
            "npm",
            "install" if verb == "lock" else verb,
            *extra,
            "--omit=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
            "--os=linux",
            f"--cpu={_NPM_CPU[arch]}",
            "--loglevel=error",
        ],
        cwd=target,
        what=f"npm {verb} of {cfg.sdk.package}@{sdk_version} for {arch}",
        env={"npm_config_update_notifier": "false"},
    )
    if verb == "lock":
        return
    if not (target / "node_modules" / cfg.sdk.package / "package.json").exists():
        raise InstallError(f"npm install did not produce nodejs/node_modules/{cfg.sdk.package}")


def install_sdk(cfg: LayerConfig, sdk_version: str, arch: str, layer_root: Path) -> None:
    if cfg.family == "python":
        install_python_sdk(cfg, sdk_version, arch, layer_root)
    else:
        install_node_sdk(cfg, sdk_version, arch, layer_root)


def bundled_packages(layer_root: Path) -> tuple[BundledPackage, ...]:
    """Every installed Python distribution or Node package in the tree, sorted."""
    found: set[tuple[str, str]] = set()
    for meta in (layer_root / "python").glob("*.dist-info/METADATA"):
        fields: dict[str, str] = {}
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line:
                break
            key, _, value = line.partition(": ")
            fields.setdefault(key, value)
        if "Name" in fields and "Version" in fields:
            found.add((fields["Name"], fields["Version"]))
    modules = layer_root / "nodejs" / "node_modules"
    for pkg_json in modules.glob("**/package.json") if modules.exists() else ():
        rel = pkg_json.relative_to(modules).parts
        # Only package roots: node_modules/<name>/package.json or node_modules/@scope/<name>/...
        parts = [p for p in rel[:-1]]
        if "node_modules" in parts:
            parts = parts[len(parts) - 1 - parts[::-1].index("node_modules") :][1:]
        if not (len(parts) == 1 or (len(parts) == 2 and parts[0].startswith("@"))):
            continue
        try:
            data = json.loads(pkg_json.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if (
            isinstance(data, dict)
            and isinstance(data.get("name"), str)
            and isinstance(data.get("version"), str)
        ):
            found.add((data["name"], data["version"]))
    return tuple(BundledPackage(n, v) for n, v in sorted(found, key=lambda p: (p[0].lower(), p[1])))
