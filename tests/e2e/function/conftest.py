"""Fixtures shared by the `function` tests: moto's Lambda, an execution role, a registry world."""

from tests.helpers.function import lam, role, world  # noqa: F401  (fixtures)
