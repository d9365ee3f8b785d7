"""The 督查考核 figures (ASSESSMENT.md, Assessment), from transitions: pure, so the ledger's
database and a replay's output (``cityorder report --alerts``) give the same numbers by the
same code.

People are ranked by these numbers, so every definition below follows the spec to the letter:
the period in the city's local calendar, the as-of instant T, the cohort by ``opened_at``, the
state of a case at T, rates rounded half up to four decimals, nearest-rank percentiles,
the ranking and its ties.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from rules.schedule import CityCalendar

PERIODS = ("day", "week", "month", "quarter", "year")
GROUPINGS = ("district", "responsible_unit", "grid_id", "category", "rule_id")
#: The transitions a figure reads. ``updated``, ``cleared`` and ``escalated`` change neither
#: status nor deadline, so a case's state at T is the same read from these alone; leaving
#: them out keeps a month's report small (most messages are ``updated``).
LIFECYCLE = ("opened", "acknowledged", "dispatched", "resolved", "closed", "rejected",
             "reopened", "deferred", "resumed", "overdue")
RESPONSES = frozenset({"acknowledged", "dispatched", "resolved", "rejected", "deferred"})
FIGURES = ("opened", "rejected", "due", "deferred", "closed", "closed_on_time", "overdue",
           "resolved", "reopened", "closure_rate", "on_time_rate", "rework_rate",
           "response_median_s", "response_p90_s", "resolution_median_s", "resolution_p90_s")
UNSPECIFIED = "未指定"   # how a null group key is shown to people


@dataclass(frozen=True, slots=True)
class Row:
    """One transition, as much of it as the figures read."""

    alert_id: str
    version: int
    transition: str
    status: str
    at: int
    opened_at: int
    deadline: int | None
    district: str | None
    responsible_unit: str | None
    grid_id: str | None
    category: str | None
    rule_id: str | None


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    start: int   # p0, UTC ms: the first instant of its first local date
    end: int     # p1
    first: date  # its first local date


@dataclass(slots=True)
class Case:
    """What the figures need of one case, as of T."""

    opened_at: int
    keys: dict[str, str | None]
    state: tuple[int, int] = (-1, -1)          # (at, version) of the latest message
    status: str = "open"
    deadline: int | None = None
    ever_deferred: bool = False
    overdue: bool = False
    first_resolved: int | None = None
    last_resolved: tuple[int, int] | None = None   # (version, at)
    reopened: bool = False
    first_response: int | None = None


# -- the period and T -------------------------------------------------------------------------

def period_containing(kind: str, d: date, cal: CityCalendar) -> Period:
    if kind not in PERIODS:
        raise ValueError(f"{kind!r} is not a period: use one of {', '.join(PERIODS)}")
    if kind == "day":
        first, nxt = d, d + timedelta(days=1)
    elif kind == "week":
        first = d - timedelta(days=d.weekday())
        nxt = first + timedelta(days=7)
    elif kind == "month":
        first = d.replace(day=1)
        nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    elif kind == "quarter":
        month = (d.month - 1) // 3 * 3 + 1
        first = date(d.year, month, 1)
        nxt = date(d.year + (month + 3 > 12), (month + 2) % 12 + 1, 1)
    else:
        first, nxt = date(d.year, 1, 1), date(d.year + 1, 1, 1)
    return Period(kind, _midnight(first, cal), _midnight(nxt, cal), first)


def previous(p: Period, cal: CityCalendar) -> Period:
    """The period just before ``p`` (环比)."""
    return period_containing(p.kind, p.first - timedelta(days=1), cal)


def _midnight(d: date, cal: CityCalendar) -> int:
    return cal.wall_instants(d, 0)[0]


def choose(kind: str, on: date | None, as_of: int | None, newest_at: int | None, now: int,
           cal: CityCalendar) -> tuple[Period, int]:
    """The period and T, as ASSESSMENT.md picks them from ``--date`` and ``--as-of``."""
    if on is not None:
        period = period_containing(kind, on, cal)
        t = as_of if as_of is not None else newest_at if newest_at is not None else period.end
        return period, t
    t = as_of if as_of is not None else newest_at if newest_at is not None else now
    return period_containing(kind, cal.local_day(t)[0], cal), t


# -- cases as of T ----------------------------------------------------------------------------

#: The ``cases`` columns :func:`case_of` reads, in its order.
FACT_COLUMNS = ("opened_at", *GROUPINGS, "updated_at", "version", "status", "deadline",
                "ever_deferred", "overdue", "first_resolved_at", "last_resolved_version",
                "last_resolved_at", "reopen_count", "first_response_at")


def case_of(row: Sequence[Any]) -> Case:
    """A case's facts from its ``cases`` row (:data:`FACT_COLUMNS`, built by
    ``ledger.case.fold`` from every transition), for a case none of whose transitions is after
    T: then its latest message is its state at T, and the row's firsts and lasts are those at
    T. Positional: a month's report reads a million of them."""
    (opened, district, unit, grid, category, rule, updated, version, status, deadline, deferred,
     overdue, first_resolved, last_version, last_resolved, reopens, first_response) = row
    return Case(opened, {"district": district, "responsible_unit": unit, "grid_id": grid,
                         "category": category, "rule_id": rule},
                (updated, version), status, deadline, bool(deferred), bool(overdue),
                first_resolved, None if last_resolved is None else (last_version, last_resolved),
                reopens > 0, first_response)


