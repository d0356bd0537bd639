"""``python -m apiserver`` and the ``apiserver`` console script: see apiserver.cli."""

import sys

from apiserver.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
