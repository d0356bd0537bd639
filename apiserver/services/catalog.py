"""Providers, their configuration and model links, and models: writes publish events.

What these services return is what the API shows: secrets are masked here (apiserver.masking).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from apiserver.masking import config_entry_view, config_view, link_view
from apiserver.realtime.publisher import EventPublisher, iso_now
from apiserver.schemas import ConfigValueIn, LinkIn, ModelIn, ProviderIn
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import models as model_rows
from qwenstack_core.store import providers as provider_rows
from qwenstack_core.store import settings as setting_rows

Row = dict[str, Any]


def providers_payload(action: str, provider_id: str | None, items: list[Row]) -> Row:
    """Build a ``providers:updated`` payload (fields of the seed)."""
    return {
        "action": action,
        "providerId": provider_id,
        "items": items,
        "total": len(items),
        "enabled": sum(1 for p in items if p["enabled"]),
        "timestamp": iso_now(),
    }


def settings_payload(action: str, keys: list[str], values: Row) -> Row:
    """Build a ``settings:updated`` payload."""
    payload = {"action": action, "keys": keys, "settings": values, "timestamp": iso_now()}
    if len(keys) == 1:
        payload["key"] = keys[0]
    return payload


def models_payload(action: str, model_id: str | None, items: list[Row]) -> Row:
    """Build a ``models:updated`` payload (fields of the seed)."""
    return {
        "action": action,
        "modelId": model_id,
        "items": items,
        "total": len(items),
        "timestamp": iso_now(),
    }


def with_dropped(row: Row, dropped: list[str]) -> Row:
    """Say in an answer which secrets a move to another origin dropped (when it did)."""
    if dropped:
        row["secrets_dropped"] = dropped
        row["secrets_message"] = (
            "The provider now sends its requests to another origin: the stored secrets "
            f"{', '.join(dropped)} were entered for the previous one and have been deleted;"
            " send them again in the same request as the baseURL to keep them"
        )
    return row


class ProviderService:
    """Read and change providers; every change publishes ``providers:updated``."""

    def __init__(self, store: Store, events: EventPublisher) -> None:
        self._store = store
        self._events = events
        # The provider list as of the latest committed write, kept by the store thread in
        # commit order (``then`` hooks, see Store.write_then): an enable/disable changes one
        # row of it instead of reading the list again. Only this service writes providers.
        self._listing: list[Row] | None = None

    async def _write(self, action: str, provider_id: str, fn: Any) -> Any:
        """Run ``fn(conn)`` and take the provider list in the same transaction, then publish."""

        def work(conn: Connection) -> tuple[Any, list[Row]]:
            return fn(conn), provider_rows.list_providers(conn)

        def then(_conn: Connection, done: tuple[Any, list[Row]]) -> tuple[Any, list[Row]]:
            self._listing = done[1]
            return done

        result, items = await self._store.write_then(work, then)
        self._published(action, provider_id, items)
        return result

    def _published(self, action: str, provider_id: str, items: list[Row]) -> None:
        """Keep the list just read as the cached one, and publish ``providers:updated``."""
        self._store.prime(("providers", None, None), items)
        self._events.publish("providers:updated", providers_payload(action, provider_id, items))

    async def find(self, *, type_: str | None, enabled: bool | None) -> list[Row]:
        return await self._store.read_cached(
            ("providers", type_, enabled),
            lambda c: provider_rows.list_providers(c, type_=type_, enabled=enabled),
        )

    async def get(self, provider_id: str) -> Row:
        def read(conn: Connection) -> Row:
            provider = provider_rows.get_provider(conn, provider_id)
            provider["config"] = config_view(provider_rows.config_entries(conn, provider_id))
            provider["models"] = [
                link_view(m) for m in provider_rows.linked_models(conn, provider_id)
            ]
            return provider

        return await self._store.read(read)

    async def create(self, new: ProviderIn) -> Row:
        def create(conn: Connection) -> Row:
            provider = provider_rows.create_provider(
                conn,
                id=new.id,
                name=new.name,
                type=new.type,
                enabled=new.enabled,
                priority=new.priority,
                description=new.description,
                config=new.config_values(),
            )
            provider["config"] = config_view(provider_rows.config_entries(conn, new.id))
            return provider

        result: Row = await self._write("created", new.id, create)
        return result

    async def update(self, provider_id: str, changes: Row) -> Row:
        def update(conn: Connection) -> Row:
            origin = provider_rows.secrets_origin(conn, provider_id)
            provider = provider_rows.update_provider(conn, provider_id, changes)
            dropped = provider_rows.drop_secrets_if_moved(conn, provider_id, origin, set())
            return with_dropped(provider, dropped)

        result: Row = await self._write("updated", provider_id, update)
        return result

    async def set_enabled(self, provider_id: str, enabled: bool) -> Row:
        """Enable or disable a provider; return it as the provider list has it now."""

        def toggle(conn: Connection) -> tuple[int, list[Row] | None]:
            # The first write since start reads the list before it. Kept only by ``then``,
            # after the COMMIT: the read shows the earlier writes of its group, which a failed
            # COMMIT undoes (each write then runs again alone, reading again).
            before = provider_rows.list_providers(conn) if self._listing is None else None
            return provider_rows.set_provider_enabled(conn, provider_id, enabled), before

        def then(conn: Connection, done: tuple[int, list[Row] | None]) -> list[Row]:
            # In commit order: the list as the writes committed before this one left it.
            updated_at, before = done
            changed = {"enabled": enabled, "updated_at": updated_at}
            base = self._listing if self._listing is not None else before
            listing = [{**p, **changed} if p["id"] == provider_id else p for p in base or ()]
            if not any(p["id"] == provider_id for p in listing):  # not expected; read it
                listing = provider_rows.list_providers(conn)
            self._listing = listing
            return listing

        items = await self._store.write_then(toggle, then, single_statement=True)
        self._published("enabled" if enabled else "disabled", provider_id, items)
        return next(p for p in items if p["id"] == provider_id)

    async def delete(self, provider_id: str) -> None:
        def delete(conn: Connection) -> dict[str, Any] | None:
            cleared = provider_rows.delete_provider(conn, provider_id)
            return setting_rows.all_values(conn) if cleared else None

        settings = await self._write("deleted", provider_id, delete)
        if settings is not None:  # the active provider went with it: say so
            self._events.publish(
                "settings:updated",
                settings_payload("updated", ["active_provider"], settings),
            )

    async def announce_reload(self, provider_id: str) -> None:
        """Publish ``reloaded`` for a provider that exists (404 otherwise)."""
        await self._write(
            "reloaded", provider_id, lambda c: provider_rows.get_provider(c, provider_id)
        )

    async def connection_settings(self, provider_id: str) -> tuple[Row, Row]:
        """Return (provider, config with real secrets) for the daemon's own outgoing calls only."""

        def read(conn: Connection) -> tuple[Row, Row]:
            provider = provider_rows.get_provider(conn, provider_id)
            return provider, provider_rows.get_config(conn, provider_id)

        return await self._store.read(read)

    # -- configuration ---------------------------------------------------------------------

    async def config(self, provider_id: str) -> Row:
        entries = await self._store.read(lambda c: provider_rows.config_entries(c, provider_id))
        return config_view(entries)

    async def put_config(self, provider_id: str, values: Row) -> Row:
        """Upsert config keys; answer ``{config, updated_count}`` (+ secrets dropped)."""

        def put(conn: Connection) -> Row:
            origin = provider_rows.secrets_origin(conn, provider_id)
            count = provider_rows.replace_config_values(conn, provider_id, values)
            dropped = provider_rows.drop_secrets_if_moved(conn, provider_id, origin, set(values))
            config = config_view(provider_rows.config_entries(conn, provider_id))
            return with_dropped({"config": config, "updated_count": count}, dropped)

        result: Row = await self._write("updated", provider_id, put)
        return result

    async def set_config_value(self, provider_id: str, key: str, body: ConfigValueIn) -> Row:
        def patch(conn: Connection) -> Row:
            origin = provider_rows.secrets_origin(conn, provider_id)
            entry = provider_rows.set_config_value(
                conn, provider_id, key, body.value, body.is_sensitive
            )
            dropped = provider_rows.drop_secrets_if_moved(conn, provider_id, origin, {key})
            return with_dropped(config_entry_view(entry), dropped)

        result: Row = await self._write("updated", provider_id, patch)
        return result

    async def delete_config_value(self, provider_id: str, key: str) -> list[str]:
        """Delete a key; return the secrets dropped because the provider's origin moved."""

        def delete(conn: Connection) -> list[str]:
            origin = provider_rows.secrets_origin(conn, provider_id)
            provider_rows.delete_config_value(conn, provider_id, key)
            return provider_rows.drop_secrets_if_moved(conn, provider_id, origin, set())

        result: list[str] = await self._write("updated", provider_id, delete)
        return result

    # -- model links -----------------------------------------------------------------------

    async def links(self, provider_id: str) -> list[Row]:
        links = await self._store.read(lambda c: provider_rows.linked_models(c, provider_id))
        return [link_view(link) for link in links]

    async def link(self, provider_id: str, body: LinkIn) -> Row:
        link: Row = await self._write(
            "updated",
            provider_id,
            lambda c: provider_rows.link_model(
                c, provider_id, body.model_id, is_default=body.is_default, config=body.config
            ),
        )
        return link_view(link, "config")

    async def unlink(self, provider_id: str, model_id: str) -> None:
        await self._write(
            "updated", provider_id, lambda c: provider_rows.unlink_model(c, provider_id, model_id)
        )

    async def set_default(self, provider_id: str, model_id: str) -> None:
        await self._write(
            "updated",
            provider_id,
            lambda c: provider_rows.set_default_model(c, provider_id, model_id),
        )


