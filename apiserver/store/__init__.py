"""The shared store: one SQLite file, one schema, used by the daemon and both children."""

from apiserver.store.db import Store, connect
from apiserver.store.schema import LATEST_VERSION, migrate

__all__ = ["LATEST_VERSION", "Store", "connect", "migrate"]
