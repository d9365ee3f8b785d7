"""A real HTTP server for webhook tests and the benchmark: a dispatch system that fails, times
out, throttles, refuses and answers slowly on demand, checks every signature the way
docs/webhooks.md tells receivers to, and records what it accepted.

It runs its own event loop in a thread, so a test (or a benchmark) can drive the webhook
process and read topics while it serves. Its behaviour may be changed while it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from models.asyncapi import TOPICS
from streams.settings import Settings

EXAMPLE: dict[str, Any] = next(t for t in TOPICS if t.name == "city.alerts").examples[0][1]
DISTRICTS = ("简城街道", "东溪街道", "十里坝街道", "射洪坝街道")
LIFECYCLE = (("opened", "open"), ("updated", "open"), ("escalated", "open"), ("acknowledged", "acknowledged"),
             ("dispatched", "dispatched"), ("resolved", "resolved"), ("closed", "closed"))


def transitions(alerts: int, versions: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``alerts`` × ``versions`` contract messages (the contract's example, varied), in the
    order an engine would emit them: the versions of an alert interleaved with other alerts'."""
    out = []
    for v in range(1, versions + 1):
        for a in range(alerts):
            transition, status = LIFECYCLE[min(v - 1, len(LIFECYCLE) - 1)]
            level = 1 + (a + v) % 3
            out.append(EXAMPLE | {
                "alert_id": f"a-JY-{a % 10000:04d}-{seed:04x}{a:016x}", "grid_id": f"JY-{a % 10000:04d}",
                "version": v, "transition": transition, "status": status, "level": level,
                "district": DISTRICTS[a % len(DISTRICTS)],
                "notify": ["grid_inspector", "district_duty"][:1 + a % 2],
                "at": f"2026-11-22T08:{v:02d}:{a % 60:02d}.000+08:00"})
    return out


@dataclass
class Delivery:
    path: str
    key: str
    attempt: int
    body: bytes
    signed: bool
    at: float


@dataclass
class Behaviour:
    """What the next requests get. Counts go down as requests use them."""

    fail_first: int = 0           # 500 to the first N requests
    throttle_first: int = 0       # then 429 with Retry-After: 1
    timeout_every: int = 0        # every k-th request, if a first try: no answer for hang_s
    hang_s: float = 0.0
    slow_s: float = 0.0           # every request waits this long first
    reject: set[str] = field(default_factory=set)    # alert ids answered 422
    broken: set[str] = field(default_factory=set)    # alert ids answered 500, always


class Receiver:
    def __init__(self, secret: bytes, port: int) -> None:
        self.secret, self.port = secret, port
        self.behaviour = Behaviour()
        self.accepted: list[Delivery] = []
        self.requests = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        """Down: connections are refused until :meth:`start`."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def keys(self, path: str = "hook") -> set[str]:
        with self._lock:
            return {d.key for d in self.accepted if d.path == path}

    def deliveries(self, path: str = "hook") -> list[Delivery]:
        with self._lock:
            return [d for d in self.accepted if d.path == path]

    def wait_for(self, keys: set[str], path: str = "hook", timeout: float = 120.0) -> set[str]:
        """Keys still missing once all came or ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = keys - self.keys(path)
            if not missing:
                return set()
            time.sleep(0.1)
        return keys - self.keys(path)

    async def _start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def signed(self, request: web.Request, body: bytes) -> bool:
        """The check docs/webhooks.md gives receivers, written out here on its own."""
        stamp = request.headers.get("X-Cityorder-Timestamp", "")
        given = request.headers.get("X-Cityorder-Signature", "")
        want = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        return fresh and hmac.compare_digest(given, want)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        b = self.behaviour
        with self._lock:
            self.requests += 1
            n = self.requests
        if b.slow_s:
            await asyncio.sleep(b.slow_s)
        first_try = request.headers.get("X-Cityorder-Attempt") == "1"
        if b.timeout_every and n % b.timeout_every == 0 and first_try:
            await asyncio.sleep(b.hang_s)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=200, text="too late: the client gave up")
        if b.fail_first > 0:
            b.fail_first -= 1
            return web.Response(status=500, text="dispatch database is restarting")
        if b.throttle_first > 0:
            b.throttle_first -= 1
            return web.Response(status=429, text="slow down", headers={"Retry-After": "1"})
        key = request.headers.get("Idempotency-Key", "")
        alert_id = key.rsplit(":", 1)[0]
        if alert_id in b.reject:
            return web.json_response({"error": "unknown district"}, status=422)
        if alert_id in b.broken:
            return web.Response(status=500, text="this one always fails")
        signed = self.signed(request, body)
        with self._lock:
            if not signed:
                self.bad_signatures += 1
            self.accepted.append(Delivery(request.match_info["path"], key,
                                          int(request.headers.get("X-Cityorder-Attempt", "0")), body,
                                          signed, time.monotonic()))
        return web.Response(status=204)


def keys_of(messages: list[dict[str, Any]]) -> set[str]:
    return {f"{m['alert_id']}:{m['version']}" for m in messages}


def encoded(messages: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) records of city.alerts."""
    return [(m["alert_id"].encode(), orjson.dumps(m)) for m in messages]


async def produce_alerts(settings: Settings, records: list[tuple[bytes | None, bytes]],
                         topic: str = "city.alerts") -> None:
    """Write (key, value) records to ``city.alerts`` (or ``topic``), all acknowledged, at full
    speed."""
    producer = AIOKafkaProducer(**settings.producer_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    try:
        acks = [await producer.send(settings.topic(topic), v, key=k) for k, v in records]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()
