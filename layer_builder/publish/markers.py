"""Release markers: what a published layer version's ``Description`` says it holds.


Every version this tool publishes ends its ``Description`` with a release marker,
``[<canonical> <version> sha256:<64 hex digits>]``: which release (layer and version) and
which zip it holds. ``ListLayerVersions`` returns descriptions, so the listing the plan reads
anyway shows, without a ``GetLayerVersion`` per version, which versions anywhere in the
layer's history hold a given zip, and whether this release already exists there with other
bytes (a conflict, refused before any write). Versions published before the release marker
carry ``[sha256:<first 12 hex digits>]`` (content only); they are still read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from layer_builder.errors import ArtifactError

#: Lambda's limit on a layer version's Description.
MAX_DESCRIPTION = 256
#: A marker at the end of a Description: the release (optional) and the zip's sha256.
MARKER_RE = re.compile(
    r"\[(?:(?P<canonical>[^\s\[\]]+) (?P<release>[^\s\[\]]+) )?"
    r"sha256:(?P<sha>[0-9a-f]{64}|[0-9a-f]{12})\]\s*$"
)


@dataclass(frozen=True)
class Marker:
    """What a version's Description says it holds."""

    sha: str  # hex: the whole digest, or its first 12 digits (markers from before releases)
    canonical: str | None = None
    release: str | None = None

    def holds(self, sha256_hex: str) -> bool:
        """Whether the marker names this zip (a 12-digit marker: by prefix)."""
        return sha256_hex == self.sha if len(self.sha) == 64 else sha256_hex.startswith(self.sha)

    def claims(self, canonical: str, release: str) -> bool:
        """Whether the marker says the version belongs to this release."""
        return (self.canonical, self.release) == (canonical, release)


def parse_marker(description: str) -> Marker | None:
    """The marker ending ``description``, or None (a version we did not publish)."""
    m = MARKER_RE.search(description or "")
    if m is None:
        return None
    return Marker(m["sha"], m["canonical"], m["release"])


def content_marker(sha256_hex: str) -> str:
    """The content-only marker of versions published before the release marker."""
    return f"[sha256:{sha256_hex[:12]}]"


def release_marker(canonical: str, release: str, sha256_hex: str) -> str:
    """The marker naming the release and the zip in a version's Description."""
    return f"[{canonical} {release} sha256:{sha256_hex}]"


def marked_description(
    description: str, sha256_hex: str, canonical: str | None = None, release: str | None = None
) -> str:
    """``description`` with the marker appended (the release marker when ``canonical`` and
    ``release`` are given), the text shortened to fit Lambda's limit."""
    if canonical and release:
        marker = release_marker(canonical, release, sha256_hex)
    else:
        marker = content_marker(sha256_hex)
    room = MAX_DESCRIPTION - len(marker) - 1
    if room < 0:
        raise ArtifactError(
            f"{canonical} {release}: the release marker is {len(marker)} characters, more "
            f"than a layer Description holds ({MAX_DESCRIPTION}); shorten the canonical name"
        )
    text = description if len(description) <= room else description[: max(0, room - 3)] + "..."
    return f"{text} {marker}" if text else marker
