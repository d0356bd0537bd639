"""Fake child: serve /health, send READY=1 to $NOTIFY_SOCKET, print NOTIFIED, exit 0 on SIGTERM."""

from _health import exit_on_sigterm, serve_health, wait_forever

from qwenstack_core.notify import notify_ready

exit_on_sigterm()
serve_health()
print("NOTIFIED" if notify_ready() else "NOT NOTIFIED", flush=True)
wait_forever()
