"""The console's web application (aiohttp): pages, the live board's SSE stream, actions.

Every handler that reads needs a signed-in user; every handler that changes something also
needs the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) and a role
allowed to do it (``console.roles``), checked here on the server whatever the page offered.
Every sign-in, failed sign-in, refusal and action is audited (``Console.audit``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp_sse import sse_response
from prometheus_client import Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import insert, select

from console.auth import Accounts, Session, Throttle, UserError
from console.board import RESET, Board, Change
from console.deadletters import DeadLetters
from console.i18n import (
    ACTION,
    AUDITED,
    GROUPING,
    HTML_LANG,
    LANGS,
    PERIOD,
    RESULT,
    ROLE,
    SEVERITY,
    STATUS,
    TRANSITION,
    Translate,
    catalogue,
    lang_of,
    translator,
)
from console.i18n import COOKIE as LANG_COOKIE
from console.mapview import PAD, MapView, view_of
from console.proxies import Network, client_address
from console.roles import ACTIONS, NOTE, legal, may, offered
from ledger import assessment, render
from ledger.assessment import GROUPINGS, PERIODS
from ledger.rows import from_store
from ledger.schema import audit, cases, transitions
from ledger.store import LedgerStore
from models import cap
from models.inputs import Feedback
from models.timestamps import parse_timestamp_ms
from rules.alerts import ACTIVE
from rules.schedule import CityCalendar
from rules.worktime import wt_between
from streams.metrics import component_registry, scrape

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE, PRE_COOKIE = "cityorder_session", "cityorder_pre"
#: Actions awaiting the engine's answer that are remembered; the oldest is forgotten beyond it.
MAX_PENDING = 10_000
#: Changes waiting to be written to one browser (a stalled connection): beyond it, the browser
#: is told to reload the board instead, and its queue is dropped.
STREAM_BACKLOG = 5_000
SEND_TIMEOUT = 30.0
#: Cases one bulk acknowledge may name.
MAX_BULK = 500
#: Audit results.
OK, DENIED, FAILED, SENT, REFUSED = "ok", "denied", "failed", "sent", "refused"
#: ``sender`` of the case pages' CAP messages.
CAP_SENDER = "cityorder"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONSOLE = web.AppKey("console", "Console")
SESSION = web.RequestKey("session", "Session")


@dataclass
class Pending:
    """An action written to the feedback topic, waiting for the engine's next version."""

    event_id: str
    alert_id: str
    action: str
    actor: str
    role: str
    version: int
    address: str | None


