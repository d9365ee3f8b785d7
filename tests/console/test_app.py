"""The console's handlers on a real SQLite ledger: sign-in, sessions, CSRF, and every role ×
action × status, checked on the server. Kafka is replaced by the two callables the console is
given (what it would send, and the clock it would stamp): the end-to-end test uses a broker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import xmlschema
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from console.app import STREAM_BACKLOG, Console, make_app
from console.board import RESET, Board, Change
from console.follow import load_snapshot
from console.mapview import view_of
from console.proxies import client_address
from console.roles import ACTIONS, NOTE, ROLES, legal, may
from ledger.schema import audit
from ledger.store import LedgerStore
from models.outputs import AuditRecord
from rules.demo.city import GEOJSON_PATH
from rules.schedule import CityCalendar
from tests.ledger.test_assessment import msg
from tests.promtool import check_metrics
from tests.scrape import undocumented

CAP_SCHEMA = xmlschema.XMLSchema(Path(__file__).resolve().parents[1] / "models" / "schemas" / "cap-1.2.xsd")
CAL = CityCalendar(ZoneInfo("Asia/Shanghai"))
PASSWORD = "correct horse 1"
#: One case per status, case n in status STATUSES[n].
STATUSES = ("open", "acknowledged", "dispatched", "deferred", "resolved", "closed", "rejected")
TRANSITION = {"acknowledged": "acknowledged", "dispatched": "dispatched", "deferred": "deferred",
              "resolved": "resolved", "closed": "closed", "rejected": "rejected"}


def aid(n: int) -> str:
    return f"a-G-{n}-{n:020x}"


class Harness:
    def __init__(self, store: LedgerStore) -> None:
        self.sent: list[dict[str, Any]] = []
        self.audited: list[dict[str, Any]] = []
        self.board = Board("T")
        load_snapshot(self.board, store)

        async def send(message: dict[str, Any]) -> None:
            self.sent.append(message)

        async def stamp(_alert_id: str) -> int:
            return 1_795_000_000_000

        async def publish_audit(row: dict[str, Any]) -> None:
            AuditRecord.model_validate_json(orjson.dumps(row))     # the topic's contract
            self.audited.append(row)

        self.console = Console(store, self.board, CAL, send=send, stamp=stamp,
                               publish_audit=publish_audit,
                               map_view=view_of(orjson.loads(GEOJSON_PATH.read_bytes())),
                               city_name="简阳市")


@pytest.fixture
def store(tmp_path: Path) -> LedgerStore:
    s = LedgerStore(tmp_path / "l.sqlite")
    records = []
    for n, status in enumerate(STATUSES):
        records.append(msg(n, 1, "opened", "open", "11-20 09:00", "11-20 09:00", "11-20 11:00", "甲街道"))
        if status != "open":
            records.append(msg(n, 2, TRANSITION[status], status, "11-20 09:10", "11-20 09:00",
                               "11-20 11:00", "甲街道"))
    s.apply([(orjson.dumps(r), None, i) for i, r in enumerate(records)])
    from console.auth import Accounts
    for role in ROLES:
        Accounts(s.engine).add(role, PASSWORD, role)
    yield s
    s.close()


@pytest.fixture
async def harness(store: LedgerStore) -> AsyncIterator[tuple[Harness, TestClient]]:
    h = Harness(store)
    async with TestClient(TestServer(make_app(h.console))) as client:
        yield h, client


async def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    page = await client.get("/login")
    pre = re.search(r'name="pre" value="([^"]+)"', await page.text())
    assert pre
    return await client.post("/login", data={"username": username, "password": password,
                                             "pre": pre.group(1), "next": "/"},
                             allow_redirects=False)


async def sign_in_to(client: TestClient, username: str, nxt: str) -> Any:
    page = await client.get("/login")
    pre = re.search(r'name="pre" value="([^"]+)"', await page.text())
    assert pre
    return await client.post("/login", data={"username": username, "password": PASSWORD,
                                             "pre": pre.group(1), "next": nxt},
                             allow_redirects=False)


async def csrf_of(client: TestClient) -> str:
    page = await client.get("/")
    token = re.search(r'data-csrf="([^"]+)"', await page.text())
    assert token
    return token.group(1)


#: What needs no session: the sign-in form, the language cookie, health, metrics, assets.
OPEN = {"/login", "/lang", "/healthz", "/metrics"}


def endpoints(h: Harness) -> list[tuple[str, str]]:
    """Every (method, path) of the application, the path's variables filled in."""
    out = []
    for route in make_app(h.console).router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if route.method in ("GET", "POST") and not path.startswith("/static"):
            out.append((route.method, path.replace("{alert_id}", aid(0))))
    return out


