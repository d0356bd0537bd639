"""Fake child: healthy for SECS seconds, then /health answers 503 while the process lives on."""

import sys
import time

from _health import exit_on_sigterm, ready, serve_health, wait_forever

sick_at = time.monotonic() + float(sys.argv[1])
exit_on_sigterm()
serve_health(lambda: time.monotonic() < sick_at)
ready()
wait_forever()
