"""Consumers of the registry: instrumentation planning (pure) and the Lambda calls that apply it."""
