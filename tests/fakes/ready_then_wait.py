"""Fake child: serve /health, print READY, exit 0 on SIGTERM."""

from _health import exit_on_sigterm, ready, serve_health, wait_forever

exit_on_sigterm()
serve_health()
ready()
wait_forever()
