"""Fixtures shared by the publish histories: moto, a layer config and a registry per test."""

from tests.helpers.histories import env  # noqa: F401  (a fixture)
