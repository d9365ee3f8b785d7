"""The ledger's benchmark (issue 14): transitions applied per second on SQLite and PostgreSQL,
and a month's report over 1,000,000 cases.

    python -m bench.ledger_bench                       # both parts, both databases
    python -m bench.ledger_bench --transitions 50000 --cases 100000 --skip-postgres

1. **Apply**: the demo day's alert messages (a replay of `rules.demo`, ~2,300 transitions of
   ~40 cases, evidence included), copied under new alert ids until there are
   ``--transitions``, applied as the ledger's consumer does: batches of 2,000, each one
   database transaction (parse and validate, look up known versions, insert, fold the cases).
   Target: >= 5,000 transitions/s.
2. **Report**: ``--cases`` cases opened over one month in 4 街道 and 50 grids, with the lifecycle
   transitions a report reads (opened, acknowledged, resolved, closed; some overdue, deferred,
   rejected, reopened), bulk-loaded into ``transitions``; then ``cityorder report --period month
   --by district``'s path: the rows from the database and the figures. Target: <= 10 s.

PostgreSQL is a throwaway server started here (Debian's package, as the tests do).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ledger.assessment import report
from ledger.case import fold
from ledger.record import Transition
from ledger.rows import from_store
from ledger.schema import cases, transitions
from ledger.service import BATCH
from ledger.store import LedgerStore
from rules.schedule import CityCalendar

DISTRICTS = ("东溪街道", "简城街道", "射洪坝街道", "十里坝街道")


def demo_messages() -> list[dict[str, Any]]:
    from rules.demo.city import GEOJSON_PATH
    from rules.demo.dispatch import generate_with_feedback
    from rules.pack import DEFAULT_PACK
    from tests.e2e.workers import replay_of

    alerts, _ = replay_of(generate_with_feedback(GEOJSON_PATH, DEFAULT_PACK, date(2026, 11, 20), 7),
                          GEOJSON_PATH, [DEFAULT_PACK])
    return alerts


def copies(messages: list[dict[str, Any]], n: int) -> list[bytes]:
    out: list[bytes] = []
    k = 0
    while len(out) < n:
        for m in messages:
            aid = m["alert_id"]
            out.append(orjson.dumps({**m, "alert_id": f"{aid[:-20]}{k:06x}{aid[-14:]}"}))
            if len(out) == n:
                break
        k += 1
    return out


def bench_apply(url: str, records: list[bytes]) -> float:
    store = LedgerStore(url)
    try:
        started = time.perf_counter()
        for i in range(0, len(records), BATCH):
            store.apply([(r, 0, i + j) for j, r in enumerate(records[i:i + BATCH])])
        elapsed = time.perf_counter() - started
        assert store.counts()["transitions"] == len(records)
    finally:
        store.close()
    return len(records) / elapsed


def load_cases(url: str, n: int, seed: int) -> int:
    """Bulk-load ``n`` cases opened in November 2026 (+08:00): their lifecycle transitions, and
    their ``cases`` rows folded from them by the ledger's own ``fold``."""
    rng = random.Random(seed)
    store = LedgerStore(url)
    start = 1_793_462_400_000   # 2026-11-01T00:00+08:00
    month_ms = 30 * 86_400_000
    rows: list[dict[str, Any]] = []
    case_rows: list[dict[str, Any]] = []
    total = 0

    def flush() -> None:
        nonlocal rows, case_rows, total
        with store.engine.begin() as conn:
            conn.execute(transitions.insert(), rows)
            conn.execute(cases.insert(), case_rows)
        total += len(rows)
        rows, case_rows = [], []

    for i in range(n):
        aid = f"a-JY-{i % 50:04d}-{i:020x}"
        opened = start + rng.randrange(month_ms)
        deadline = opened + 2 * 3_600_000
        district = DISTRICTS[i % 4]
        category = rng.choice(("street_vendor", "garbage_pile", "parked_car"))
        steps = [("opened", "open", opened)]
        if rng.random() < 0.05:
            steps.append(("rejected", "rejected", opened + 600_000))
        else:
            steps.append(("acknowledged", "acknowledged", opened + rng.randrange(60_000, 1_800_000)))
            resolved = opened + rng.randrange(600_000, 4 * 3_600_000)
            if resolved > deadline:
                steps.append(("overdue", "acknowledged", deadline))
                steps.sort(key=lambda s: s[2])
            steps.append(("resolved", "resolved", resolved))
            steps.append(("closed", "closed", resolved + 600_000))
        case: dict[str, Any] | None = None
        for v, (tr, status, at) in enumerate(steps, 1):
            t = Transition(aid, v, tr, status, 1, "r", category, None, "minor", f"JY-{i % 50:04d}",
                           district, None, None, 30.0, 104.0, False, None, None, opened, deadline,
                           None, at, "0" * 64, {})
            case = fold(case, t)
            rows.append({"alert_id": aid, "version": v, "transition": tr, "status": status,
                         "level": 1, "at": at, "opened_at": opened, "deadline": deadline,
                         "rule_id": "r", "category": category, "grid_id": t.grid_id,
                         "district": district, "responsible_unit": None, "actor": None,
                         "content_hash": t.content_hash, "source_partition": None,
                         "source_offset": None, "message": {}})
        assert case is not None
        case_rows.append(case)
        if len(rows) >= 20_000:
            flush()
    if rows:
        flush()
    store.close()
    return total