async def test_nothing_without_signing_in(harness: tuple[Harness, TestClient]) -> None:
    """Every endpoint, found on the router (a new one is checked without a new test)."""
    h, client = harness
    checked = endpoints(h)
    assert len(checked) >= 18
    for method, path in checked:
        if path in OPEN:
            continue
        r = await client.request(method, path, json={"action": "acknowledge",
                                                      "alert_ids": [aid(0)], "notify": True},
                                 allow_redirects=False)
        if method == "GET" and not path.startswith("/api/") and path != "/events":
            assert r.status == 303 and r.headers["Location"].startswith("/login"), path
        else:
            assert r.status == 401, (method, path)
    assert h.sent == []


async def test_every_state_changing_endpoint_needs_the_csrf_token(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "admin")
    posts = [path for method, path in endpoints(h) if method == "POST" and path != "/login"]
    assert {"/logout", "/api/prefs", "/api/bulk/acknowledge"} <= set(posts)
    for path in posts:
        r = await client.post(path, json={"action": "acknowledge", "alert_ids": [aid(0)],
                                          "notify": True})
        assert r.status == 403 and "CSRF" in await r.text(), path
    assert h.sent == [] and not h.console.accounts.get("admin").notify


async def test_sign_in_sets_a_strict_http_only_cookie_and_bad_ones_are_refused(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    r = await sign_in(client, "operator", "wrong password")
    assert r.status == 401 and "用户名或密码错误" in await r.text()
    r = await sign_in(client, "nobody", PASSWORD)
    assert r.status == 401
    r = await sign_in(client, "operator")
    assert r.status == 303
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await client.get("/api/board")).status == 200
    # The sign-in form itself is protected: without its pre-session token it is refused.
    r = await client.post("/login", data={"username": "operator", "password": PASSWORD})
    assert r.status == 403
    with h.console.store.engine.connect() as conn:
        results = [(r.actor, r.action, r.result) for r in conn.execute(
            select(audit.c.actor, audit.c.action, audit.c.result).order_by(audit.c.id))]
    assert results == [("operator", "sign_in", "failed"), ("nobody", "sign_in", "failed"),
                       ("operator", "sign_in", "ok")]
    assert [row["action"] for row in h.audited] == ["sign_in"] * 3


