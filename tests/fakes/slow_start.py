"""Fake child: print READY at once, but answer /health with 200 only after SECS seconds."""

import sys
import time

from _health import exit_on_sigterm, ready, serve_health, wait_forever

ready_at = time.monotonic() + float(sys.argv[1])
exit_on_sigterm()
serve_health(lambda: time.monotonic() >= ready_at)
ready()
wait_forever()
