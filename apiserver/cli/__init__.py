"""The ``apiserver`` command line: argument handling and one module per command."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apiserver`` console script and ``python -m apiserver``.

    Run as a program (``argv`` None), the daemon first moves to the system allocator (a
    re-execution, see ``apiserver.cli.allocator``), before the heavy imports below.
    """
    if argv is None:
        from apiserver.cli.allocator import use_system_allocator

        use_system_allocator()
    from apiserver.cli.main import main as run_main

    return run_main(argv)


__all__ = ["main"]
