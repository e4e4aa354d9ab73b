"""Shared test helpers: fakes, servers, builders and runners used across the suite."""