async def test_sign_in_is_rate_limited(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    for _ in range(5):
        assert (await sign_in(client, "operator", "wrong password")).status == 401
    r = await sign_in(client, "operator")          # the right password, too late
    assert r.status == 429 and "登录失败次数过多" in await r.text()


async def sign_in_via(client: TestClient, username: str, password: str, forwarded_for: str) -> Any:
    """A sign-in through a reverse proxy that says the browser is at ``forwarded_for``."""
    headers = {"X-Forwarded-For": forwarded_for}
    page = await client.get("/login", headers=headers)
    pre = re.search(r'name="pre" value="([^"]+)"', await page.text())
    assert pre
    return await client.post("/login", data={"username": username, "password": password,
                                             "pre": pre.group(1), "next": "/"},
                             headers=headers, allow_redirects=False)


@pytest.mark.parametrize("trusted", [False, True])
async def test_behind_a_trusted_proxy_one_address_failing_does_not_lock_out_the_others(
        store: LedgerStore, trusted: bool) -> None:
    """Behind the centre's proxy every connection comes from the proxy (here the test client's
    127.0.0.1). Unless the console trusts it, five mistyped sign-ins from one desk lock every
    desk out, and the audit trail has one address for everyone; its X-Forwarded-For is believed
    only from a trusted proxy."""
    h = Harness(store)
    if trusted:
        h.console.trusted_proxies = (ip_network("127.0.0.1/32"),)
    async with TestClient(TestServer(make_app(h.console))) as client:
        for n in range(5):
            r = await sign_in_via(client, f"nobody-{n}", "wrong", "203.0.113.7, 127.0.0.1")
            assert r.status == 401
        elsewhere = await sign_in_via(client, "operator", PASSWORD, "203.0.113.9")
        again = await sign_in_via(client, "viewer", PASSWORD, "198.51.100.1, 203.0.113.7")
    assert (elsewhere.status, again.status) == ((303, 429) if trusted else (429, 429))
    addresses = {row["address"] for row in h.audited}
    assert addresses == ({"203.0.113.7", "203.0.113.9"} if trusted else {"127.0.0.1"})


def test_the_client_address_is_the_nearest_hop_that_is_not_a_trusted_proxy() -> None:
    proxies = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))
    assert client_address("10.0.0.5", "198.51.100.4", ()) == "10.0.0.5"            # none trusted
    assert client_address("203.0.113.1", "198.51.100.4", proxies) == "203.0.113.1"  # not a proxy
    assert client_address("10.0.0.5", None, proxies) == "10.0.0.5"
    assert client_address("10.0.0.5", "198.51.100.4", proxies) == "198.51.100.4"
    # the client wrote the first entry itself: only what the proxies appended counts
    assert client_address("10.0.0.5", "1.2.3.4, 198.51.100.4, 10.1.1.1", proxies) == "198.51.100.4"
    assert client_address("fd00::1", "2001:db8::7", proxies) == "2001:db8::7"
    assert client_address("10.0.0.5", "10.0.0.9, 10.0.0.8", proxies) == "10.0.0.9"   # all proxies
    assert client_address("10.0.0.5", "198.51.100.4, nonsense", proxies) == "10.0.0.5"


async def test_a_disabled_user_is_signed_out_at_once(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "operator")
    assert (await client.get("/api/board")).status == 200
    h.console.accounts.disable("operator")
    assert (await client.get("/api/board")).status == 401
    assert (await sign_in(client, "operator")).status == 401


async def test_a_request_without_the_csrf_token_is_refused(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "supervisor")
    r = await client.post(f"/api/cases/{aid(0)}/actions", json={"action": "acknowledge"})
    assert r.status == 403 and "CSRF" in await r.text()
    r = await client.post(f"/api/cases/{aid(0)}/actions", json={"action": "acknowledge"},
                          headers={"X-CSRF-Token": "not-it"})
    assert r.status == 403
    assert (await client.post("/logout", data={"csrf": "nope"})).status == 403
    assert h.sent == []


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_action_and_status_is_checked_on_the_server(
        harness: tuple[Harness, TestClient], role: str) -> None:
    h, client = harness
    await sign_in(client, role)
    token = await csrf_of(client)
    for n, status in enumerate(STATUSES):
        for action in (*ACTIONS, NOTE):
            body = {"action": action, "note": "现场已核实"}
            if action == "defer":
                body["until"] = "2026-11-20T17:00:00+08:00"
            before = len(h.sent)
            r = await client.post(f"/api/cases/{aid(n)}/actions", json=body,
                                  headers={"X-CSRF-Token": token})
            expected = (403 if not may(role, action) else 409 if not legal(action, status)
                        else 201 if action == NOTE else 202)
            assert r.status == expected, (role, action, status, await r.text())
            if expected == 202:
                sent = h.sent[-1]
                assert (sent["alert_id"], sent["action"], sent["actor"]) == (aid(n), action, role)
                assert sent["at"] == "2026-11-18T19:06:40.000+08:00"    # the stamp given
                assert sent["note"] == "现场已核实"
            else:
                assert len(h.sent) == before


