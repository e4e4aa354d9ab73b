"""Consumers of the registry: ``rules`` says what a function should have (pure),
``function`` reads the function on Lambda and applies it."""
