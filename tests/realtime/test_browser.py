"""The daemon's /test-websocket.html in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.capture import record
from tests.support.daemon import Api, Daemon

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="Debian's chromium is not installed (scripts/test installs it)",
)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_page_shows_live_events(daemon: Daemon, api: Api, page: Any, transport: str) -> None:
    await page.goto(f"{daemon.url}/test-websocket.html?transport={transport}")
    await page.wait_for_selector('#state[data-state="connected"]', timeout=10_000)
    assert await page.text_content("#transport") == transport
    await page.wait_for_selector('li[data-event="proxy:status"]', timeout=5_000)

    status, _ = await api.post("/api/models", {"id": "browser-model", "name": "Browser model"})
    assert status == 201
    item = await page.wait_for_selector('li[data-event="models:updated"]', timeout=5_000)
    text = await item.text_content()
    record("event models:updated (browser)", text or "")
    assert "browser-model" in (text or "")
    assert await page.text_content("#count") == "2"
