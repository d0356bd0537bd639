"""The stored Qwen credentials, re-read only when another process changed the database."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from qwen_proxy.errors import HOW_TO_PROVIDE, CredentialsMissing
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import credentials as credential_rows
from qwenstack_core.store.credentials import QwenCredentials
from qwenstack_core.store.schema import data_version


class CredentialSource:
    """Hand out the current credentials for every upstream call.

    ``PRAGMA data_version`` changes when another connection (the API server saving or deleting
    credentials) commits, so one cheap pragma per request replaces a table read, and a new POST
    to ``/api/qwen/credentials`` is used by the very next upstream call. The cached values are
    written only by ``refresh`` on the store thread, their one owner.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._version: int | None = None
        self._credentials: QwenCredentials | None = None

    def refresh(self, conn: Connection) -> QwenCredentials | None:
        """Return the stored credentials, reading the row only if the database changed."""
        version = data_version(conn)
        if version != self._version:
            self._credentials = credential_rows.load(conn)
            self._version = version
        return self._credentials

    async def current(self) -> QwenCredentials:
        """Return usable credentials or raise ``CredentialsMissing`` (401) saying how to fix it."""
        return usable(await self._store.read(self.refresh))


def usable(credentials: QwenCredentials | None) -> QwenCredentials:
    """Return ``credentials`` if present and unexpired, else raise ``CredentialsMissing``."""
    if credentials is None or not credentials.token:
        raise CredentialsMissing(f"No Qwen credentials are stored. {HOW_TO_PROVIDE}.")
    expires_at = credentials.expires_at
    if expires_at is not None and expires_at <= time.time():
        when = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
        raise CredentialsMissing(
            f"The stored Qwen credentials expired at {when}. {HOW_TO_PROVIDE}.",
            code="qwen_credentials_expired",
        )
    return credentials