class Console:
    """The application's state: accounts, the board, the sender, the pending actions."""

    def __init__(self, store: LedgerStore, board: Board, cal: CityCalendar, *,
                 send: Callable[[dict[str, Any]], Awaitable[None]],
                 stamp: Callable[[str], Awaitable[int]],
                 publish_audit: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
                 secure_cookies: bool = False, map_view: MapView | None = None,
                 city_name: str = "", tiles: str | None = None,
                 tiles_attribution: str | None = None,
                 trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.store, self.board, self.cal = store, board, cal
        self.map_view = map_view or view_of({})
        self.tiles = self.map_view.tiles(tiles) if tiles else []
        self.tiles_attribution = tiles_attribution
        self.dead_letters = DeadLetters()
        self.metrics = ConsoleMetrics(self)
        self.city_name = city_name
        self.accounts = Accounts(store.engine)
        self.throttle = Throttle()
        self.send, self.stamp, self.publish_audit = send, stamp, publish_audit
        self.secure_cookies = secure_cookies
        self.trusted_proxies = trusted_proxies
        self.pending: dict[str, Pending] = {}
        #: The system's clock as last read for a case's countdown (monotonic time read, value):
        #: reading it asks Kafka, and every open case page asks every 30 s.
        self._clocks: dict[str, tuple[float, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.listeners: set[asyncio.Queue[Change]] = set()
        #: The open SSE streams' handler tasks, ended at shutdown (they never end by themselves).
        self.streams: set[asyncio.Task[Any]] = set()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
            undefined=jinja2.StrictUndefined)
        self.templates.filters["local"] = self.local
        self.templates.filters["web_url"] = web_url
        self.templates.globals.update(STATUS=STATUS, SEVERITY=SEVERITY, TRANSITION=TRANSITION,
                                      ACTION=ACTION, AUDITED=AUDITED, ROLE=ROLE, PERIOD=PERIOD, RESULT=RESULT,
                                      GROUPING=GROUPING, HTML_LANG=HTML_LANG)

    def local(self, ms: int | None) -> str:
        """An instant as the centre reads it: local date and time to the second."""
        return "" if ms is None else self.cal.format(ms)[:19].replace("T", " ")

    # -- fan-out ---------------------------------------------------------------------------

    def publish(self, change: Change) -> None:
        """A board change, to every connected browser; resolves the pending actions it answers."""
        if change.event in ("case", "gone"):
            aid, version = change.data["alert_id"], change.data["version"]
            for eid in [e for e, p in self.pending.items()
                        if p.alert_id == aid and version > p.version]:
                del self.pending[eid]
        for q in list(self.listeners):
            if q.qsize() >= STREAM_BACKLOG:
                self.listeners.discard(q)
                q.put_nowait(RESET)
            else:
                q.put_nowait(change)

    def refused(self, letter: dict[str, Any]) -> Change | None:
        """The engine's dead letter for feedback: a refusal of one of ours is audited and shown."""
        p = self.pending.pop(letter.get("event_id") or "", None)
        if p is None:
            return None
        data = {"event_id": p.event_id, "alert_id": p.alert_id, "action": p.action,
                "actor": p.actor, "reason_code": letter.get("reason_code"),
                "reason": letter.get("reason")}
        task = asyncio.get_running_loop().create_task(self.audit(
            p.actor, p.role, p.action, p.alert_id, p.address, REFUSED,
            {"event_id": p.event_id, "reason_code": data["reason_code"], "reason": data["reason"]}))
        self._tasks.add(task)               # kept until done: a bare task may be collected
        task.add_done_callback(self._tasks.discard)
        return self.board.refused(data)

    async def clock_for_display(self, alert_id: str) -> int:
        """The system's clock for a countdown: read at most every 15 s per case (an action is
        stamped with a fresh reading, :attr:`stamp`)."""
        now = time.monotonic()
        hit = self._clocks.get(alert_id)
        if hit is not None and now - hit[0] < 15:
            return hit[1]
        if len(self._clocks) > 10_000:
            self._clocks.clear()
        value = await self.stamp(alert_id)
        self._clocks[alert_id] = (now, value)
        return value

    # -- audit -----------------------------------------------------------------------------

    async def audit(self, actor: str | None, role: str | None, action: str, alert_id: str | None,
                    address: str | None, result: str, detail: dict[str, Any] | None = None) -> None:
        self.metrics.audited(action, result)
        row = {"at": int(time.time() * 1000), "actor": actor, "role": role, "action": action,
               "alert_id": alert_id, "address": (address or "")[:64] or None, "result": result,
               "detail": detail}

        def write() -> None:
            with self.store.engine.begin() as conn:
                conn.execute(insert(audit).values(**row))
        await asyncio.to_thread(write)
        if self.publish_audit is not None:
            try:
                await self.publish_audit({**row, "at": self.cal.format(row["at"])})
            except Exception:   # the database row is the record; the topic is a copy for others
                log.exception("console: could not write the audit topic")

    # -- sessions and checks ---------------------------------------------------------------

    def session_of(self, request: web.Request) -> Session | None:
        return self.accounts.session(request.cookies.get(COOKIE))

    def render(self, name: str, request: web.Request, status: int = 200,
               **context: Any) -> web.Response:
        session = request.get(SESSION)
        lang = _language(request)
        html = self.templates.get_template(name).render(
            session=session, user=session.user if session else None,
            csrf=session.csrf if session else "", lang=lang, _=translator(lang),
            catalogue=catalogue(lang), here=request.path_qs, **context)
        return web.Response(text=html, status=status, content_type="text/html")


def _language(request: web.Request) -> str:
    """The request's language: the browser's choice (``/lang``)."""
    return lang_of(request.cookies.get(LANG_COOKIE))


def speaks(request: web.Request) -> Translate:
    return translator(_language(request))


def _json_error(text: str) -> str:
    return orjson.dumps({"error": text}).decode()


def _report_query(request: web.Request) -> tuple[str, str, date | None]:
    """The scorecard's ``period``, ``by`` and ``date`` (the reports page and its frame)."""
    q = request.query
    period, by = q.get("period", "month"), q.get("by", "district")
    if period not in PERIODS or by not in GROUPINGS:
        raise web.HTTPBadRequest(text=speaks(request)(
            "周期须为 {periods} 之一，分组须为 {groupings} 之一",
            periods=", ".join(PERIODS), groupings=", ".join(GROUPINGS)))
    try:
        return period, by, date.fromisoformat(q["date"]) if q.get("date") else None
    except ValueError:
        raise web.HTTPBadRequest(text=speaks(request)("日期须为 YYYY-MM-DD")) from None


def web_url(url: object) -> str | None:
    """A link a page may show: http or https only (a producer's ``javascript:`` URL is not)."""
    if not isinstance(url, str):
        return None
    return url if urlsplit(url.strip()).scheme.lower() in ("http", "https") else None


#: Scripts only from the console itself; images also from the camera platform's and the tile
#: server's addresses (snapshots, tiles), whatever they are.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' http: https: data:; frame-ancestors 'self'; form-action 'self'")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


def _address(request: web.Request) -> str | None:
    return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                          request.app[CONSOLE].trusted_proxies)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/events" or \
        "application/json" in request.headers.get("Accept", "")


def signed_in(handler: Handler) -> Handler:
    """A page or API for any signed-in user."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        console: Console = request.app[CONSOLE]
        session = await asyncio.to_thread(console.session_of, request)
        if session is None:
            if _wants_json(request) or request.method != "GET":
                raise web.HTTPUnauthorized(text=_json_error(speaks(request)("请先登录")),
                                           content_type="application/json")
            raise web.HTTPSeeOther(f"/login?next={quote(str(request.rel_url), safe='/')}")
        request[SESSION] = session
        return await handler(request)
    return wrapped


async def _check_csrf(request: web.Request, session: Session) -> None:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in ("application/x-www-form-urlencoded",
                                                  "multipart/form-data"):
        given = (await request.post()).get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given, session.csrf):
        raise web.HTTPForbidden(text=_json_error(speaks(request)("CSRF 令牌缺失或错误，请刷新页面")),
                                content_type="application/json")


# -- sign-in ------------------------------------------------------------------------------------

async def login_page(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    resp = console.render("login.html", request, next=request.query.get("next", "/"), pre=pre,
                          error=None)
    resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="Strict",
                    secure=console.secure_cookies)
    return resp


async def login(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    nxt = _local_path(str(form.get("next", "/")))
    pre = request.cookies.get(PRE_COOKIE)
    if not pre or not hmac.compare_digest(str(form.get("pre", "")), pre):
        raise web.HTTPForbidden(text=speaks(request)("登录表单已过期，请刷新页面"))
    address = _address(request)
    keys = [f"addr:{address}", f"user:{username}"]
    now = int(time.time() * 1000)
    wait = console.throttle.blocked_for(keys, now)
    if wait:
        await console.audit(username, None, "sign_in", None, address, DENIED,
                            {"reason": "rate limited"})
        return console.render("login.html", request, status=429, next=nxt, pre=pre,
                              error=speaks(request)("登录失败次数过多，请 {s} 秒后再试",
                                                s=wait // 1000 + 1))
    user = await asyncio.to_thread(console.accounts.verify, username, password)
    if user is None:
        console.throttle.fail(keys, now)
        await console.audit(username, None, "sign_in", None, address, FAILED)
        return console.render("login.html", request, status=401, next=nxt, pre=pre,
                              error=speaks(request)("用户名或密码错误"))
    console.throttle.forget(keys)
    token, _ = await asyncio.to_thread(console.accounts.start, user, address)
    await console.audit(user.username, user.role, "sign_in", None, address, OK)
    resp = web.HTTPSeeOther(nxt)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=console.secure_cookies,
                    path="/")
    resp.del_cookie(PRE_COOKIE)
    raise resp


@signed_in
async def logout(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    session: Session = request[SESSION]
    await _check_csrf(request, session)
    await asyncio.to_thread(console.accounts.end, request.cookies[COOKIE])
    await console.audit(session.user.username, session.user.role, "sign_out", None,
                        _address(request), OK)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


# -- the board ----------------------------------------------------------------------------------

@signed_in
async def board_page(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    return console.render("board.html", request)


@signed_in
async def board_json(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    return web.Response(body=orjson.dumps(console.board.snapshot()),
                        content_type="application/json")


@signed_in
async def events(request: web.Request) -> web.StreamResponse:
    """The board's changes as Server-Sent Events, ids ``epoch:seq``, resumable."""
    console: Console = request.app[CONSOLE]
    queue: asyncio.Queue[Change] = asyncio.Queue()
    console.listeners.add(queue)        # before reading the log: nothing falls in between
    task = asyncio.current_task()
    assert task is not None
    console.streams.add(task)
    try:
        return await _stream(request, console, queue)
    except (ConnectionResetError, ClientConnectionResetError):
        return web.Response(status=204)     # the browser went away; it reconnects if it wants
    except TimeoutError:                    # took nothing for SEND_TIMEOUT s: cut it off
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)
    finally:
        console.listeners.discard(queue)
        console.streams.discard(task)


