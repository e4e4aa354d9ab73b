"""layer-builder: reproducible AWS Lambda layers, published to every region, recorded in a
registry."""

from __future__ import annotations

__version__ = "0.1.0"