def cases_as_of(rows: Iterable[Row], t: int) -> dict[str, Case]:
    """Every case with an ``opened`` message at or before T, from the transitions at or
    before T (each ``(alert_id, version)`` once: the caller keeps the first copy)."""
    opened: dict[str, Row] = {}
    later: list[Row] = []
    for r in rows:
        if r.at > t:
            continue
        if r.transition == "opened":
            opened[r.alert_id] = r
        later.append(r)
    cases = {aid: Case(r.opened_at, {g: getattr(r, g) for g in GROUPINGS})
             for aid, r in opened.items()}
    for r in later:
        c = cases.get(r.alert_id)
        if c is None:
            continue
        if (r.at, r.version) > c.state:
            c.state, c.status, c.deadline = (r.at, r.version), r.status, r.deadline
        tr = r.transition
        if tr == "deferred":
            c.ever_deferred = True
        elif tr == "overdue":
            c.overdue = True
        elif tr == "reopened":
            c.reopened = True
        if tr == "resolved":
            c.first_resolved = r.at if c.first_resolved is None else min(c.first_resolved, r.at)
            if c.last_resolved is None or r.version > c.last_resolved[0]:
                c.last_resolved = (r.version, r.at)
        if tr in RESPONSES:
            c.first_response = r.at if c.first_response is None else min(c.first_response, r.at)
    return cases


# -- figures ----------------------------------------------------------------------------------

def rate(num: int, den: int) -> float | None:
    """A fraction rounded half up to 4 decimals; None when the denominator is 0."""
    if den == 0:
        return None
    exact = Fraction(num, den)
    q = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return float(q)


def nearest_rank(values: list[int], q: float, *, ordered: bool = False) -> int | None:
    """The ⌈q·n⌉-th smallest of ``values`` (already sorted when ``ordered``); None for none."""
    if not values:
        return None
    ranked = values if ordered else sorted(values)
    return ranked[max(1, math.ceil(q * len(ranked))) - 1]


def figures(cohort: list[Case], t: int, key: Any = None) -> dict[str, Any]:
    due = [c for c in cohort if c.status != "rejected"
           and ((c.deadline is not None and c.deadline <= t) or c.status == "closed")]
    deferred = [c for c in due if c.ever_deferred]
    closed = [c for c in due if not c.ever_deferred and c.status == "closed"]
    on_time = [c for c in closed if c.deadline is None
               or (c.last_resolved is not None and c.last_resolved[1] <= c.deadline)]
    resolved = [c for c in cohort if c.first_resolved is not None]
    reopened = [c for c in cohort if c.reopened]
    base = len(due) - len(deferred)
    responses = sorted((c.first_response - c.opened_at) // 1000 for c in cohort
                       if c.first_response is not None)
    resolutions = sorted((c.first_resolved - c.opened_at) // 1000 for c in cohort
                         if c.first_resolved is not None)
    return {
        "key": key,
        "opened": len(cohort),
        "rejected": sum(c.status == "rejected" for c in cohort),
        "due": len(due),
        "deferred": len(deferred),
        "closed": len(closed),
        "closed_on_time": len(on_time),
        "overdue": sum(c.overdue for c in cohort),
        "resolved": len(resolved),
        "reopened": len(reopened),
        "closure_rate": rate(len(closed), base),
        "on_time_rate": rate(len(on_time), base),
        "rework_rate": rate(len(reopened), len(resolved)),
        "response_median_s": nearest_rank(responses, 0.5, ordered=True),
        "response_p90_s": nearest_rank(responses, 0.9, ordered=True),
        "resolution_median_s": nearest_rank(resolutions, 0.5, ordered=True),
        "resolution_p90_s": nearest_rank(resolutions, 0.9, ordered=True),
    }


