"""WAL checkpoints off the write path: one thread with its own connection, owned by the Store.

SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past 1000 pages: that
commit then copies the WAL into the database file and fsyncs it, tens of milliseconds during
which every write queued behind it waits (it was the p99 of the write path). The Store that
owns the database turns it off on its connection (``wal_autocheckpoint = 0``) and this thread
runs PASSIVE checkpoints instead. A PASSIVE checkpoint takes no lock a writer needs, so a commit
never waits for one, and readers (the children) see every commit whether it was copied yet or
not. Children keep SQLite's automatic checkpoint on their own connections.

The WAL cannot grow without bound: it is checkpointed every ``CHECKPOINT_EVERY`` commits and
once a second after any commit; once fully copied, the next write starts it over from its
beginning. Under a steady stream of writes a checkpoint on this thread never finds the WAL
complete (frames arrive while it copies), so past ``FINISH_PAGES`` the store thread itself runs
one PASSIVE checkpoint before its next write (``finish_on``), and so it does every
``FINISH_EVERY`` commits in any case: the frames are nearly all copied already, so that costs
the write path a small copy and an fsync per ``FINISH_PAGES`` pages or ``FINISH_EVERY`` commits,
where SQLite's own checkpoint copied and synced everything every 1000 pages. Only a reader
holding an old snapshot can keep that from completing; past ``RESTART_PAGES`` a RESTART
checkpoint waits for such readers (writers wait meanwhile, rarely).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from qwenstack_core.logsetup import get_logger

log = get_logger("qwenstack_core.store")

CHECKPOINT_EVERY = 200  # commits (a catalog write adds 2-4 pages: well under 1000 pages)
IDLE_CHECKPOINT_S = 1.0
FINISH_PAGES = 2048  # 8 MiB of WAL at 4 KiB pages
# Also every so many commits: this thread may be starved of the CPU (or the GIL) by the very
# writes it should keep up with, and then never learns how long the WAL has grown.
FINISH_EVERY = 1000
RESTART_PAGES = 16384  # 64 MiB
RESTART_BUSY_TIMEOUT_MS = 2000


class Checkpointer:
    """Checkpoint the WAL of ``path`` on a dedicated thread when commits have added to it."""

    def __init__(self, path: Path, connect: Callable[[Path], sqlite3.Connection]) -> None:
        self._path = path
        self._connect = connect
        self._wake = threading.Event()
        self._stopping = False
        self._commits = 0  # since the last checkpoint; a lost increment only delays one
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed checkpoint runs (for tests and diagnostics)
        self.last_result: tuple[int, int, int] | None = None  # (busy, wal pages, copied)
        self._last_error: str | None = None
        # Set here, cleared by the store thread: the WAL is long and this thread cannot
        # complete a checkpoint of it while writes keep coming.
        self.finish_wanted = False
        self._since_finish = 0  # commits since the store thread last completed a checkpoint
        self.finished = 0  # checkpoints completed by the store thread (for tests)
        self.restarts = 0  # RESTART checkpoints, which make writers wait (for tests)

    def start(self) -> None:
        """Start the thread (its connection is opened there)."""
        self._thread = threading.Thread(target=self._work, name="store-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Count one commit (store thread); wake the checkpointer every ``CHECKPOINT_EVERY``."""
        self._commits += 1
        self._since_finish += 1
        if self._commits >= CHECKPOINT_EVERY:
            self._wake.set()

    def wants_finish(self) -> bool:
        """Return True when the store thread should complete a checkpoint before its write."""
        return self.finish_wanted or self._since_finish >= FINISH_EVERY

    def finish_on(self, conn: sqlite3.Connection) -> None:
        """Complete the checkpoint on the writer's connection (store thread, between writes)."""
        try:
            busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            self.finish_wanted = False
            return  # the write that follows meets the same fault and reports it
        if busy:
            return  # another checkpoint (this thread's last, a child's) is running: next write
        self.finish_wanted = False
        self._since_finish = 0
        if pages == copied:
            self.finished += 1

    def stop(self) -> None:
        """Run a last checkpoint and end the thread (blocking: call it off the event loop)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._thread = None

    def _work(self) -> None:
        try:
            conn = self._connect(self._path)
        except sqlite3.Error as exc:
            log.warning("checkpoint_unavailable", error=str(exc))
            return
        try:
            # PASSIVE never waits; only the rare RESTART does, and not for long.
            conn.execute(f"PRAGMA busy_timeout = {RESTART_BUSY_TIMEOUT_MS}")
            while not self._stopping:
                woken = self._wake.wait(IDLE_CHECKPOINT_S)
                self._wake.clear()
                if woken and self.wants_finish():
                    continue  # writes keep coming: the store thread completes it at the next
                if self._commits:
                    self._commits = 0
                    self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages >= FINISH_PAGES:
                # Copied or not, frames came in meanwhile: the store thread completes it.
                self.finish_wanted = True
            if pages >= RESTART_PAGES:
                busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                self.restarts += 1
        except sqlite3.Error as exc:
            # A read-only or full disk: the write path reports it; say it here once.
            if str(exc) != self._last_error:
                log.warning("checkpoint_failed", error=str(exc))
            self._last_error = str(exc)
            return
        self._last_error = None
        self.last_result = (busy, pages, copied)
        self.checkpoints += 1
