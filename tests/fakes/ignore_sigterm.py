"""Fake child: ignore SIGTERM, with a grandchild that ignores it too; only SIGKILL ends them."""

import signal
import subprocess
import sys

from _health import ready, serve_health, wait_forever

GRANDCHILD = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ARMED', flush=True)\n"
    "while True: time.sleep(3600)\n"
)

signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", GRANDCHILD], stdout=subprocess.PIPE)
assert grandchild.stdout is not None
grandchild.stdout.readline()  # ARMED: its handler is installed too
print(f"GRANDCHILD {grandchild.pid}", flush=True)
serve_health()
ready()
wait_forever()
