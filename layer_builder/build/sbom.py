"""The layer's SBOM: a CycloneDX 1.6 JSON document, built with cyclonedx-python-lib.

It lists what a security team asks about without downloading the layer:

- every package the layer bundles (the build manifest's ``packages``) with its version,
  license and hashes: for Python the sha256 of the wheel pip installed (from pip's
  installation report) and the license from the installed METADATA; for Node the
  ``integrity`` digest and license npm recorded in ``nodejs/package-lock.json``;
- the extension binaries, each with its sha256 and where it came from;
- the files we add ourselves (the SDK wrapper, the extension launcher) with their sha256.

The document is deterministic: its timestamp is the build's SOURCE_DATE_EPOCH and its serial
number is derived from the zip's sha256, so two builds of the same bytes give the same SBOM.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cyclonedx.factory.license import LicenseFactory
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from layer_builder.model import BuildManifest, BundledPackage, ExtensionInfo

log = logging.getLogger(__name__)

SPEC_VERSION = SchemaVersion.V1_6
_NAMESPACE = uuid.UUID("6f0c1f5e-3f38-4e5b-9d7e-6c1b2a8f4d10")  # layer-builder's SBOM serials
_ALGORITHMS = {"sha1": HashAlgorithm.SHA_1, "sha256": HashAlgorithm.SHA_256,
               "sha384": HashAlgorithm.SHA_384, "sha512": HashAlgorithm.SHA_512}  # fmt: skip


def python_purl(name: str, version: str) -> str:
    # PyPI purls use the normalised project name (PEP 503).
    return str(PackageURL("pypi", None, _normalise(name), version))


def npm_purl(name: str, version: str) -> str:
    scope, _, bare = name.rpartition("/")
    return str(PackageURL("npm", scope or None, bare, version))


def package_purl(family: str, pkg: BundledPackage) -> str:
    return python_purl(pkg.name, pkg.version) if family == "python" else npm_purl(*_nv(pkg))


def _nv(pkg: BundledPackage) -> tuple[str, str]:
    return pkg.name, pkg.version


def _normalise(name: str) -> str:
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def layer_sbom(
    *,
    root: Path,
    family: str,
    layer_name: str,
    version: str,
    zip_sha256: str,
    packages: Sequence[BundledPackage],
    extensions: Sequence[ExtensionInfo],
    own_files: Iterable[str],
    epoch: int,
    pip_report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CycloneDX JSON document (as a dict) of the layer built in ``root``.

    ``own_files`` are the POSIX paths (inside the layer) of the files we place ourselves;
    ``pip_report`` is pip's ``--report`` of the Python install, when there was one.
    """
    licenses = LicenseFactory()
    components: list[Component] = []
    if family == "python":
        meta = _python_metadata(root / "python")
        wheels = _pip_wheels(pip_report or {})
        for pkg in packages:
            key = _normalise(pkg.name)
            lic = meta.get(key, {}).get("license")
            url, digests = wheels.get(key, (None, {}))
            components.append(
                _package(pkg, python_purl(pkg.name, pkg.version), lic, digests, url, licenses)
            )
    else:
        lock = _npm_lock(root / "nodejs")
        for pkg in packages:
            entry = lock.get((pkg.name, pkg.version), {})
            digests = _integrity(entry.get("integrity"))
            lic = entry.get("license") or _npm_license(root / "nodejs", pkg)
            components.append(
                _package(pkg, npm_purl(*_nv(pkg)), lic, digests, entry.get("resolved"), licenses)
            )
    for ext in extensions:
        components.append(_extension(ext))
    binaries = {ext.path for ext in extensions}
    for path in sorted(set(own_files) - binaries):
        file = root / path
        if file.is_file():
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            components.append(
                Component(
                    name=path,
                    type=ComponentType.FILE,
                    bom_ref=f"file:{path}",
                    hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)],
                    description="added by layer-builder",
                )
            )
    layer = Component(
        name=layer_name,
        version=version,
        type=ComponentType.APPLICATION,
        bom_ref=f"layer:{layer_name}@{version}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=zip_sha256)],
        description="AWS Lambda layer zip",
    )
    bom = Bom(
        components=components,
        serial_number=uuid.uuid5(_NAMESPACE, f"{layer_name}@{version}:{zip_sha256}"),
        metadata=BomMetaData(
            component=layer, timestamp=datetime.fromtimestamp(epoch, tz=timezone.utc)
        ),
    )
    bom.register_dependency(layer, components)
    data: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    # The library records itself (with its version) as the tool; say who built the layer.
    data["metadata"].pop("tools", None)
    data["metadata"]["tools"] = {"components": [{"type": "application", "name": "layer-builder"}]}
    return data


