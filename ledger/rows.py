"""Where a report's transitions come from: the ledger's database, or a replay's output file.

Both end in the same :class:`ledger.assessment.Row` list and the same figures; both keep the
first copy of an ``(alert_id, version)`` (the ledger by construction, the file reader here).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import func, select

from ledger.assessment import LIFECYCLE, Row, choose, previous
from ledger.record import Transition, Unreadable, parse
from ledger.schema import transitions
from ledger.store import LedgerStore
from rules.schedule import CityCalendar


def row_of(t: Transition) -> Row:
    return Row(t.alert_id, t.version, t.transition, t.status, t.at, t.opened_at, t.deadline,
               t.district, t.responsible_unit, t.grid_id, t.category, t.rule_id)


def rows_from_lines(lines: Iterable[bytes]
                    ) -> tuple[list[Row], int | None, list[tuple[int, Unreadable]]]:
    """Rows of a JSONL file of alert messages, the newest ``at`` of them all, and the
    unreadable lines (line number, why)."""
    rows: list[Row] = []
    bad: list[tuple[int, Unreadable]] = []
    seen: set[tuple[str, int]] = set()
    newest: int | None = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        t = parse(line.rstrip(b"\r\n"))
        if isinstance(t, Unreadable):
            bad.append((n, t))
            continue
        if (t.alert_id, t.version) in seen:
            continue
        seen.add((t.alert_id, t.version))
        newest = t.at if newest is None else max(newest, t.at)
        if t.transition in LIFECYCLE:
            rows.append(row_of(t))
    return rows, newest, bad


def rows_from_store(store: LedgerStore, kind: str, on: date | None, as_of: int | None, now: int,
                    cal: CityCalendar) -> tuple[list[Row], int | None]:
    """The rows a report needs from the database, and the newest ``at`` of all: only the
    lifecycle transitions at or before T of cases opened in the period or the one before it
    (环比); the figures would read no other."""
    c = transitions.c
    with store.engine.connect() as conn:
        newest = conn.execute(select(func.max(c.at))).scalar_one()
        period, t = choose(kind, on, as_of, newest, now, cal)
        start = previous(period, cal).start
        stmt = (select(c.alert_id, c.version, c.transition, c.status, c.at, c.opened_at,
                       c.deadline, c.district, c.responsible_unit, c.grid_id, c.category, c.rule_id)
                .where(c.opened_at >= start, c.opened_at < period.end, c.at <= t,
                       c.transition.in_(LIFECYCLE)))
        rows = [Row(*r) for r in conn.execute(stmt)]
    return rows, newest
