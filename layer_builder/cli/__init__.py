"""The command line: ``main(argv) -> int``, the parser, one module per command group, output."""

from layer_builder.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