def validation_error(doc: Mapping[str, Any]) -> str | None:
    """Why ``doc`` is not a valid CycloneDX 1.6 JSON document, or None."""
    error = JsonStrictValidator(SPEC_VERSION).validate_str(json.dumps(doc))
    return None if error is None else str(error)


def merge_sboms(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One SBOM for a release of several layers (per-arch): the first document, with the
    components of the others it does not already list (by ``bom-ref``) appended."""
    merged: dict[str, Any] = json.loads(json.dumps(docs[0]))
    seen = {c.get("bom-ref") for c in merged.get("components", [])}
    for doc in docs[1:]:
        for component in doc.get("components", []):
            if component.get("bom-ref") not in seen:
                merged.setdefault("components", []).append(component)
                seen.add(component.get("bom-ref"))
        top = doc.get("metadata", {}).get("component")
        if top is not None:
            merged.setdefault("components", []).append(top)
    return merged


def package_summary(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """``[{name, version, purl}]`` of every library in an SBOM: the registry's ``packages``."""
    out = []
    for c in doc.get("components", []):
        if c.get("type") == "library" and c.get("purl"):
            name = f"{c['group']}/{c['name']}" if c.get("group") else c["name"]
            out.append({"name": name, "version": c.get("version", ""), "purl": c["purl"]})
    return sorted(out, key=lambda p: (p["name"].lower(), p["version"]))


# --- components --------------------------------------------------------------------------


def _package(
    pkg: BundledPackage,
    purl: str,
    license_text: str | None,
    digests: Mapping[str, str],
    url: str | None,
    licenses: LicenseFactory,
) -> Component:
    hashes = [
        HashType(alg=_ALGORITHMS[alg], content=value)
        for alg, value in sorted(digests.items())
        if alg in _ALGORITHMS
    ]
    refs = []
    if url:
        refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url)))
    # npm scopes are CycloneDX groups: @sentry/node is group "@sentry", name "node".
    group, _, name = pkg.name.rpartition("/") if purl.startswith("pkg:npm/") else ("", "", pkg.name)
    return Component(
        name=name,
        group=group or None,
        version=pkg.version,
        type=ComponentType.LIBRARY,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        hashes=hashes,
        licenses=[licenses.make_from_string(license_text)] if license_text else [],
        external_references=refs,
    )


def _extension(ext: ExtensionInfo) -> Component:
    refs = []
    if "://" in ext.source:
        refs.append(
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(ext.source))
        )
    props = [Property(name="layer-builder:source", value=ext.source)]
    if ext.architecture:
        props.append(Property(name="layer-builder:architecture", value=ext.architecture))
    if ext.path:
        props.append(Property(name="layer-builder:path", value=ext.path))
    return Component(
        name=ext.name,
        version=ext.version,
        type=ComponentType.APPLICATION,
        bom_ref=f"extension:{ext.name}@{ext.version}:{ext.architecture or ext.sha256[:12]}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=ext.sha256)],
        external_references=refs,
        properties=props,
        description=f"Lambda extension binary ({ext.architecture or 'x86_64'})",
    )


# --- what pip and npm recorded -------------------------------------------------------------


