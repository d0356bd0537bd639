"""Fake child: exit at once with CODE, after writing MESSAGE to stderr if given."""

import sys

if len(sys.argv) > 2:
    print(sys.argv[2], file=sys.stderr, flush=True)
sys.exit(int(sys.argv[1]))
