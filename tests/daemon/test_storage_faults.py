"""Storage faults at runtime: 503 storage_unavailable, /api/health degraded, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.support.daemon import Api, Daemon, assert_error


def model(n: int, size: int = 10) -> dict[str, str]:
    return {"id": f"m-{n}", "name": f"Model {n}", "description": "d" * size}


async def assert_degraded(api: Api, words: str) -> None:
    status, body = await api.get("/api/health")
    assert status == 200 and body["status"] == "degraded", body
    assert words in body["reason"], body


async def test_replaced_database_file_refuses_writes(
    daemon: Daemon, api: Api, tmp_path: Path
) -> None:
    status, _ = await api.post("/api/models", model(1))
    assert status == 201
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    os.replace(other, daemon.db_path)
    status, body = await api.post("/api/models", model(2))
    assert_error(status, body, 503, "storage_unavailable")
    assert "replaced" in body["error"]["message"]
    await assert_degraded(api, "replaced")
    status, body = await api.put("/api/settings/server.timeout", {"value": 5000})
    assert_error(status, body, 503, "storage_unavailable")


async def test_deleted_database_file_refuses_writes(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    db = tmp_path / "gone.db"
    daemon = await daemon_factory(db_path=db)
    api = Api(http, daemon.url)
    status, _ = await api.get("/api/health")
    assert status == 200
    db.unlink()
    status, body = await api.post("/api/models", model(1))
    assert_error(status, body, 503, "storage_unavailable")
    assert "deleted" in body["error"]["message"]
    await assert_degraded(api, "deleted")
    # Nothing was acknowledged, so nothing is lost: a restart starts from a fresh file.
    await daemon.stop()
    daemon = await daemon_factory(db_path=db)
    api = Api(http, daemon.url)
    status, body = await api.get("/api/health")
    assert body["status"] == "ok"
    status, body = await api.get("/api/models/m-1")
    assert_error(status, body, 404, "model_not_found")


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``where`` (skip the test where mounting is not allowed)."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; return it."""
    filler = directory / "filler"
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def test_full_disk_is_503_then_recovers(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "small", "4m") as mount:
        daemon = await daemon_factory(db_path=mount / "store.db")
        try:
            api = Api(http, daemon.url)
            filler = fill(mount)
            for n in range(50):  # until the WAL needs a page it cannot have
                status, body = await api.post("/api/models", model(n, 4000))
                if status != 201:
                    break
            assert_error(status, body, 503, "storage_unavailable")
            assert "full" in body["error"]["message"]
            failed = n
            await assert_degraded(api, "full")
            status, body = await api.get(f"/api/models/m-{failed}")
            assert_error(status, body, 404, "model_not_found")  # refused whole
            filler.unlink()
            status, body = await api.post("/api/models", model(failed, 4000))
            assert status == 201, body
            status, body = await api.get("/api/health")
            assert body["status"] == "ok"
            status, body = await api.get("/api/models")
            assert body["total"] >= failed + 1  # every acknowledged write is there
        finally:
            await daemon.stop()


async def test_read_only_database_directory_is_refused_at_start(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A read-only directory cannot be induced under an open database (the kernel refuses to
    remount a file system read-only while files are open for writing), so this is the start
    on one: one clear error line, exit code 1, no traceback."""
    with small_filesystem(tmp_path / "ro", "8m") as mount:
        daemon = await daemon_factory(db_path=mount / "store.db")
        api = Api(http, daemon.url)
        status, _ = await api.post("/api/models", model(1))
        assert status == 201
        await daemon.stop()
        remount = await asyncio.create_subprocess_exec("mount", "-o", "remount,ro", str(mount))
        assert await remount.wait() == 0
        with pytest.raises(RuntimeError, match="Read-only file system"):
            await daemon_factory(db_path=mount / "store.db")


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Make files immutable (``chattr +i``): the kernel then refuses every write to them, also
    through descriptors opened before. A chmod cannot do that: an open descriptor keeps the
    access it was opened with, so a daemon keeps writing to its open database after a chmod
    (which is then no fault at all: nothing is refused, nothing is lost)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed")
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(
            "cannot make a file immutable here (needs CAP_LINUX_IMMUTABLE, i.e. root, and a file"
            f" system with the attribute): {done.stderr.decode().strip()}"
        )
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=False)


async def test_database_made_read_only_at_runtime_is_503_and_loses_nothing(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    db = tmp_path / "ro.db"
    daemon = await daemon_factory(db_path=db)
    api = Api(http, daemon.url)
    status, _ = await api.post("/api/models", model(1))
    assert status == 201
    # The database and its WAL, not the shared-memory index: SQLite maps that one into memory,
    # where a write the kernel refuses is a SIGBUS rather than an error.
    with immutable(db, Path(f"{db}-wal")):
        status, body = await api.post("/api/models", model(2))
        assert_error(status, body, 503, "storage_unavailable")
        assert "read-only" in body["error"]["message"], body
        await assert_degraded(api, "read-only")
        status, body = await api.put("/api/settings/server.timeout", {"value": 5000})
        assert_error(status, body, 503, "storage_unavailable")
        status, body = await api.get("/api/models/m-1")  # reads still answer
        assert status == 200, body
    status, body = await api.post("/api/models", model(2))
    assert status == 201, body
    status, body = await api.get("/api/health")
    assert body["status"] == "ok", body
    # Every acknowledged write is in the file, the refused ones are not.
    await daemon.stop()
    daemon = await daemon_factory(db_path=db)
    api = Api(http, daemon.url)
    for n in (1, 2):
        status, body = await api.get(f"/api/models/m-{n}")
        assert status == 200, body
    status, body = await api.get("/api/settings/server.timeout")
    assert status == 200 and body["value"] != 5000, body