def _python_metadata(site: Path) -> dict[str, dict[str, str]]:
    """Normalised name -> {"license": ...} from each installed METADATA."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        headers: dict[str, list[str]] = {}
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line:
                break
            key, sep, value = line.partition(": ")
            if sep:
                headers.setdefault(key, []).append(value.strip())
        name = (headers.get("Name") or [""])[0]
        if name:
            out[_normalise(name)] = {"license": _python_license(headers) or ""}
    return {k: {kk: vv for kk, vv in v.items() if vv} for k, v in out.items()}


def _python_license(headers: Mapping[str, list[str]]) -> str | None:
    # PEP 639 first; then a short License field (some put the whole text there); then the
    # trove classifier.
    if headers.get("License-Expression"):
        return headers["License-Expression"][0]
    text = (headers.get("License") or [""])[0]
    if text and len(text) <= 64 and "\n" not in text and text.upper() != "UNKNOWN":
        return text
    for classifier in headers.get("Classifier", []):
        if classifier.startswith("License ::") and not classifier.endswith(":: OSI Approved"):
            return classifier.rsplit(" :: ", 1)[-1]
    return None


def _pip_wheels(report: Mapping[str, Any]) -> dict[str, tuple[str | None, dict[str, str]]]:
    """Normalised name -> (download URL, {algorithm: hex digest}) from pip's report."""
    out: dict[str, tuple[str | None, dict[str, str]]] = {}
    for item in report.get("install", []) or []:
        name = (item.get("metadata") or {}).get("name")
        info = item.get("download_info") or {}
        if not name:
            continue
        archive = info.get("archive_info") or {}
        digests = dict(archive.get("hashes") or {})
        if not digests and "=" in str(archive.get("hash", "")):
            alg, _, value = str(archive["hash"]).partition("=")
            digests[alg] = value
        url = info.get("url")
        out[_normalise(name)] = (url if url and not url.startswith("file:") else None, digests)
    return out


def _npm_lock(nodejs: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(name, version) -> the package-lock.json entry npm wrote for it."""
    for lock in (nodejs / "package-lock.json", nodejs / "node_modules" / ".package-lock.json"):
        try:
            data = json.loads(lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out = {}
        for path, entry in (data.get("packages") or {}).items():
            if not path or not isinstance(entry, dict) or "version" not in entry:
                continue
            name = entry.get("name") or path.rpartition("node_modules/")[2]
            out[(name, entry["version"])] = entry
        return out
    return {}


def _integrity(value: object) -> dict[str, str]:
    """npm's ``sha512-<base64>`` (space-separated, possibly several) as hex digests."""
    out = {}
    for part in str(value or "").split():
        alg, _, b64 = part.partition("-")
        try:
            out[alg] = base64.b64decode(b64).hex()
        except ValueError:
            continue
    return out


def _npm_license(nodejs: Path, pkg: BundledPackage) -> str | None:
    try:
        data = json.loads((nodejs / "node_modules" / pkg.name / "package.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("license") if isinstance(data, dict) else None
    if isinstance(value, dict):
        value = value.get("type")
    return value if isinstance(value, str) and value else None


def read_pip_report(path: Path) -> dict[str, Any] | None:
    """pip's installation report at ``path``, or None when there is none (a Node layer, a
    test's fake install) or it cannot be read (the SBOM then lists no wheel hashes)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable pip report (%s); the SBOM lists no wheel hashes", path, exc)
        return None
    return data if isinstance(data, dict) else None


def release_sbom(
    family: str, manifests: Sequence[BuildManifest]
) -> tuple[dict[str, Any] | None, tuple[dict[str, str], ...]]:
    """The release's SBOM (the layers' merged) and its ``packages`` summary for the registry.

    Manifests of older builds carry no SBOM: the summary then comes from their ``packages``.
    """
    boms = [m.sbom for m in manifests if m.sbom is not None]
    if boms and len(boms) == len(manifests):
        bom = merge_sboms(boms)
        return bom, tuple(package_summary(bom))
    seen: dict[str, dict[str, str]] = {}
    for m in manifests:
        for pkg in m.packages:
            purl = package_purl(family, pkg)
            seen[purl] = {"name": pkg.name, "version": pkg.version, "purl": purl}
    return None, tuple(sorted(seen.values(), key=lambda p: (p["name"].lower(), p["version"])))
