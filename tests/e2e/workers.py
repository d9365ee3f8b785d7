"""Run real workers as child processes (``cityorder worker``) and talk to them over Kafka/HTTP.

Workers are separate processes so that a test can SIGKILL one exactly as an operator's
machine would lose it; everything they need comes through ``CITYORDER_*`` variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from rules.citymap import CityMap
from rules.pack import load_rules
from rules.replay import Replay
from streams.codec import decode
from streams.compare import by_version, compare_alerts
from streams.dev import free_port
from streams.partitioned import source_key
from streams.settings import Settings

READY_TIMEOUT_S = 40.0


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a ``cityorder`` process a test starts: this one's, with ``settings``
    as its only ``CITYORDER_*`` variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CITYORDER_")} | settings.to_env()


class Child:
    """A ``cityorder`` process a test started, its output kept in ``log_path`` for failures,
    serving ``/metrics`` on ``port``."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    log: Any
    port: int

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def wait_metrics(self, timeout: float = 30) -> str:
        """``/metrics`` once the process serves it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.metrics()
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"no /metrics:\n{self.tail()}") from None
                time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def tail(self, lines: int = 60) -> str:
        if not self.log.closed:
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Worker(Child):
    """One ``cityorder worker`` process."""

    def __init__(self, settings: Settings, log_path: Path, module: str = "streams.cli",
                 **overrides: Any) -> None:
        """``module``: what ``python -m`` runs (a test's own wrapper of the CLI, e.g.
        ``tests.e2e.faulty_worker``); ``overrides``: settings for this worker."""
        self.port = free_port(0)
        env = child_env(settings.model_copy(update=overrides | {"web_port": self.port}))
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", module, "worker", "--loglevel", "info"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def readyz(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as e:
            return dict(json.loads(e.read()))
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            state = self.readyz()
            if state and state.get("ready"):
                return state
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout} s (last: {self.readyz()}):\n{self.tail()}")



def read_topic(settings: Settings, name: str, *, done: Callable[[list[dict[str, Any]]], bool],
               timeout: float = 60.0, quiet_s: float = 3.0) -> list[dict[str, Any]]:
    """Every message of a topic from the start, once ``done(messages)`` holds and nothing new
    came for ``quiet_s`` (or ``timeout`` ran out: the caller's assertions then show what is missing)."""

    async def run() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(settings.topic(name), **settings.aiokafka_kwargs(),
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    fetch_max_wait_ms=100)
        await consumer.start()
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out += [orjson.loads(r.value) for r in records]
                    last = time.monotonic()
                if time.monotonic() - last >= quiet_s and done(out):
                    break
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def replay_of(lines: Iterable[dict[str, Any]], city: Path, rules: Iterable[Path], *,
              clock: str = "event", partitions: int | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``cityorder replay [--partitions N]`` gives for ``lines``: (alerts, dead letters)."""
    alerts: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    rp = Replay(CityMap.load(city), load_rules(list(rules)), clock=clock, on_alert=alerts.append,
                on_dead=dead.append, **({"partitions": partitions} if partitions else {}))
    for n, line in enumerate(lines, 1):
        rp.line(orjson.dumps(line), n)
    rp.finish()
    return alerts, dead


def without_emitted_at(messages: Iterable[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Alerts keyed by (alert_id, version); fails if one key came with two contents."""
    out, conflicts = by_version(messages)
    assert not conflicts, f"{len(conflicts)} versions came with two contents, e.g. {conflicts[:3]}"
    return out


def assert_same(got: dict[Any, Any], want: dict[Any, Any], *workers: Worker) -> None:
    """Two ``without_emitted_at`` maps are equal; a difference is told in a few lines (pytest's
    own diff of two dicts of thousands of alerts runs for minutes), with the workers' logs."""
    result = compare_alerts(got.values(), want.values())
    assert result.same, result.describe() + "\n" + "\n".join(w.tail(20) for w in workers)


def frontier_breaches(settings: Settings, quiet_s: float = 2.0) -> list[str]:
    """Where ``cityorder.internal`` breaks its promise: a new part (a source record not seen
    before in that internal partition) whose arrival is at or before a frontier already
    reported there for its source partition. An evaluator has applied the input behind that
    frontier by then, so such a part comes out late or out of order. Empty when all is well."""

    async def run() -> list[str]:
        consumer = AIOKafkaConsumer(settings.topic("cityorder.internal"), **settings.aiokafka_kwargs(),
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen: dict[int, set[tuple[str, int | None]]] = {}
        frontier: dict[int, dict[str, tuple[int, int]]] = {}
        breaches: list[str] = []
        last = time.monotonic()
        try:
            while time.monotonic() - last < quiet_s:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    last = time.monotonic()
                    mine = seen.setdefault(tp.partition, set())
                    reported = frontier.setdefault(tp.partition, {})
                    for r in records:
                        batch = decode(r.value)
                        for part in batch.parts:
                            source = source_key(part.topic, part.partition or 0)
                            if (source, part.offset) in mine:
                                continue
                            mine.add((source, part.offset))
                            f = reported.get(source)
                            if f is not None and part.arrival is not None and part.arrival <= f[0]:
                                breaches.append(f"internal {tp.partition}@{r.offset}: {source}@{part.offset} "
                                                f"arrived {part.arrival}, frontier {f[0]} since @{f[1]}")
                        for source, t in (batch.frontier or {}).items():
                            if source not in reported or t > reported[source][0]:
                                reported[source] = (t, r.offset)
        finally:
            await consumer.stop()
        return breaches

    return asyncio.run(run())


def metric_total(worker: Worker, name: str) -> float:
    """A counter summed over its labels, from the worker's /metrics."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
               if line.startswith(name) and not line.startswith("#"))


class Cli(Child):
    """``cityorder ARGV...`` as a process, configured by ``settings`` (and ``env`` on top)."""

    def __init__(self, settings: Settings, log_path: Path, *argv: str,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", *argv],
                                     env=child_env(settings) | (env or {}), stdout=self.log,
                                     stderr=subprocess.STDOUT)


class LedgerProc(Cli):
    """One ``cityorder ledger`` process."""

    def __init__(self, settings: Settings, ledger_url: str, log_path: Path) -> None:
        self.port = free_port(0)
        super().__init__(settings, log_path, "ledger", "--web-port", str(self.port),
                         env={"CITYORDER_LEDGER_URL": ledger_url})

    def get(self, path: str) -> tuple[int, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                body = r.read()
                return r.status, json.loads(body) if path != "/metrics" else body.decode()
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        super().kill()
        self.log.close()
