"""The console end to end: the embedded broker, a real event-clock worker, the ledger, the
console, and Debian's chromium driven by Playwright.

A vendor stays 12 minutes on a main road (camera frames produced to Kafka); the worker opens a
case; it must be on the board within 2 s of its ``opened`` on ``city.alerts``. An operator
acknowledges it with a note in the browser; the worker applies the feedback and the next
version and the note are in the case's timeline. A viewer sees no action and gets 403 from the
endpoint. The board's live stream, cut by the server, resumes with no change lost. A filtered
URL shows only what it names. Two new cases are acknowledged at once from the board; a request
without the CSRF token is refused; the English switch turns the board to English. Screenshots
of the board (in both languages), the map and the case page are saved to
``out/test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from console.auth import Accounts
from console.cli import serve as serve_console
from ledger.service import serve as serve_ledger
from ledger.store import LedgerStore
from rules.demo.city import to_lonlat
from streams.dev import free_port
from streams.settings import Settings
from streams.simulate import simulate
from streams.topics import default_topics, ensure_topics
from tests.e2e.workers import Worker

pytestmark = pytest.mark.timeout(300)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "out" / "test-artifacts"
PASSWORD = "duty shift 7"


def vendor(minute0: str, minutes: int, cam: str, xy: tuple[float, float], track: str,
           day: str = "2026-11-18") -> list[dict[str, Any]]:
    lon, lat = to_lonlat(*xy)
    return [{"topic": "city.events.camera", "key": cam, "value": {
        "event_id": f"{cam}-{track}-{i}", "camera_id": cam,
        "observed_at": f"{day}T{minute0[:2]}:{int(minute0[3:]) + i:02d}:00.000+08:00",
        "detections": [{"label": "street_vendor", "track_id": track, "confidence": 0.9,
                        "location": {"lat": lat, "lon": lon}}]}} for i in range(minutes)]


class Opened:
    """Watches city.alerts: when each message arrived on Kafka (its record timestamp)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.messages: list[tuple[float, dict[str, Any]]] = []

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(self.settings.topic("city.alerts"),
                                    **self.settings.aiokafka_kwargs(),
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    self.messages += [(r.timestamp / 1000, orjson.loads(r.value)) for r in records]
        finally:
            await consumer.stop()

    async def wait(self, pred: Any, timeout: float = 60) -> tuple[float, dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for stamp, m in self.messages:
                if pred(m):
                    return stamp, m
            await asyncio.sleep(0.05)
        raise AssertionError(f"no such city.alerts message within {timeout} s; got "
                             f"{[(m['alert_id'], m['transition']) for _, m in self.messages]}")


@pytest.fixture
async def system(settings: Settings, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    await ensure_topics(settings, default_topics(settings))
    worker = Worker(settings, tmp_path / "worker.log", clock="event")
    store = LedgerStore(tmp_path / "ledger.sqlite")
    accounts = Accounts(store.engine)
    accounts.add("duty7", PASSWORD, "operator")
    accounts.add("watcher", PASSWORD, "viewer")
    port = free_port(0)
    started = asyncio.Event()
    consoles: list[Any] = []

    def on_started(console: Any) -> None:
        consoles.append(console)
        started.set()

    tasks = [asyncio.create_task(serve_console(settings, store, "127.0.0.1", port,
                                               on_started=on_started)),
             asyncio.create_task(serve_ledger(settings, store, free_port(0)))]
    opened = Opened(settings)
    tasks.append(asyncio.create_task(opened.run()))
    try:
        await asyncio.to_thread(worker.wait_ready)
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait([waiting, tasks[0]], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0].done():
            tasks[0].result()                  # the console failed to start: its error
        assert started.is_set(), "the console did not start within 30 s"
        yield {"url": f"http://127.0.0.1:{port}", "opened": opened, "worker": worker,
               "store": store, "console": consoles[0]}
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        worker.stop()
        store.close()


async def sign_in(page: Any, url: str, user: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/")


async def test_the_console_in_a_real_browser(system: dict[str, Any], settings: Settings) -> None:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, whose set-up installs Debian's "
                    "chromium package")
    url, opened = system["url"], system["opened"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
            page = await ctx.new_page()
            await sign_in(page, url, "duty7")
            await page.wait_for_selector("body[data-live='1']")

            # 东大街 (a main road) by cam-0007 (1700, 1012): 12 minutes of a vendor.
            await simulate(settings, vendor("16:00", 13, "cam-0007", (1690, 995), "t-1"))
            stamp, first = await opened.wait(lambda m: m["transition"] == "opened")
            aid = first["alert_id"]
            await page.wait_for_selector(f"tr[data-alert-id='{aid}']", timeout=5_000)
            seen = time.time()
            assert seen - stamp <= 2.0, f"on the board {seen - stamp:.2f} s after city.alerts"
            await page.screenshot(path=str(ARTIFACTS / "console-board.png"), full_page=True)

            # A filtered URL shows only what it names.
            other = first["district"] or ""
            await page.goto(f"{url}/?district=__none__")
            await page.wait_for_selector("body[data-live='1']")
            assert await page.locator("tbody#cases tr").count() == 0
            await page.goto(f"{url}/?district={other}&level=1")
            await page.wait_for_selector(f"tr[data-alert-id='{aid}']")

            # The map: the city's 50 grids, the case as a marker; a grid filters the board.
            await page.goto(f"{url}/map")
            await page.wait_for_selector(f"circle.marker[data-alert-id='{aid}']")
            assert await page.locator("a.grid-link").count() == 50
            # The browser puts the marker where the server's projection puts the place.
            marker = page.locator(f"circle.marker[data-alert-id='{aid}']")
            where = [float(await marker.get_attribute(a) or "nan") for a in ("cx", "cy")]
            assert where == pytest.approx(system["console"].map_view.project(
                first["location"]["lon"], first["location"]["lat"]), abs=0.01)
            await page.screenshot(path=str(ARTIFACTS / "console-map.png"), full_page=True)
            await page.click(f"a.grid-link[data-grid-id='{first['grid_id']}']")
            await page.wait_for_url(f"{url}/?grid_id={first['grid_id']}")
            await page.wait_for_selector(f"tr[data-alert-id='{aid}']")

            # Acknowledge with a note on the case page: pending, then the engine's version 2.
            await page.goto(f"{url}/cases/{aid}")
            await page.select_option("select[name=action]", "acknowledge")
            await page.fill("textarea[name=note]", "已通知网格员到场")
            await page.click("#act button[type=submit]")
            await page.wait_for_selector("#pending:has-text('等待引擎确认')")
            _, acked = await opened.wait(lambda m: m["alert_id"] == aid
                                         and m["transition"] == "acknowledged")
            assert (acked["actor"], acked["note"]) == ("duty7", "已通知网格员到场")
            await page.wait_for_selector("#status[data-status='acknowledged']", timeout=15_000)
            await page.wait_for_selector(".timeline li:has-text('v4 受理'):has-text('已通知网格员到场')",
                                         timeout=15_000)
            # The deadline counts on the system's clock (this one's event clock), not today's.
            assert "剩余 1 时 5" in await page.inner_text("#countdown")
            await page.screenshot(path=str(ARTIFACTS / "console-case.png"), full_page=True)

            # A viewer: no action offered, and 403 from the endpoint.
            viewer = await (await browser.new_context()).new_page()
            await sign_in(viewer, url, "watcher")
            await viewer.goto(f"{url}/cases/{aid}")
            assert await viewer.locator("#act").count() == 0
            csrf = await viewer.get_attribute("body", "data-csrf")
            r = await viewer.request.post(f"{url}/api/cases/{aid}/actions",
                                          data={"action": "dispatch"},
                                          headers={"X-CSRF-Token": csrf or ""})
            assert r.status == 403

            # The board's stream is cut by the server, and the browser cannot reconnect, while
            # cases open; once it can, it resumes (Last-Event-ID) and every one is on the board.
            await page.goto(url)
            await page.wait_for_selector("body[data-live='1']")
            snapshots: list[str] = []         # a resumed stream needs no new snapshot
            page.on("request", lambda r: snapshots.append(r.url) if "/api/board" in r.url
                    else None)
            await page.route("**/events*", lambda route: route.abort())
            for stream in list(system["console"].streams):
                stream.cancel()
            await page.wait_for_selector("body[data-live='0']", state="attached", timeout=15_000)
            await simulate(settings, vendor("17:00", 13, "cam-0007", (1690, 995), "t-a")
                           + vendor("17:00", 13, "cam-0011", (1980, 995), "t-b"))
            await opened.wait(lambda m: m["transition"] == "opened"
                              and m["evidence"][0].get("camera_id") == "cam-0011")
            assert await page.locator("tbody#cases tr").count() == 1    # not yet
            await page.unroute("**/events*")
            await page.wait_for_selector("body[data-live='1']", state="attached", timeout=15_000)
            ids = {m["alert_id"] for _, m in opened.messages if m["transition"] == "opened"}
            assert len(ids) >= 3          # the two vendors, the first case (and cam-0007 silent)
            for a in ids:
                await page.wait_for_selector(f"tr[data-alert-id='{a}']", timeout=20_000)
            assert snapshots == [], "the board was fetched again instead of resuming the stream"

            # Bulk acknowledge the two new cases from the board: the engine's next versions.
            fresh = [m["alert_id"] for _, m in opened.messages if m["transition"] == "opened"
                     and m["rule_id"] == first["rule_id"] and m["alert_id"] != aid]
            assert len(fresh) == 2
            for a in fresh:
                await page.check(f"tr[data-alert-id='{a}'] input.pick")
            await page.click("#bulk-ack")
            await page.wait_for_selector("#bulk-result:has-text('已提交 2 件')")
            for a in fresh:
                _, m = await opened.wait(lambda m, a=a: m["alert_id"] == a
                                         and m["transition"] == "acknowledged")
                assert m["actor"] == "duty7"
                await page.wait_for_selector(f"tr[data-alert-id='{a}']:has-text('已受理')",
                                             timeout=15_000)

            # Without the session's CSRF token, the same request is refused.
            r = await page.request.post(f"{url}/api/cases/{aid}/actions",
                                        data={"action": "note", "note": "no token"})
            assert r.status == 403

            # The English switch: the same board, in English, kept across pages.
            await page.click("#lang")
            await page.wait_for_selector("body[data-live='1']")
            assert (await page.inner_text("nav")).split() == ["Live", "board", "Map", "Scorecards",
                                                              "Dead", "letters"]
            await page.wait_for_selector(f"tr[data-alert-id='{fresh[0]}']:has-text('Acknowledged')")
            assert "Level 1" in await page.inner_text(f"tr[data-alert-id='{fresh[0]}']")
            await page.screenshot(path=str(ARTIFACTS / "console-board-en.png"), full_page=True)
            await page.click("#lang")
            await page.wait_for_selector("nav:has-text('实时看板')")

            # What a producer sent wrong reaches the dead-letters page.
            await simulate(settings, [{"topic": "city.events.camera", "key": "cam-0007",
                                       "raw": "not json {"}])
            end = time.monotonic() + 20
            while "bad_json" not in (text := await (await page.request.get(
                    f"{url}/deadletters")).text()) and time.monotonic() < end:
                await asyncio.sleep(0.3)
            assert "bad_json" in text and "not json {" in text

            # The scorecard of the day, from the ledger, in the browser.
            await page.goto(f"{url}/reports?period=day&date=2026-11-18&by=district")
            frame = page.frame_locator("#report")
            await frame.locator("text=按期结案率").first.wait_for(timeout=15_000)
        finally:
            await browser.close()