async def _stream(request: web.Request, console: Console,
                  queue: asyncio.Queue[Change]) -> web.StreamResponse:
    async with sse_response(request, ping_interval=15) as resp:
        backlog = console.board.since(request.headers.get("Last-Event-ID")
                                      or request.query.get("last"))
        if backlog is None:
            await resp.send("{}", event="reset")
            return resp
        sent = 0
        if backlog:
            await _send(resp, console, backlog)
            sent = backlog[-1].seq
        while resp.is_connected():
            # What came together goes together: one write, one wake-up of the browser, for
            # the changes of one Kafka fetch.
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            if any(c is RESET for c in batch):
                await resp.send("{}", event="reset")
                return resp
            batch = [c for c in batch if c.seq > sent]
            if batch:
                await _send(resp, console, batch)
                sent = batch[-1].seq
        return resp


async def _send(resp: Any, console: Console, changes: list[Change]) -> None:
    """Server-Sent Events, in one write (the data is JSON on one line: nothing to split). A
    browser that takes nothing for :data:`SEND_TIMEOUT` seconds is disconnected."""
    epoch = console.board.epoch
    frames = "".join(f"id: {epoch}:{c.seq}\nevent: {c.event}\ndata: {c.text}\n\n"
                     for c in changes)
    async with asyncio.timeout(SEND_TIMEOUT):
        await resp.write(frames.encode())


