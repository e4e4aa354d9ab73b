"""Fixtures shared by the end-to-end build tests."""

from tests.helpers.universal import binaries  # noqa: F401  (a fixture)