async def test_a_viewer_sees_no_action_and_a_supervisor_the_legal_ones(
        harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    await sign_in(client, "viewer")
    page = await (await client.get(f"/cases/{aid(4)}")).text()
    assert 'id="act"' not in page and "批量受理" not in await (await client.get("/")).text()
    async with TestClient(client.server) as other:
        await sign_in(other, "supervisor")
        page = await (await other.get(f"/cases/{aid(4)}")).text()
        offered = re.findall(r'<option value="(\w+)">', page.split('id="act"')[1].split("</select>")[0])
        assert offered == ["verify", "reopen", "note"]


async def test_reject_needs_a_reason_and_defer_an_end(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "supervisor")
    token = await csrf_of(client)
    r = await client.post(f"/api/cases/{aid(0)}/actions", json={"action": "reject"},
                          headers={"X-CSRF-Token": token})
    assert r.status == 400 and "原因" in (await r.json())["error"]
    r = await client.post(f"/api/cases/{aid(0)}/actions", json={"action": "defer"},
                          headers={"X-CSRF-Token": token})
    assert r.status == 400
    assert h.sent == []


async def test_bulk_acknowledge_sends_one_per_case_and_reports_each(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "operator")
    token = await csrf_of(client)
    r = await client.post("/api/bulk/acknowledge", json={"alert_ids": [aid(0), aid(1)]},
                          headers={"X-CSRF-Token": token})
    body = await r.json()
    assert r.status == 207
    assert [(x["alert_id"], x.get("status"), x["code"]) for x in body["results"]] == [
        (aid(0), "pending", 202), (aid(1), None, 409)]     # 1 is already acknowledged
    assert [(m["alert_id"], m["action"]) for m in h.sent] == [(aid(0), "acknowledge")]


async def test_a_refusal_is_audited_and_a_new_version_ends_the_pending(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "operator")
    token = await csrf_of(client)
    for n in (0, 2):
        await client.post(f"/api/cases/{aid(n)}/actions", json={"action": "dispatch"},
                          headers={"X-CSRF-Token": token})
    first, second = h.sent
    assert set(h.console.pending) == {first["event_id"], second["event_id"]}
    change = h.console.refused({"event_id": first["event_id"], "reason_code": "illegal_transition",
                                "reason": "action: dispatch is not possible from closed"})
    assert change is not None and change.event == "refused"
    h.console.publish(h.board.apply(msg(2, 3, "dispatched", "dispatched", "11-20 09:20",
                                        "11-20 09:00", "11-20 11:00", "甲街道")))
    assert h.console.pending == {}
    import asyncio
    await asyncio.sleep(0.1)                    # the refusal's audit row is written in a task
    with h.console.store.engine.connect() as conn:
        rows = [(r.action, r.alert_id, r.result) for r in conn.execute(
            select(audit.c.action, audit.c.alert_id, audit.c.result).where(
                audit.c.action == "dispatch").order_by(audit.c.id))]
    assert rows == [("dispatch", aid(0), "sent"), ("dispatch", aid(2), "sent"),
                    ("dispatch", aid(0), "refused")]


async def test_the_audit_page_is_for_supervisors(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    await sign_in(client, "operator")
    assert (await client.get("/audit")).status == 403
    async with TestClient(client.server) as other:
        await sign_in(other, "supervisor")
        page = await (await other.get("/audit")).text()
        assert "<td>登录</td>" in page and "<td>operator</td><td>值班员</td>" in page


ELSEWHERE = ["//evil.example/x", "/\\evil.example", "https://evil.example", "/\t/evil.example",
             "/\n/evil.example", "/\r/evil.example", "/%2F/x\\y", "/x\\..\\\\evil.example"]


@pytest.mark.parametrize("target", ELSEWHERE)
async def test_sign_in_never_sends_anyone_elsewhere(harness: tuple[Harness, TestClient],
                                                    target: str) -> None:
    _, client = harness
    r = await client.get("/lang", params={"to": "en", "next": target}, allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (303, "/")
    page = await client.get("/login")
    pre = re.search(r'name="pre" value="([^"]+)"', await page.text())
    assert pre
    r = await client.post("/login", data={"username": "viewer", "password": PASSWORD,
                                          "pre": pre.group(1), "next": target},
                          allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (303, "/")


async def test_a_bookmarked_filter_survives_signing_in(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    r = await client.get("/?district=甲街道&level=1", allow_redirects=False)
    target = r.headers["Location"]
    assert target.startswith("/login?next=")
    page = await client.get(target)
    nxt = re.search(r'name="next" value="([^"]+)"', await page.text())
    assert nxt and nxt.group(1).replace("&amp;", "&") == "/?district=%E7%94%B2%E8%A1%97%E9%81%93&level=1"
    r = await sign_in_to(client, "viewer", nxt.group(1).replace("&amp;", "&"))
    assert r.headers["Location"] == "/?district=%E7%94%B2%E8%A1%97%E9%81%93&level=1"


async def test_pages_carry_a_content_security_policy_and_show_only_web_links(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "viewer")
    r = await client.get("/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    evil = {**h.board.cases[aid(0)], "version": 9, "transition": "updated", "evidence": [
        {"event_id": "e1", "source": "camera", "kind": "street_vendor",
         "observed_at": "2026-11-20T09:00:00.000+08:00", "camera_id": "c", "track_id": None,
         "confidence": None, "snapshot_url": "javascript:alert(1)"},
        {"event_id": "e2", "source": "camera", "kind": "street_vendor",
         "observed_at": "2026-11-20T09:00:00.000+08:00", "camera_id": "c", "track_id": None,
         "confidence": None, "snapshot_url": "https://cams.example/e2.jpg"}]}
    h.console.store.apply([(orjson.dumps(evil), None, 100)])
    page = await (await client.get(f"/cases/{aid(0)}")).text()
    assert 'src="https://cams.example/e2.jpg"' in page
    assert "javascript:" not in page, re.findall(r".{80}javascript:.{40}", page)


async def test_bulk_acknowledge_refuses_more_than_it_may(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "operator")
    r = await client.post("/api/bulk/acknowledge", json={"alert_ids": [aid(0)] * 501},
                          headers={"X-CSRF-Token": await csrf_of(client)})
    assert r.status == 400 and h.sent == []


async def test_the_map_draws_every_grid_as_a_link_to_the_filtered_board(
        harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    assert (await client.get("/map", allow_redirects=False)).status == 303
    await sign_in(client, "viewer")
    page = await (await client.get("/map")).text()
    links = re.findall(r'<a href="/\?grid_id=([^"]+)" class="grid-link"', page)
    assert len(links) == 50 and "JY-0101" in links
    assert page.count('class="zone ') == 29 and 'src="/static/map.js"' in page


async def test_the_countdown_is_asked_for_again(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    await sign_in(client, "viewer")
    out = await (await client.get(f"/api/cases/{aid(0)}/remaining")).json()
    # The harness's clock is 2026-11-18 19:06:40 (Beijing), the deadline 11-20 11:00.
    assert out["remaining"].startswith("剩余 39 时 53 分（工作时 "), out
    assert (await (await client.get(f"/api/cases/{aid(5)}/remaining")).json())["remaining"] == ""


async def test_a_case_is_also_a_valid_cap_message(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    await sign_in(client, "viewer")
    page = await (await client.get(f"/cases/{aid(0)}")).text()
    assert f'href="/cases/{aid(0)}/cap.xml"' in page
    response = await client.get(f"/cases/{aid(0)}/cap.xml")
    assert response.status == 200 and response.content_type == "application/cap+xml"
    CAP_SCHEMA.validate((await response.read()).decode())
    assert (await client.get("/cases/a-G-0000000000000000000f/cap.xml")).status == 404


async def test_a_tile_layer_only_if_configured(store: LedgerStore) -> None:
    h = Harness(store)
    async with TestClient(TestServer(make_app(h.console))) as client:
        await sign_in(client, "viewer")
        assert "<image" not in await (await client.get("/map")).text()
    tiled = Console(store, h.board, CAL, send=h.console.send, stamp=h.console.stamp,
                    map_view=h.console.map_view, tiles="http://tiles.test/{z}/{x}/{y}.png",
                    tiles_attribution="© 测绘院")
    async with TestClient(TestServer(make_app(tiled))) as client:
        await sign_in(client, "viewer")
        page = await (await client.get("/map")).text()
        hrefs = re.findall(r'<image href="http://tiles.test/(\d+)/(\d+)/(\d+).png"', page)
        assert len(hrefs) == len(tiled.tiles) > 0 and "© 测绘院" in page


async def test_the_reports_page_shows_the_ledgers_scorecard(
        harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    assert (await client.get("/reports/view", allow_redirects=False)).status == 303  # sign in
    await sign_in(client, "viewer")
    page = await (await client.get("/reports?period=day&date=2026-11-20&by=district")).text()
    assert '<iframe id="report"' in page and "period=day&amp;date=2026-11-20&amp;by=district" in page
    r = await client.get("/reports/view?period=day&date=2026-11-20&by=district")
    report = await r.text()
    assert r.status == 200 and "按期结案率" in report and "甲街道" in report
    # 7 cases opened that day in 甲街道, one of them closed: the table says so.
    assert re.search(r"<td[^>]*>甲街道</td>", report)
    for bad in ("period=fortnight", "by=street", "date=20-11-2026"):
        assert (await client.get(f"/reports?{bad}")).status == 400
        assert (await client.get(f"/reports/view?{bad}")).status == 400


async def test_the_dead_letters_page_filters_by_reason(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    for reason in ("not_json", "invalid_field", "invalid_field"):
        h.console.dead_letters.add({"received_at": "2026-11-20T10:00:00.000+08:00",
                                    "topic": "city.events.camera", "reason_code": reason,
                                    "reason": "<b>bad</b>", "payload": "<script>x</script>",
                                    "payload_encoding": "utf-8"})
    await sign_in(client, "viewer")
    page = await (await client.get("/deadletters")).text()
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert re.search(r"invalid_field</a></td><td>.*?</td><td>2</td>", page)
    page = await (await client.get("/deadletters?reason=not_json")).text()
    assert page.count("<code>") == 1


async def test_metrics_count_what_the_audit_records(harness: tuple[Harness, TestClient]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    _, client = harness
    await sign_in(client, "operator", "wrong password")
    await sign_in(client, "operator")
    token = await csrf_of(client)
    await client.post(f"/api/cases/{aid(0)}/actions", json={"action": "acknowledge"},
                      headers={"X-CSRF-Token": token})
    await client.post(f"/api/cases/{aid(0)}/actions", json={"action": "verify"},
                      headers={"X-CSRF-Token": token})
    text = await (await client.get("/metrics")).text()
    check_metrics(text)
    assert not undocumented(text), "metrics missing from docs/monitoring.md"
    assert 'cityorder_build_info{component="console"' in text and "process_cpu_seconds_total" in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("cityorder_console_sign_ins_total", (("result", "failed"),))] == 1
    assert samples[("cityorder_console_sign_ins_total", (("result", "ok"),))] == 1
    assert samples[("cityorder_console_actions_total",
                    (("action", "acknowledge"), ("result", "sent")))] == 1
    assert samples[("cityorder_console_actions_total",
                    (("action", "verify"), ("result", "denied")))] == 1
    assert samples[("cityorder_console_open_cases", ())] == 4       # open, ack'd, dispatched, deferred
    assert samples[("cityorder_console_pending_actions", ())] == 1


async def test_the_notification_switch_is_kept_with_the_user(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    await sign_in(client, "operator")
    assert 'id="notify" checked' not in await (await client.get("/")).text()
    token = await csrf_of(client)
    r = await client.post("/api/prefs", json={"notify": "yes"}, headers={"X-CSRF-Token": token})
    assert r.status == 400
    r = await client.post("/api/prefs", json={"notify": True}, headers={"X-CSRF-Token": token})
    assert r.status == 200 and h.console.accounts.get("operator").notify
    async with TestClient(client.server) as elsewhere:      # another desk, the same person
        await sign_in(elsewhere, "operator")
        assert 'id="notify" checked' in await (await elsewhere.get("/")).text()
        await sign_in(elsewhere, "viewer")
        assert 'id="notify" checked' not in await (await elsewhere.get("/")).text()


async def test_english_on_request_chinese_by_default(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    assert "值班登录" in await (await client.get("/login")).text()
    r = await client.get("/lang", params={"to": "en", "next": "/login"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    assert "Duty sign-in" in await (await client.get("/login")).text()
    r = await sign_in(client, "operator", "wrong password")
    assert "Wrong username or password" in await r.text()
    await sign_in(client, "supervisor")
    report = "/reports/view?period=day&date=2026-11-20&by=district"     # the scorecards
    for path in ("/", "/map", f"/cases/{aid(0)}", "/reports", report, "/deadletters", "/audit"):
        page = await (await client.get(path)).text()
        if path == report:                     # its charts too: their text is the browser's
            assert "On-time closure rate by Sub-district" in page and "Cases opened" in page
            page = re.sub(r"</?svg[^>]*>", " ", page)
        # (the map's shapes are titled with the city map's own names: data, not interface)
        visible = re.sub(r"<script[^>]*>.*?</script>|<svg.*?</svg>|<[^>]+>", " ", page,
                         flags=re.S)
        assert 'lang="en"' in page
        # Chinese is left only where it is data (the city's names) or the way back to it.
        leftover = set(re.findall(r"[\u4e00-\u9fff（），：、]+", visible)) - {"中文", "甲街道", "简阳市"}
        assert not leftover, (path, leftover)
    token = await csrf_of(client)
    r = await client.post(f"/api/cases/{aid(5)}/actions", json={"action": "acknowledge"},
                          headers={"X-CSRF-Token": token})
    assert r.status == 409 and (await r.json())["error"] == \
        "The case is Closed: it cannot Acknowledge"
    for bad in ("//evil.example/", "/\\evil.example", "https://evil.example/"):
        r = await client.get("/lang", params={"to": "zh", "next": bad}, allow_redirects=False)
        assert r.headers["Location"] == "/"
    assert (await client.get("/lang", params={"to": "fr"})).status == 400


async def test_a_browser_that_falls_behind_is_told_to_reload(
        harness: tuple[Harness, TestClient]) -> None:
    h, _ = harness
    slow: asyncio.Queue[Change] = asyncio.Queue()
    h.console.listeners.add(slow)
    for seq in range(STREAM_BACKLOG):
        slow.put_nowait(Change(seq, "case", {}))
    h.console.publish(Change(STREAM_BACKLOG, "case", {"alert_id": aid(0), "version": 9}))
    assert slow not in h.console.listeners
    assert slow.qsize() == STREAM_BACKLOG + 1
    *_, last = [slow.get_nowait() for _ in range(slow.qsize())]
    assert last is RESET
