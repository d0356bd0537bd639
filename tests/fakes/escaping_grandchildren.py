"""Fake child: leave two grandchildren outside its process group, then serve /health.

One grandchild is started in a new session (``setsid``), the other by a double fork (fork,
setsid, fork, the middle process exits), so it is reparented away from this child at once.
Both ignore SIGTERM: only SIGKILL ends them. Prints ``GRANDCHILDREN <setsid pid> <double pid>``.
"""

import os
import subprocess
import sys

from _health import exit_on_sigterm, ready, serve_health, wait_forever

SLEEPER = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)"
)

setsid = subprocess.Popen(
    [sys.executable, "-c", SLEEPER],
    start_new_session=True,
    stdin=subprocess.DEVNULL,
)

read_end, write_end = os.pipe()
middle = os.fork()
if middle == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(write_end, str(os.getpid()).encode())
        os.close(write_end)
        os.execv(sys.executable, [sys.executable, "-c", SLEEPER])
    os._exit(0)
os.close(write_end)
os.waitpid(middle, 0)
double = int(os.read(read_end, 64))
os.close(read_end)

print(f"GRANDCHILDREN {setsid.pid} {double}", flush=True)
exit_on_sigterm()
serve_health()
ready()
wait_forever()
