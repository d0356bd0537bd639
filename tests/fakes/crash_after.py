"""Fake child: serve /health, print READY, crash with code 1 after SECS seconds."""

import os
import sys
import time

from _health import exit_on_sigterm, ready, serve_health

exit_on_sigterm()
serve_health()
ready()
time.sleep(float(sys.argv[1]))
print("crashing", file=sys.stderr, flush=True)
os._exit(1)