class ModelService:
    """Read and change models; every change publishes ``models:updated``."""

    def __init__(self, store: Store, events: EventPublisher) -> None:
        self._store = store
        self._events = events
        # The full model list as of the latest committed write, kept by the store thread (in
        # commit order, see Store.write_then) instead of re-reading every model in every write:
        # that re-read was most of a write's database time once there are dozens of models.
        # Only this service writes the models table.
        self._listing: list[Row] | None = None

    async def _write(
        self,
        action: str,
        model_id: str,
        fn: Any,
        change: Callable[[list[Row], Any], list[Row]],
        *,
        single_statement: bool = False,
    ) -> Any:
        def write(conn: Connection) -> Any:
            if self._listing is None:
                # The first write since start reads the list as it stands before the write:
                # ``then`` runs after the COMMIT of the write's group, when the connection
                # shows the later writes of the group too (they would be counted twice). A read
                # only: a ``single_statement`` write still changes data in one statement.
                self._listing = model_rows.list_models(conn)
            return fn(conn)

        def then(_conn: Connection, result: Any) -> tuple[Any, list[Row]]:
            assert self._listing is not None  # noqa: S101 - loaded by ``write`` before it
            self._listing = change(self._listing, result)
            return result, self._listing

        result, items = await self._store.write_then(write, then, single_statement=single_statement)
        self._store.prime(("models", None, None), items)
        self._events.publish("models:updated", models_payload(action, model_id, items))
        return result

    async def find(self, *, capability: str | None, provider: str | None) -> list[Row]:
        return await self._store.read_cached(
            ("models", capability, provider),
            lambda c: model_rows.list_models(c, capability=capability, provider=provider),
        )

    async def get(self, model_id: str) -> Row:
        model = await self._store.read(lambda c: model_rows.get_model_with_providers(c, model_id))
        model["providers"] = [link_view(p) for p in model["providers"]]
        return model

    async def create(self, new: ModelIn) -> Row:
        result: Row = await self._write(
            "created",
            new.id,
            lambda c: model_rows.create_model(
                c,
                id=new.id,
                name=new.name,
                description=new.description,
                capabilities=new.capabilities,
            ),
            _with_model,
            single_statement=True,  # create_model is one INSERT
        )
        return result

    async def update(self, model_id: str, changes: Row) -> Row:
        result: Row = await self._write(
            "updated",
            model_id,
            lambda c: model_rows.update_model(c, model_id, changes),
            lambda items, row: [row if m["id"] == model_id else m for m in items],
        )
        return result

    async def delete(self, model_id: str) -> None:
        await self._write(
            "deleted",
            model_id,
            lambda c: model_rows.delete_model(c, model_id),
            lambda items, _none: _without_model(items, model_id),
            single_statement=True,  # delete_model is one DELETE (links go by cascade)
        )


def _model_id(model: Row) -> str:
    return str(model["id"])


def _with_model(items: list[Row], row: Row) -> list[Row]:
    """Return a copy of the id-ordered ``items`` with ``row`` in its place (no full re-sort)."""
    listing = list(items)
    bisect.insort(listing, row, key=_model_id)
    return listing


def _without_model(items: list[Row], model_id: str) -> list[Row]:
    """Return the id-ordered ``items`` without the model ``model_id``."""
    at = bisect.bisect_left(items, model_id, key=_model_id)
    if at < len(items) and items[at]["id"] == model_id:
        return items[:at] + items[at + 1 :]
    return items