# -- a case ---------------------------------------------------------------------------------------

Record = tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]


def _case_record(store: LedgerStore, alert_id: str) -> Record:
    """The case's latest message, every version of it, and the console's audit rows on it."""
    with store.engine.connect() as conn:
        row = conn.execute(select(cases.c.message).where(cases.c.alert_id == alert_id)).first()
        history = [m if isinstance(m, dict) else orjson.loads(m) for (m,) in conn.execute(
            select(transitions.c.message).where(transitions.c.alert_id == alert_id)
            .order_by(transitions.c.version))]
        notes = [dict(r._mapping) for r in conn.execute(
            select(audit.c.at, audit.c.actor, audit.c.role, audit.c.action, audit.c.result,
                   audit.c.detail).where(audit.c.alert_id == alert_id).order_by(audit.c.id))]
    message = None if row is None else (row[0] if isinstance(row[0], dict) else orjson.loads(row[0]))
    return message, history, notes


@signed_in
async def case_page(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    aid = request.match_info["alert_id"]
    message, history, notes = await asyncio.to_thread(_case_record, console.store, aid)
    live = console.board.cases.get(aid)
    if live is not None and (message is None or live["version"] > message["version"]):
        message = {**(message or {}), **live}
    if message is None:
        raise web.HTTPNotFound(text=speaks(request)("无此案件") + f": {aid}")
    if live is not None and (not history or live["version"] > history[-1]["version"]):
        history.append(live)        # the ledger has not written it yet; the stream has
    session: Session = request[SESSION]
    return console.render("case.html", request, case=message, history=history, notes=notes,
                          actions=offered(session.user.role, message["status"]),
                          pending=[p for p in console.pending.values() if p.alert_id == aid],
                          key_area=console.board.key_area(message),
                          last=f"{console.board.epoch}:{console.board.seq}",
                          remaining=await _remaining(console, aid, message.get("deadline"),
                                                     speaks(request)))


@signed_in
async def case_cap(request: web.Request) -> web.Response:
    """The case's latest version as a CAP 1.2 message (models.cap), from the ledger."""
    console: Console = request.app[CONSOLE]
    aid = request.match_info["alert_id"]
    row = await asyncio.to_thread(console.store.case, aid)
    if row is None:
        raise web.HTTPNotFound(text=speaks(request)("无此案件") + f": {aid}")
    message = row["message"] if isinstance(row["message"], dict) else orjson.loads(row["message"])
    return web.Response(body=cap.render(message, CAP_SENDER, console.city_name or None),
                        content_type="application/cap+xml", charset="utf-8")


@signed_in
async def remaining(request: web.Request) -> web.Response:
    """The case page's countdown, asked for again every half minute (working time needs the
    city's calendar, which only the server has)."""
    console: Console = request.app[CONSOLE]
    aid = request.match_info["alert_id"]
    live = console.board.cases.get(aid)
    deadline = live.get("deadline") if live is not None else None
    return web.json_response({"alert_id": aid, "remaining": await _remaining(
        console, aid, deadline, speaks(request)) if live is not None else ""})


async def _remaining(console: Console, aid: str, deadline: str | None, t: Translate) -> str:
    """Time left to the deadline on the system's clock (the event clock of a simulation),
    in natural and in working time (docs/working-time.md)."""
    if not deadline:
        return ""
    now = await console.clock_for_display(aid)
    due = parse_timestamp_ms(deadline)
    if due <= now:
        return t("已超时 {span}", span=_span(now - due, t))
    return t("剩余 {span}（工作时 {work}）", span=_span(due - now, t),
             work=_span(wt_between(console.cal, now, due), t))


def _span(ms: int, t: Translate) -> str:
    minutes = ms // 60_000
    return t("{h} 时 {m} 分", h=minutes // 60, m=minutes % 60) if minutes >= 60 else \
        t("{m} 分", m=minutes)


@signed_in
async def act(request: web.Request) -> web.Response:
    """One action on one case: checked, then written to the feedback topic (pending)."""
    console: Console = request.app[CONSOLE]
    session: Session = request[SESSION]
    await _check_csrf(request, session)
    body = await _body(request)
    aid = request.match_info["alert_id"]
    code, result = await _act(console, session, aid, body, _address(request), speaks(request))
    return web.json_response(result, status=code)


@signed_in
async def bulk_acknowledge(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    session: Session = request[SESSION]
    await _check_csrf(request, session)
    body = await _body(request)
    ids = body.get("alert_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return web.json_response({"error": speaks(request)("请选择要受理的案件（alert_ids）")},
                                 status=400)
    if len(ids) > MAX_BULK:
        return web.json_response({"error": speaks(request)("一次最多受理 {n} 件", n=MAX_BULK)},
                                 status=400)
    results = []
    for aid in ids:
        code, result = await _act(console, session, aid, {"action": "acknowledge",
                                                           "note": body.get("note")},
                                  _address(request), speaks(request))
        results.append({"code": code, **result})
    return web.json_response({"results": results},
                             status=207 if any(r["code"] != 202 for r in results) else 202)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = await request.json(loads=orjson.loads)
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(text=_json_error(speaks(request)("请求体不是 JSON")),
                                     content_type="application/json") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text=_json_error(speaks(request)("请求体须为 JSON 对象")),
                                     content_type="application/json")
        return body
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def _act(console: Console, session: Session, aid: str, body: dict[str, Any],
               address: str | None, t: Translate) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body of one action on one case (``error`` in the page's language)."""
    user = session.user
    action = body.get("action")
    if action not in (*ACTIONS, NOTE):
        return 400, {"alert_id": aid, "error": t("未知操作 {action}", action=repr(action))}
    if not may(user.role, action):
        await console.audit(user.username, user.role, action, aid, address, DENIED,
                            {"reason": "role"})
        return 403, {"alert_id": aid, "error": t("{role}无权{action}", role=t(ROLE[user.role]),
                                                 action=t(ACTION[action]))}
    case = console.board.cases.get(aid)
    status = case["status"] if case is not None else await asyncio.to_thread(_status, console, aid)
    version = case["version"] if case is not None else 0
    if status is None:
        return 404, {"alert_id": aid, "error": t("无此案件")}
    if not legal(action, status):
        await console.audit(user.username, user.role, action, aid, address, DENIED,
                            {"reason": f"not from {status}"})
        return 409, {"alert_id": aid, "error": t("案件{status}，不能{action}",
                                                 status=t(STATUS[status]), action=t(ACTION[action]))}
    note = body.get("note") or None
    if action == NOTE:
        if not note:
            return 400, {"alert_id": aid, "error": t("请填写备注内容")}
        await console.audit(user.username, user.role, NOTE, aid, address, OK, {"note": note})
        return 201, {"alert_id": aid, "status": "noted"}
    if action == "reject" and not note:
        return 400, {"alert_id": aid, "error": t("作废须写明原因")}
    at = await console.stamp(aid)
    message: dict[str, Any] = {"event_id": f"fb-console-{uuid.uuid4().hex[:16]}", "alert_id": aid,
                               "action": action, "actor": user.username, "at": console.cal.format(at)}
    if note:
        message["note"] = note
    for key in ("assignee", "until"):
        if body.get(key):
            message[key] = body[key]
    photos = body.get("photos")
    if isinstance(photos, str):
        photos = [p for p in photos.split() if p]
    if photos:
        message["photos"] = photos
    try:
        Feedback.model_validate_json(orjson.dumps(message))
    except ValueError as e:
        return 400, {"alert_id": aid, "error": str(e).splitlines()[-1] if str(e) else "invalid"}
    if len(console.pending) >= MAX_PENDING:     # answers that never came (an engine down)
        del console.pending[next(iter(console.pending))]
    console.pending[message["event_id"]] = Pending(message["event_id"], aid, action,
                                                  user.username, user.role, version, address)
    try:
        await console.send(message)
    except Exception as e:
        console.pending.pop(message["event_id"], None)
        await console.audit(user.username, user.role, action, aid, address, FAILED,
                            {"error": repr(e)})
        return 503, {"alert_id": aid, "error": t("无法写入反馈主题，请稍后重试")}
    await console.audit(user.username, user.role, action, aid, address, SENT,
                        {"event_id": message["event_id"], "note": note})
    return 202, {"alert_id": aid, "status": "pending", "event_id": message["event_id"],
            "version": version}


def _status(console: Console, aid: str) -> str | None:
    with console.store.engine.connect() as conn:
        return conn.execute(select(cases.c.status).where(cases.c.alert_id == aid)).scalar()


@signed_in
async def map_page(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    return console.render("map.html", request, view=console.map_view, pad=PAD,
                          tiles=console.tiles, attribution=console.tiles_attribution,
                          city=console.city_name)


# -- reports ----------------------------------------------------------------------------------

@signed_in
async def reports_page(request: web.Request) -> web.Response:
    """The 督查考核 scorecards: a form, and the report of ``cityorder report --format html``."""
    console: Console = request.app[CONSOLE]
    period, by, on = _report_query(request)
    return console.render("reports.html", request, periods=PERIODS, groupings=GROUPINGS,
                          period=period, by=by, on=on.isoformat() if on else "",
                          query=request.query_string)


@signed_in
async def report_view(request: web.Request) -> web.Response:
    """The report itself, one self-contained page (shown in the reports page's frame)."""
    console: Console = request.app[CONSOLE]
    period, by, on = _report_query(request)
    lang = _language(request)

    def build() -> str:
        source = from_store(console.store, period, on, None, int(time.time() * 1000),
                            console.cal, by, trend=True)
        rep = assessment.report(source.facts, source.period, source.t, by, console.cal)
        return render.as_html(rep, source.trend,
                              assessment.top_categories(source.facts, source.period),
                              translator(lang), HTML_LANG[lang])
    return web.Response(text=await asyncio.to_thread(build), content_type="text/html")


@signed_in
async def deadletters_page(request: web.Request) -> web.Response:
    """What producers sent wrong, by reason and source topic, newest first."""
    console: Console = request.app[CONSOLE]
    reason, topic = request.query.get("reason") or None, request.query.get("topic") or None
    counts, letters = console.dead_letters.view(reason, topic)
    return console.render("deadletters.html", request, counts=counts, letters=letters,
                          reason=reason, topic=topic)


# -- audit page, health ---------------------------------------------------------------------

@signed_in
async def audit_page(request: web.Request) -> web.Response:
    console: Console = request.app[CONSOLE]
    session: Session = request[SESSION]
    if session.user.role not in ("supervisor", "admin"):
        raise web.HTTPForbidden(text=speaks(request)("操作审计仅供督查员和管理员查看"))

    def read() -> list[dict[str, Any]]:
        with console.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(audit).order_by(audit.c.id.desc()).limit(500))]
    return console.render("audit.html", request, rows=await asyncio.to_thread(read))


def _local_path(target: str) -> str:
    """``target`` if it is a path on this site, else ``/``: no redirect sends anyone elsewhere.
    Control characters are refused outright: a browser drops a tab or newline from a URL, so
    ``/<TAB>/evil.example`` would become ``//evil.example``."""
    if (not target.startswith("/") or target[1:2] in ("/", "\\") or "\\" in target
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


async def choose_language(request: web.Request) -> web.StreamResponse:
    """``/lang?to=en&next=/map``: the browser's language cookie (nothing on the server
    changes, so it needs no session: the sign-in page offers it too)."""
    lang = request.query.get("to", "")
    if lang not in LANGS:
        raise web.HTTPBadRequest(text=f"to: one of {', '.join(LANGS)}")
    resp = web.HTTPSeeOther(_local_path(request.query.get("next", "/")))
    resp.set_cookie(LANG_COOKIE, lang, max_age=400 * 86_400, samesite="Lax", path="/",
                    secure=request.app[CONSOLE].secure_cookies)
    raise resp


@signed_in
async def preferences(request: web.Request) -> web.Response:
    """The signed-in user's own settings: ``{"notify": bool}`` (the board's sound and
    notification), kept with the user in the ledger."""
    console: Console = request.app[CONSOLE]
    session: Session = request[SESSION]
    await _check_csrf(request, session)
    body = await _body(request)
    if not isinstance(body.get("notify"), bool):
        return web.json_response({"error": "notify: give true or false"}, status=400)
    await asyncio.to_thread(console.accounts.set_notify, session.user.username, body["notify"])
    return web.json_response({"notify": body["notify"]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics: counts only (no names, no cases), unauthenticated like a worker's."""
    console: Console = request.app[CONSOLE]
    return web.Response(body=scrape(console.metrics.registry, request.query),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


class ConsoleMetrics:
    """``cityorder_console_*``: sign-ins and actions by result (counted where they are
    audited, so the two always agree), open cases, live streams, actions awaiting the engine."""

    def __init__(self, console: Console) -> None:
        r = self.registry = component_registry("console")
        self.sign_ins = Counter("cityorder_console_sign_ins", "Sign-in attempts by result "
                                "(ok, failed, denied: rate limited).", ["result"], registry=r)
        self.actions = Counter("cityorder_console_actions", "Actions by action and result (sent, "
                               "denied, failed, refused by the engine, ok: a note).",
                               ["action", "result"], registry=r)
        Gauge("cityorder_console_open_cases", "Open cases on the board (not counting the "
              "resolved ones that wait for verification).", registry=r).set_function(
            lambda: sum(c["status"] in ACTIVE for c in console.board.cases.values()))
        Gauge("cityorder_console_streams", "Browsers following the live stream.",
              registry=r).set_function(lambda: len(console.streams))
        Gauge("cityorder_console_pending_actions", "Actions sent and not yet answered by the "
              "engine.", registry=r).set_function(lambda: len(console.pending))

    def audited(self, action: str, result: str) -> None:
        if action == "sign_in":
            self.sign_ins.labels(result).inc()
        elif action in (*ACTIONS, NOTE):
            self.actions.labels(action, result).inc()


async def _end_streams(app: web.Application) -> None:
    for task in list(app[CONSOLE].streams):
        task.cancel()


def make_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[security_headers])
    app[CONSOLE] = console
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", board_page)
    app.router.add_get("/api/board", board_json)
    app.router.add_get("/events", events)
    app.router.add_get("/map", map_page)
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/deadletters", deadletters_page)
    app.router.add_get("/reports/view", report_view)
    app.router.add_get("/cases/{alert_id}", case_page)
    app.router.add_post("/api/cases/{alert_id}/actions", act)
    app.router.add_get("/api/cases/{alert_id}/remaining", remaining)
    app.router.add_get("/cases/{alert_id}/cap.xml", case_cap)
    app.router.add_post("/api/bulk/acknowledge", bulk_acknowledge)
    app.router.add_get("/audit", audit_page)
    app.router.add_get("/lang", choose_language)
    app.router.add_post("/api/prefs", preferences)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", HERE / "static")
    return app


__all__ = ["Console", "UserError", "make_app"]
