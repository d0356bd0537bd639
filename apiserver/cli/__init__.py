"""The ``apiserver`` command line: argument handling and one module per command."""

from apiserver.cli.main import main

__all__ = ["main"]
