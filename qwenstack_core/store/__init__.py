"""The shared store: one SQLite file, one schema, used by the daemon and both children."""

from qwenstack_core.store.db import Connection, Store, connect
from qwenstack_core.store.schema import LATEST_VERSION, migrate

__all__ = ["LATEST_VERSION", "Connection", "Store", "connect", "migrate"]
