"""Where a report's cases come from: the ledger's database, or a replay's output file.

Both give the same :class:`ledger.assessment.Case` facts, and the figures are computed from
them by one code. A file is read whole: each case's transitions up to T are folded
(``assessment.cases_as_of``). The database already holds each case folded from all its
transitions (``ledger.case.fold`` keeps the ``cases`` table), which is each case's state at T
whenever none of its transitions is later than T: those are read from ``cases`` (one row a
case, which is what makes a month of a million cases fast), and only the others from their
transitions up to T. Both keep the first copy of an ``(alert_id, version)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, func, null, select

from ledger.assessment import (
    GROUPINGS,
    LIFECYCLE,
    Facts,
    Period,
    Row,
    cases_as_of,
    choose,
    daily_trend,
    days_of,
    facts_of,
    previous,
)
from ledger.record import Transition, Unreadable, parse
from ledger.schema import cases, transitions
from ledger.store import CHUNK, LedgerStore
from rules.schedule import CityCalendar


@dataclass(frozen=True)
class Source:
    """What a report is computed from: the facts (as of T) of the cases opened in the period
    or the one before, keyed by ``by``; the period and T; and the daily opened/closed counts
    (for the HTML report)."""

    facts: list[Facts]
    by: str | None
    period: Period
    t: int
    trend: list[tuple[date, int, int]]


def row_of(t: Transition) -> Row:
    return Row(t.alert_id, t.version, t.transition, t.status, t.at, t.opened_at, t.deadline,
               t.district, t.responsible_unit, t.grid_id, t.category, t.rule_id)


def from_lines(lines: Iterable[bytes], kind: str, on: date | None, as_of: int | None, now: int,
               cal: CityCalendar, by: str | None) -> tuple[Source, list[tuple[int, Unreadable]]]:
    """A JSONL file of alert messages, and its unreadable lines (line number, why)."""
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
    period, t_ = choose(kind, on, as_of, newest, now, cal)
    start = previous(period, cal).start
    found = [facts_of(c, by) for c in cases_as_of(rows, t_).values()
             if start <= c.opened_at < period.end]
    return Source(found, by, period, t_, daily_trend(rows, period, t_, cal)), bad


def from_store(store: LedgerStore, kind: str, on: date | None, as_of: int | None, now: int,
               cal: CityCalendar, by: str | None, *, trend: bool = False) -> Source:
    """The ledger's cases for a report (see the module docstring)."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"{by!r} is not a grouping: use one of {', '.join(GROUPINGS)}")
    c, tr = cases.c, transitions.c
    with store.engine.connect() as conn:
        newest = conn.execute(select(func.max(tr.at))).scalar_one()
        period, t = choose(kind, on, as_of, newest, now, cal)
        in_range = and_(c.opened_at >= previous(period, cal).start, c.opened_at < period.end)
        # Exactly assessment.Facts, so the cursor's tuples go to the figures as they are.
        settled = select(
            c.opened_at, null() if by is None else c[by], c.category, c.status, c.deadline,
            c.ever_deferred, c.overdue, c.first_resolved_at, c.last_resolved_at, c.reopen_count,
            c.first_response_at,
        ).where(in_range, c.updated_at <= t, c.opened_seen.is_(True))
        # The driver's own cursor: SQLAlchemy's result rows cost twice the query for a million.
        compiled = settled.compile(conn, compile_kwargs={"render_postcompile": True})
        cursor = conn.connection.cursor()
        try:
            cursor.execute(str(compiled), _params(compiled, conn.dialect.paramstyle))
            found: list[Facts] = cursor.fetchall()
        finally:
            cursor.close()
        # Cases with a transition after T: folded again from their transitions up to T, asked
        # for by id (the primary key) a chunk at a time; a subquery made SQLite scan them all.
        # Only the id is in the WHERE clause: given `at` or `transition` too, SQLite (which
        # has no statistics unless ANALYZEd) chose the (transition, at) index and scanned
        # millions of rows per chunk. The rest is filtered here.
        moving = list(conn.execute(select(c.alert_id).where(in_range, c.updated_at > t)).scalars())
        later: list[Row] = []
        for i in range(0, len(moving), CHUNK):
            later += [Row(*r) for r in conn.execute(
                select(tr.alert_id, tr.version, tr.transition, tr.status, tr.at, tr.opened_at,
                       tr.deadline, tr.district, tr.responsible_unit, tr.grid_id, tr.category,
                       tr.rule_id)
                .where(tr.alert_id.in_(moving[i:i + CHUNK])))
                if r.at <= t and r.transition in LIFECYCLE]
        found += (facts_of(case, by) for case in cases_as_of(later, t).values())
        days = []
        if trend:
            for d, lo, hi in days_of(period, cal):
                counts = dict(conn.execute(
                    select(tr.transition, func.count())
                    .where(tr.transition.in_(("opened", "closed")), tr.at >= lo, tr.at < hi,
                           tr.at <= t)
                    .group_by(tr.transition)).all())
                days.append((d, counts.get("opened", 0), counts.get("closed", 0)))
    return Source(found, by, period, t, days)


def _params(compiled: Any, paramstyle: str) -> Any:
    """The compiled statement's parameters in the order or by the names its driver expects."""
    if paramstyle in ("qmark", "numeric", "format"):
        return tuple(compiled.params[name] for name in compiled.positiontup)
    return compiled.params