def bench_report(url: str, repeat: int) -> tuple[float, dict[str, Any]]:
    """``cityorder report --period month --by district`` on the database, ``repeat`` times, as
    of the newest transition (so every case is read from ``cases``); then once as of a time
    that sends the last three days' cases through their transitions. Returns the median."""
    cal = CityCalendar()
    store = LedgerStore(url)
    times = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            source = from_store(store, "month", date(2026, 11, 15), None, 0, cal, "district")
            fetched = time.perf_counter() - started
            rep = report(source.facts, source.period, source.t, "district", cal)
            times.append(time.perf_counter() - started)
            print(f"    {len(source.facts):,} cases read in {fetched:.2f} s, figures in "
                  f"{times[-1] - fetched:.2f} s: {times[-1]:.2f} s", flush=True)
        earlier = time.perf_counter()
        as_of = 1_793_462_400_000 + 27 * 86_400_000    # 11-28: the last 3 days' cases are moving
        source = from_store(store, "month", date(2026, 11, 15), as_of, 0, cal, "district")
        report(source.facts, source.period, source.t, "district", cal)
        print(f"    as of 11-28 (a tenth of the cases folded again): "
              f"{time.perf_counter() - earlier:.1f} s", flush=True)
    finally:
        store.close()
    return statistics.median(times), rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ledger_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--transitions", type=int, default=100_000)
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="report runs per database (median)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="cityorder-ledger-bench-"))
    pg = None
    targets: list[tuple[str, str]] = [("SQLite", str(tmp / "apply.sqlite"))]
    if not args.skip_postgres:
        from tests.pg import Postgres

        pg = Postgres().start()
        targets.append(("PostgreSQL", pg.url))
    verdicts = []
    try:
        print(f"preparing {args.transitions:,} transitions from the demo day ...", flush=True)
        records = copies(demo_messages(), args.transitions)
        for name, url in targets:
            rate = bench_apply(url, records)
            verdicts.append((f"apply, {name}", f"{rate:,.0f} transitions/s", ">= 5,000/s", rate >= 5000))
            print(f"  apply on {name}: {rate:,.0f} transitions/s", flush=True)
        if not args.skip_report:
            report_targets = [("SQLite", str(tmp / "report.sqlite"))]
            if pg is not None:
                report_targets.append(("PostgreSQL", pg.url))
            for name, url in report_targets:
                if name == "PostgreSQL":
                    from sqlalchemy import create_engine, text

                    from ledger.store import database_url
                    engine = create_engine(database_url(url))
                    with engine.begin() as conn:
                        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
                    engine.dispose()
                started = time.perf_counter()
                n = load_cases(url, args.cases, args.seed)
                print(f"  loaded {args.cases:,} cases ({n:,} transitions) into {name} in "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
                elapsed, rep = bench_report(url, args.repeat)
                verdicts.append((f"month report, {args.cases:,} cases, {name} (median of "
                                 f"{args.repeat})", f"{elapsed:.1f} s",
                                 "<= 10 s", elapsed <= 10))
                print(f"  report on {name}: {elapsed:.1f} s; opened {rep['total']['opened']:,}, "
                      f"on-time rate {rep['total']['on_time_rate']}", flush=True)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)   # the SQLite files of a run take ~2 GB
    print("\n| figure | measured | target | verdict |\n| --- | --- | --- | --- |")
    for name, got, target, ok in verdicts:
        print(f"| {name} | {got} | {target} | {'PASS' if ok else 'SHORT'} |")
    return 0 if all(ok for *_, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
