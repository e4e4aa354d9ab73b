"""Fixtures shared by the build tests: a universal layer built through the CLI."""

from tests.helpers.universal import binaries, universal_layer  # noqa: F401  (fixtures)
