"""``cityorder ledger`` end to end: a real process reading ``city.alerts`` on the embedded broker
into SQLite and into a real PostgreSQL, SIGKILLed at random moments, and its database taken
away while it runs. Whatever happens, the ledger ends with every transition exactly once."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from ledger.case import fold
from ledger.record import Transition, parse
from ledger.store import CaseQuery, LedgerStore
from streams.dev import free_port
from streams.settings import Settings
from streams.topics import default_topics, ensure_topics
from tests.demo_day import day_replay
from tests.e2e.workers import Cli, LedgerProc
from tests.pg import Postgres
from tests.promtool import check_metrics

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def day_alerts() -> list[dict[str, Any]]:
    """The demo day's alert messages, as a worker or a replay writes them (~2,300)."""
    alerts, _ = day_replay()
    return alerts


def produce(settings: Settings, messages: list[dict[str, Any]]) -> None:
    async def run() -> None:
        await ensure_topics(settings, default_topics(settings))
        producer = AIOKafkaProducer(**settings.producer_kwargs(), linger_ms=5)
        await producer.start()
        try:
            for m in messages:
                await producer.send(settings.topic("city.alerts"), orjson.dumps(m),
                                    key=m["alert_id"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


def expected_cases(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for m in messages:
        t = parse(orjson.dumps(m))
        assert isinstance(t, Transition)
        rows[t.alert_id] = fold(rows.get(t.alert_id), t)
    return rows


def wait_for(store: LedgerStore, n: int, proc: LedgerProc, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.counts()["transitions"] >= n:
            return
        if proc.proc.poll() is not None:
            raise AssertionError(f"ledger exited with {proc.proc.returncode}:\n{proc.tail()}")
        time.sleep(0.3)
    raise AssertionError(f"{store.counts()} after {timeout} s, want {n} transitions:\n{proc.tail()}")


def assert_exact(store: LedgerStore, messages: list[dict[str, Any]]) -> None:
    assert store.counts() == {"cases": len({m["alert_id"] for m in messages}),
                              "transitions": len(messages), "conflicts": 0, "unreadable": 0}
    want = expected_cases(messages)
    got = {c["alert_id"]: c for c in store.find(CaseQuery(limit=1_000_000))}
    assert got.keys() == want.keys()
    for aid, row in want.items():
        assert {k: got[aid][k] for k in row} == row, aid
    by_key = {(m["alert_id"], m["version"]): m for m in messages}
    for aid in list(want)[:50]:
        for t in store.history(aid):
            assert t["message"] == by_key[(aid, t["version"])]


def test_killed_at_random_moments_the_ledger_ends_with_every_transition_once(
        settings: Settings, tmp_path: Path, day_alerts: list[dict[str, Any]]) -> None:
    db = str(tmp_path / "ledger.sqlite")
    store = LedgerStore(db)
    rng = random.Random(11)
    chunks = [day_alerts[i:i + 400] for i in range(0, len(day_alerts), 400)]
    proc = LedgerProc(settings, db, tmp_path / "ledger.log")
    try:
        for chunk in chunks:
            produce(settings, chunk)
            time.sleep(rng.uniform(0.0, 1.5))
            proc.kill()          # at a random moment: reading, applying, committing or idle
            proc = LedgerProc(settings, db, tmp_path / "ledger.log")
        wait_for(store, len(day_alerts), proc)
        time.sleep(2)            # anything extra (a duplicate) would show now
        assert_exact(store, day_alerts)
        status, body = proc.get("/readyz") or (0, None)
        assert status == 200 and body["ready"] and body["database"]
        status, metrics = proc.get("/metrics") or (0, "")
        assert 'cityorder_ledger_records_total{outcome="inserted"}' in metrics
        assert "cityorder_ledger_lag_records" in metrics
        check_metrics(metrics)
    finally:
        proc.stop()
        store.close()


def test_a_database_that_goes_away_makes_it_unready_then_it_catches_up(
        settings: Settings, tmp_path: Path, day_alerts: list[dict[str, Any]]) -> None:
    pg = Postgres().start()
    store = LedgerStore(pg.url)
    proc = LedgerProc(settings, pg.url, tmp_path / "ledger.log")
    half = len(day_alerts) // 2
    try:
        produce(settings, day_alerts[:half])
        wait_for(store, half, proc)
        store.close()
        pg.halt()
        produce(settings, day_alerts[half:])
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            state = proc.get("/readyz")
            if state is not None and state[0] == 503:
                break
            time.sleep(0.3)
        assert state is not None and state[0] == 503 and state[1]["database"] is False, state
        pg.launch()
        store = LedgerStore(pg.url)
        wait_for(store, len(day_alerts), proc)
        time.sleep(2)
        assert_exact(store, day_alerts)
        status, body = proc.get("/readyz") or (0, None)
        assert status == 200 and body["ready"] and body["database"]
    finally:
        proc.stop()
        store.close()
        pg.stop()


def test_a_ledger_or_console_on_another_database_stops_and_says_why(
        settings: Settings, tmp_path: Path, day_alerts: list[dict[str, Any]]) -> None:
    """The ledger's group has read city.alerts into one database; a ledger, a console or the
    Open311 adapter given another one, a mistyped path, must not go on from the group's
    offsets: every case before them would be missing from the board and the scorecards, and
    every citizen's request would stay "received"."""
    right = str(tmp_path / "ledger.sqlite")
    store = LedgerStore(right)
    proc = LedgerProc(settings, right, tmp_path / "ledger.log")
    try:
        produce(settings, day_alerts[:300])
        wait_for(store, 300, proc)
    finally:
        proc.stop()                  # SIGTERM: its offsets are committed
    wrong = tmp_path / "ledgr.sqlite"
    for argv in (["ledger", "--web-port", str(free_port(0))],
                 ["console", "--port", str(free_port(0))],
                 ["adapt", "open311", "--port", str(free_port(0)), "--web-port", str(free_port(0))]):
        cli = Cli(settings, tmp_path / f"{argv[0]}-wrong.log", *argv,
                  env={"CITYORDER_LEDGER_URL": str(wrong)})
        try:
            code = cli.proc.wait(90)
        finally:
            cli.stop()
        said = cli.log_path.read_text()
        assert code == 1, said
        assert f"the ledger database {wrong} holds no record read from" in said, said
        assert "Traceback" not in said, said
    assert LedgerStore(wrong).counts()["transitions"] == 0
    # the right database goes on where it was
    proc = LedgerProc(settings, right, tmp_path / "ledger.log")
    try:
        produce(settings, day_alerts[300:400])
        wait_for(store, 400, proc)
    finally:
        proc.stop()
        store.close()
