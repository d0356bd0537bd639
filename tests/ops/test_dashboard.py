"""The dashboard at ``/`` in a real browser: Debian's Chromium driven by Playwright.

Screenshots go to ``$DASHBOARD_SCREENSHOTS`` (default: the test's tmp directory).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import DaemonFactory
from tests.ops.helpers import child_env
from tests.support.capture import record
from tests.support.daemon import Api, Daemon
from tests.support.processes import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-token-s3cr3t"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="Debian's chromium is not installed (scripts/test installs it)",
)


@dataclass
class Recorder:
    """Every HTTP request and websocket the page opens, with the time it was made."""

    requests: list[tuple[float, str, str]] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def since(self, at: float) -> list[tuple[str, str]]:
        return [(method, url) for t, method, url in self.requests if t >= at]


@dataclass
class Browser:
    page: Any
    recorder: Recorder
    shots: Path

    async def shot(self, name: str) -> Path:
        path = self.shots / f"dashboard-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    os.makedirs(shots, exist_ok=True)
    recorder = Recorder()
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await chromium.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            page.on(
                "request",
                lambda r: recorder.requests.append((time.monotonic(), r.method, r.url)),
            )
            page.on("websocket", lambda ws: recorder.websockets.append(ws.url))
            page.on("pageerror", lambda exc: recorder.errors.append(f"pageerror: {exc}"))
            page.on(
                "console",
                lambda msg: (
                    recorder.errors.append(f"console: {msg.text}")
                    if msg.type == "error"
                    and "ERR_CONNECTION_REFUSED" not in msg.text
                    and "WebSocket connection" not in msg.text
                    else None
                ),
            )
            yield Browser(page, recorder, shots)
        finally:
            await chromium.close()


def card(child: str, state: str) -> str:
    return f'#child-{child}[data-state="{state}"]'


async def field_text(page: Any, child: str, name: str) -> str:
    return str(await page.text_content(f'#child-{child} [data-field="{name}"]'))


async def open_dashboard(browser: Browser, daemon: Daemon) -> float:
    """Open the page and wait until it is connected and loaded; return when it was."""
    await browser.page.goto(f"{daemon.url}/")
    await browser.page.wait_for_selector('#connection[data-state="connected"]', timeout=10_000)
    await browser.page.wait_for_selector('body[data-synced="true"]', timeout=10_000)
    return time.monotonic()


async def watch_states(page: Any) -> None:
    """Record every data-state a child card takes (brief states such as backoff included)."""
    await page.evaluate(
        """() => {
        window.__states = {};
        for (const card of document.querySelectorAll('.child')) {
          const name = card.dataset.child;
          window.__states[name] = [card.dataset.state];
          new MutationObserver(() => {
            const seen = window.__states[name];
            if (seen[seen.length - 1] !== card.dataset.state) seen.push(card.dataset.state);
          }).observe(card, {attributes: true, attributeFilter: ['data-state']});
        }
      }"""
    )


async def wait_states(page: Any, child: str, expected: list[str], timeout: float = 10) -> None:
    """Wait until the recorded states of ``child`` end with ``expected`` in order."""
    deadline = time.monotonic() + timeout
    while True:
        seen: list[str] = await page.evaluate(f"() => window.__states['{child}']")
        it = iter(seen)
        if all(state in it for state in expected):  # subsequence
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{child}: expected {expected} in order, saw {seen}")
        await asyncio.sleep(0.05)


def assert_no_polling(recorder: Recorder, after: float, allowed: set[tuple[str, str]]) -> None:
    """After load, every request is one the test caused; no GET repeats on its own."""
    made = recorder.since(after)
    unexpected = [(m, u) for m, u in made if (m, u.split("?")[0].split("/", 3)[-1]) not in allowed]
    assert not unexpected, f"requests the page made on its own: {unexpected}"
    polls = [u for m, u in made if "transport=polling" in u]
    assert not polls, f"Engine.IO long-polling requests: {polls}"


@pytest.mark.timeout(120)
async def test_dashboard_follows_and_drives_the_stack(
    daemon_factory: DaemonFactory,
    browser: Browser,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = child_env(API_PORT=str(port), CHILD_BACKOFF_BASE="0.4", CHILD_BACKOFF_CAP="0.4")
    daemon = await daemon_factory(env=env)
    api = Api(http, daemon.url)
    page = browser.page

    # First load: both children stopped.
    loaded_at = await open_dashboard(browser, daemon)
    await page.wait_for_selector(card("qwen-proxy", "stopped"))
    await page.wait_for_selector(card("provider-router", "stopped"))
    assert browser.recorder.websockets, "the page should use a websocket"
    await watch_states(page)
    await browser.shot("stopped")

    # Start both from the page.
    await page.get_by_role("button", name="Start both", exact=True).click()
    await page.wait_for_selector(card("qwen-proxy", "running"), timeout=10_000)
    await page.wait_for_selector(card("provider-router", "running"), timeout=10_000)
    await page.wait_for_selector('#aggregate[data-status="running"]')
    # The live log tail shows the children's output, and uptime counts up on its own.
    await page.wait_for_function(
        "() => document.querySelector('#child-provider-router .log').textContent.includes('READY')"
    )
    first = await field_text(page, "provider-router", "uptime")
    await page.wait_for_function(
        f"""() => document.querySelector('#child-provider-router [data-field="uptime"]')
            .textContent !== {first!r}""",
        timeout=5_000,
    )
    # CPU and memory arrive as pushed proxy:stats.
    await page.wait_for_function(
        """() => document.querySelector('#child-qwen-proxy [data-field="memory"]')
            .textContent.includes('MiB')""",
        timeout=5_000,
    )
    await browser.shot("running")

    # A child SIGKILLed from outside: backoff, then running again, without a reload.
    old_pid = int(await field_text(page, "provider-router", "pid"))
    os.kill(old_pid, signal.SIGKILL)
    await wait_states(page, "provider-router", ["running", "backoff", "running"])
    await page.wait_for_function(
        f"""() => {{
          const pid = document.querySelector('#child-provider-router [data-field="pid"]');
          return pid.textContent !== '{old_pid}' && pid.textContent !== '–';
        }}"""
    )
    assert "SIGKILL" in await field_text(page, "provider-router", "lastExit")
    assert await field_text(page, "provider-router", "restarts") != "0"

    # A provider toggled in the page is disabled in the REST API.
    status, body = await api.get("/api/providers")
    assert status == 200
    body_list = body["providers"]
    target = next(p for p in body_list if p["enabled"])
    await page.get_by_label(f"{target['name']} enabled").uncheck()
    await page.wait_for_selector(f'#providers tr[data-id="{target["id"]}"][data-enabled="false"]')
    status, body = await api.get(f"/api/providers/{target['id']}")
    assert status == 200 and body["enabled"] is False
    await page.wait_for_selector('#events li[data-event="providers:updated"]')
    # A priority typed into the page (then Tab, as a keyboard user does) is stored.
    other = next(p for p in body_list if p["id"] != target["id"])
    priority = page.get_by_label(f"{other['name']} priority")
    await priority.fill("42")
    await priority.press("Tab")
    deadline = time.monotonic() + 10
    while (await api.get(f"/api/providers/{other['id']}"))[1]["priority"] != 42:
        assert time.monotonic() < deadline, "the priority typed in the page was not stored"
        await asyncio.sleep(0.05)
    await page.wait_for_selector(f'#providers tr[data-id="{other["id"]}"]:first-child')

    # A quiet spell: the page makes no request at all (uptime ticks locally).
    quiet_from = time.monotonic()
    await page.wait_for_function(
        f"""() => document.querySelector('#child-qwen-proxy [data-field="uptime"]')
            .textContent !== {await field_text(page, "qwen-proxy", "uptime")!r}"""
    )
    await asyncio.sleep(3)  # a window for polls to show up in (nothing is asserted on timing)
    assert browser.recorder.since(quiet_from) == []
    # Since the first load: only the requests the clicks above caused.
    clicked = {
        ("POST", "api/proxy/start"),
        ("POST", f"api/providers/{target['id']}/disable"),
        ("PUT", f"api/providers/{other['id']}"),
    }
    assert_no_polling(browser.recorder, loaded_at, clicked)
    await browser.shot("toggled")

    # The daemon restarted under the page: "disconnected", then the fresh state.
    before = (await page.text_content('[data-field="pid"]')) or ""
    await daemon.stop()
    await page.wait_for_selector('#connection[data-state="disconnected"]', timeout=10_000)
    assert "reconnecting" in (await page.text_content("#connection") or "")
    await browser.shot("disconnected")
    restarted = await daemon_factory(env=env)  # same port, same database
    assert restarted.port == port
    await page.wait_for_selector('#connection[data-state="connected"]', timeout=15_000)
    await page.wait_for_selector('body[data-synced="true"]', timeout=10_000)
    # The desired state (running) was restored: new pids, both running, shown without reload.
    await page.wait_for_selector(card("qwen-proxy", "running"), timeout=10_000)
    await page.wait_for_selector(card("provider-router", "running"), timeout=10_000)
    await page.wait_for_function(
        f"""() => document.querySelector('#child-qwen-proxy [data-field="pid"]')
            .textContent !== {before!r}"""
    )
    # The page resynchronised through sync: the new daemon's snapshot.
    await page.wait_for_selector('#events li[data-event="providers:updated"]')
    assert browser.recorder.errors == [], browser.recorder.errors
    await browser.shot("reconnected")
    await restarted.stop()


async def test_history_appears_as_a_child_records_it(
    daemon_factory: DaemonFactory, browser: Browser, tmp_path: Path
) -> None:
    """A history row committed by another process (as the router does) reaches the page."""
    daemon = await daemon_factory(env=child_env())
    loaded_at = await open_dashboard(browser, daemon)
    await browser.page.wait_for_selector("#history tr.empty")
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    with sqlite3.connect(daemon.db_path) as conn:  # another connection, like a child's
        now = int(time.time() * 1000)
        cur = conn.execute(
            "INSERT INTO requests (request_id, provider_id, model, stream, created_at)"
            " VALUES (?, 'lm-studio-default', 'qwen3-max', 1, ?)",
            (request_id, now),
        )
        conn.execute(
            "INSERT INTO responses (request_id, provider_id, status_code, total_tokens,"
            " duration_ms, created_at) VALUES (?, 'lm-studio-default', 200, 42, 123, ?)",
            (cur.lastrowid, now),
        )
    row = await browser.page.wait_for_selector(
        f'#history tr[data-request-id="{request_id}"]', timeout=10_000
    )
    text = await row.text_content() or ""
    record("dashboard history row", text)
    assert "qwen3-max" in text and "success" in text and "123 ms" in text
    assert_no_polling(browser.recorder, loaded_at, set())


ROUTER_LANDED = importlib.util.find_spec("provider_router") is not None


async def _fake_upstream() -> tuple[web.AppRunner, str]:
    """Start an OpenAI-compatible upstream on loopback that answers every chat with 'hi'."""

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "qwen3-max"}]})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1"


@pytest.mark.skipif(
    not ROUTER_LANDED, reason="provider_router is not in this tree yet (a chat request needs it)"
)
@pytest.mark.timeout(60)
async def test_request_through_the_router_appears_in_the_history(
    daemon_factory: DaemonFactory, browser: Browser, http: aiohttp.ClientSession
) -> None:
    env = child_env()
    del env["PROVIDER_ROUTER_COMMAND"]  # the real provider-router
    daemon = await daemon_factory(env=env)
    api = Api(http, daemon.url)
    upstream, base_url = await _fake_upstream()
    try:
        status, body = await api.post(
            "/api/providers",
            {
                "id": "fake-upstream",
                "name": "Fake upstream",
                "type": "openai-compatible",
                "priority": 100,
                "config": {"baseURL": base_url},
            },
        )
        assert status == 201, body
        status, body = await api.post(
            "/api/providers/fake-upstream/models", {"model_id": "qwen3-max"}
        )
        assert status == 201, body
        loaded_at = await open_dashboard(browser, daemon)
        await browser.page.get_by_role("button", name="Start both", exact=True).click()
        await browser.page.wait_for_selector(card("provider-router", "running"), timeout=20_000)
        router = (await api.get("/api/proxy/status"))[1]["providerRouter"]["port"]
        async with http.post(
            f"http://127.0.0.1:{router}/v1/chat/completions",
            json={"model": "qwen3-max", "messages": [{"role": "user", "content": "hello"}]},
        ) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
        row = await browser.page.wait_for_selector(
            '#history tr:has-text("qwen3-max"):has-text("success")', timeout=15_000
        )
        text = await row.text_content() or ""
        record("dashboard history row (router)", text)
        assert "fake-upstream" in text
        await browser.shot("history")
        assert_no_polling(
            browser.recorder,
            loaded_at,
            {("POST", "api/proxy/start")},
        )
    finally:
        await api.post("/api/proxy/stop")
        await upstream.cleanup()


async def test_token_is_asked_once_and_kept_for_the_tab(
    daemon_factory: DaemonFactory, browser: Browser
) -> None:
    daemon = await daemon_factory(env={**child_env(), "API_TOKEN": TOKEN})
    page = browser.page
    await page.goto(f"{daemon.url}/")
    await page.wait_for_selector("#token-form:not([hidden])", timeout=10_000)
    await page.get_by_label("API token").fill(TOKEN)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await page.wait_for_selector('body[data-synced="true"]', timeout=10_000)
    assert TOKEN not in page.url
    assert await page.evaluate("() => sessionStorage.getItem('apiserver.token')") == TOKEN
    # A reload in the same tab does not ask again.
    await page.reload()
    await page.wait_for_selector('body[data-synced="true"]', timeout=10_000)
    assert await page.is_hidden("#token-form")
    # Never in a URL the page requested.
    assert not [u for _, _, u in browser.recorder.requests if TOKEN in u]
    # A new tab (its own sessionStorage) asks again.
    other = await page.context.browser.new_page()
    try:
        await other.goto(f"{daemon.url}/")
        await other.wait_for_selector("#token-form:not([hidden])", timeout=10_000)
    finally:
        await other.close()


async def test_page_headers_and_layouts(
    daemon_factory: DaemonFactory, browser: Browser, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env=child_env())
    async with http.get(f"{daemon.url}/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "http" not in csp.replace(f"127.0.0.1:{daemon.port}", "")  # no outside origin
    page = browser.page
    await open_dashboard(browser, daemon)
    # Every script and stylesheet comes from the daemon.
    sources = await page.evaluate(
        "() => [...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)"
    )
    assert all(s.startswith(daemon.url) or s.startswith("data:") for s in sources), sources
    # Keyboard: the first Tab reaches the skip link, and every control has an accessible name.
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.className") == "skip"
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button, input')].filter(e =>
             !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
             && !e.textContent.trim()).map(e => e.outerHTML)"""
    )
    assert unnamed == []
    # Narrow window: one column, nothing wider than the viewport.
    await page.set_viewport_size({"width": 390, "height": 800})
    overflow = await page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= 390
    await browser.shot("narrow")
    # Dark mode: other colours.
    light = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    await page.emulate_media(color_scheme="dark")
    await page.set_viewport_size({"width": 1280, "height": 800})
    dark = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert light != dark
    await browser.shot("dark")
    assert browser.recorder.errors == [], browser.recorder.errors
