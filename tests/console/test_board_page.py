"""The board's script in a real browser (Debian's chromium), fed by the console's own SSE
stream, with no broker: hundreds of open cases and a burst of random changes, after which
the rows in the page must be exactly the first of the board's order, the counters exact, and
scrolling must bring the next rows."""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from console.app import make_app
from console.auth import Accounts
from ledger.store import LedgerStore
from tests.console.test_app import PASSWORD, Harness
from tests.ledger.test_assessment import msg

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RANK = {"critical": 3, "major": 2, "minor": 1}


def case(n: int, rng: random.Random) -> dict[str, Any]:
    m = msg(n + 100, 1, "opened", "open", "11-20 09:00", f"11-20 {8 + n % 3:02d}:{n % 60:02d}",
            "11-20 18:00", rng.choice(["甲街道", "乙街道"]))
    m.update(level=rng.choice((1, 1, 2, 3)), severity=rng.choice(list(RANK)))
    return m


def board_order(cases: list[dict[str, Any]]) -> list[str]:
    return [c["alert_id"] for c in sorted(
        cases, key=lambda c: (-c["level"], -RANK[c["severity"]], c["opened_at"], c["alert_id"]))]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Harness, str]]:
    store = LedgerStore(tmp_path / "l.sqlite")
    Accounts(store.engine).add("operator", PASSWORD, "operator")
    h = Harness(store)
    server = TestServer(make_app(h.console))
    await server.start_server()
    try:
        yield h, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        store.close()


async def test_a_burst_of_changes_leaves_the_board_exactly_in_order(
        served: tuple[Harness, str]) -> None:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, whose set-up installs it")
    h, url = served
    rng = random.Random(7)
    live = {m["alert_id"]: m for m in (case(n, rng) for n in range(450))}
    for m in live.values():
        h.board.load(m, overdue=False)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await (await browser.new_context(viewport={"width": 1400,
                                                              "height": 900})).new_page()
            await page.goto(f"{url}/login")
            await page.fill("input[name=username]", "operator")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_selector("body[data-live='1']", state="attached")
            assert await page.locator("tbody#cases tr").count() == 100

            # Escalations, acknowledgements, new cases, cases leaving: 300 changes at once.
            n = 1000
            for _ in range(300):
                r = rng.random()
                if r < 0.2:
                    n += 1
                    m = case(n, rng)
                else:
                    old = rng.choice(list(live.values()))
                    m = {**old, "version": old["version"] + 1}
                    if r < 0.4:
                        m.update(transition="closed", status="closed")
                    elif r < 0.6:
                        m.update(transition="escalated", level=min(3, old["level"] + 1))
                    else:
                        m.update(transition="acknowledged", status="acknowledged")
                change = h.board.apply(m)
                assert change is not None
                h.console.publish(change)
                if m["status"] != "closed":
                    live[m["alert_id"]] = m
                else:
                    live.pop(m["alert_id"])
            expected = board_order(list(live.values()))
            await page.wait_for_function(
                "n => document.querySelector('#counters .counter b').textContent == n",
                arg=str(len(live)))
            shown = await page.eval_on_selector_all("tbody#cases tr",
                                                    "rows => rows.map(r => r.dataset.alertId)")
            assert shown == expected[:100]
            acked = sum(m["status"] == "acknowledged" for m in live.values())
            counters = await page.inner_text("#counters")
            assert f"已受理 {acked}" in counters and f"显示 {len(live)}" in counters
            assert f"共 {len(live)} 件" in await page.inner_text("#more")

            await page.mouse.wheel(0, 200_000)
            await page.wait_for_function("() => document.querySelectorAll('tbody#cases tr')"
                                         ".length == 200")
            shown = await page.eval_on_selector_all("tbody#cases tr",
                                                    "rows => rows.map(r => r.dataset.alertId)")
            assert shown == expected[:200]
        finally:
            await browser.close()


async def test_the_board_and_the_map_recover_from_a_failed_snapshot_and_a_refused_stream(
        served: tuple[Harness, str]) -> None:
    """The first fetch of the board fails (503), and the first event stream is answered with
    an HTTP error (500), after which a browser's EventSource gives up for good: both pages
    (which follow the cases through one script, live.js) must try again and go live, with
    the cases shown, and a change after that must reach them."""
    from playwright.async_api import Page, Route, async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, whose set-up installs it")
    h, url = served
    rng = random.Random(11)
    first = case(1, rng)
    h.board.load(first, overdue=False)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            ctx = await browser.new_context()
            sign_in = await ctx.new_page()
            await sign_in.goto(f"{url}/login")
            await sign_in.fill("input[name=username]", "operator")
            await sign_in.fill("input[name=password]", PASSWORD)
            await sign_in.click("button[type=submit]")
            await sign_in.wait_for_selector("body[data-live='1']", state="attached")
            await sign_in.close()

            refused: dict[str, list[str]] = {}

            async def open_failing(path: str) -> Page:
                page = await ctx.new_page()
                failures = {"/api/board": 503, "/events": 500}
                seen = refused[path] = []

                async def answer(route: Route) -> None:
                    what = "/events" if "/events" in route.request.url else "/api/board"
                    status = failures.pop(what, None)
                    if status is None:
                        await route.continue_()
                    else:
                        seen.append(what)
                        await route.fulfill(status=status, body="not now")

                await page.route("**/api/board", answer)
                await page.route("**/events?*", answer)
                await page.goto(url + path)
                return page

            board, map_ = await open_failing("/"), await open_failing("/map")
            for page in (board, map_):
                await page.wait_for_selector("body[data-live='1']", state="attached", timeout=30_000)
            assert refused == {"/": ["/api/board", "/events"], "/map": ["/api/board", "/events"]}
            aid = first["alert_id"]
            await board.wait_for_selector(f"tr[data-alert-id='{aid}']", state="attached")
            await map_.wait_for_selector(f"circle.marker[data-alert-id='{aid}']", state="attached")

            second = case(2, rng)
            change = h.board.apply(second)
            assert change is not None
            h.console.publish(change)
            await board.wait_for_selector(f"tr[data-alert-id='{second['alert_id']}']", state="attached")
            await map_.wait_for_selector(f"circle.marker[data-alert-id='{second['alert_id']}']",
                                         state="attached")
        finally:
            await browser.close()