def _desc(value: float | None) -> tuple[int, float]:
    """Sort key: higher first, null last."""
    return (1, 0.0) if value is None else (0, -value)


def rank_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups ranked (ASSESSMENT.md): by on-time rate, then closure rate, descending, nulls
    last; then key by code point, null last. Groups with both rates null are not ranked and
    come last. The three lowest-ranked (all, when three or fewer) are marked ``bottom``."""
    def by_key(g: dict[str, Any]) -> tuple[int, str]:
        return (1, "") if g["key"] is None else (0, g["key"])

    rankable = [g for g in groups if g["on_time_rate"] is not None or g["closure_rate"] is not None]
    unranked = [g for g in groups if g not in rankable]
    rankable.sort(key=lambda g: (_desc(g["on_time_rate"]), _desc(g["closure_rate"]), by_key(g)))
    unranked.sort(key=by_key)
    out = []
    for i, g in enumerate(rankable, 1):
        out.append({"key": g["key"], "rank": i, "bottom": i > len(rankable) - 3,
                    **{k: g[k] for k in FIGURES}})
    out += [{"key": g["key"], "rank": None, "bottom": False, **{k: g[k] for k in FIGURES}}
            for g in unranked]
    return out


def report(cases: list[Case], period: Period, t: int, by: str | None,
           cal: CityCalendar) -> dict[str, Any]:
    """The report as ``cityorder report --format json`` writes it (keys in the spec's order),
    with 环比: the same figures for the period before, as of the same T. ``cases``: every case
    opened at or before T (its facts as of T) in the period or the one before."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"{by!r} is not a grouping: use one of {', '.join(GROUPINGS)}")
    out = _section(cases, period, t, by, cal)
    out["previous"] = _section(cases, previous(period, cal), t, by, cal)
    return out


def _section(cases: list[Case], period: Period, t: int, by: str | None,
             cal: CityCalendar) -> dict[str, Any]:
    cohort = [c for c in cases if period.start <= c.opened_at < period.end]
    out: dict[str, Any] = {
        "period": {"kind": period.kind, "start": cal.format(period.start),
                   "end": cal.format(period.end)},
        "as_of": cal.format(t),
        "by": by,
        "total": figures(cohort, t),
        "groups": [],
    }
    if by is not None:
        buckets: dict[str | None, list[Case]] = {}
        for c in cohort:
            buckets.setdefault(c.keys[by], []).append(c)
        out["groups"] = rank_groups([figures(cs, t, key) for key, cs in buckets.items()])
    return out


# -- what the HTML report draws besides the tables ---------------------------------------------

def days_of(period: Period, cal: CityCalendar) -> list[tuple[date, int, int]]:
    """Each local date of the period with its first instant and the next day's."""
    out = []
    d = period.first
    while (start := _midnight(d, cal)) < period.end:
        out.append((d, start, _midnight(d + timedelta(days=1), cal)))
        d += timedelta(days=1)
    return out


def daily_trend(rows: Iterable[Row], period: Period, t: int,
                cal: CityCalendar) -> list[tuple[date, int, int]]:
    """(local date, opened, closed) for each day of the period: ``opened`` and ``closed``
    transitions by their local date, over all cases, at or before T."""
    days: dict[date, list[int]] = {d: [0, 0] for d, _, _ in days_of(period, cal)}
    for r in rows:
        if r.at > t or r.transition not in ("opened", "closed") or not period.start <= r.at < period.end:
            continue
        day = days.get(cal.local_day(r.at)[0])
        if day is not None:
            day[r.transition == "closed"] += 1
    return [(d, o, c) for d, (o, c) in days.items()]


def top_categories(cases: Iterable[Case], period: Period, n: int = 10) -> list[tuple[str, int]]:
    """高发问题: the categories with the most cases opened in the period."""
    counts: dict[str, int] = {}
    for c in cases:
        if period.start <= c.opened_at < period.end:
            key = c.keys["category"] or UNSPECIFIED
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
