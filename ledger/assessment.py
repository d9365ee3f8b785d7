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
from collections.abc import Iterable
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

#: One case as the figures read it, as of T: (opened_at, group key, category, status,
#: deadline, ever deferred, overdue, first resolved at, last resolve's at, reopen count,
#: first response at). A plain tuple in this order, because a month's report reads a million
#: of them straight from the database cursor (``rows.from_store`` selects exactly these).
Facts = tuple[int, str | None, str | None, str, int | None, bool, bool, int | None, int | None,
              int, int | None]


def facts_of(c: Case, by: str | None) -> Facts:
    """A case folded from its transitions (``cases_as_of``), as :data:`Facts`."""
    return (c.opened_at, None if by is None else c.keys[by], c.keys["category"], c.status,
            c.deadline, c.ever_deferred, c.overdue, c.first_resolved,
            None if c.last_resolved is None else c.last_resolved[1], int(c.reopened),
            c.first_response)


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


class Tally:
    """The figures' counts for one group of cases, added one case at a time: one pass over a
    million cases instead of a list comprehension per figure."""

    COUNTS = ("opened", "rejected", "due", "deferred", "closed", "on_time", "overdue",
              "resolved", "reopened")
    __slots__ = (*COUNTS, "responses", "resolutions")

    def __init__(self) -> None:
        self.opened = self.rejected = self.due = self.deferred = self.closed = 0
        self.on_time = self.overdue = self.resolved = self.reopened = 0
        self.responses: list[int] = []
        self.resolutions: list[int] = []

    def add(self, f: Facts, t: int) -> None:
        (opened_at, _, _, status, deadline, deferred, overdue, first_resolved, last_resolved,
         reopens, first_response) = f
        self.opened += 1
        if status == "rejected":
            self.rejected += 1
        # Due by T: closed, or past its deadline; never a rejected case.
        elif status == "closed" or (deadline is not None and deadline <= t):
            self.due += 1
            if deferred:
                self.deferred += 1
            elif status == "closed":
                self.closed += 1
                if deadline is None or (last_resolved is not None and last_resolved <= deadline):
                    self.on_time += 1
        if overdue:
            self.overdue += 1
        if reopens:
            self.reopened += 1
        if first_resolved is not None:
            self.resolved += 1
            self.resolutions.append((first_resolved - opened_at) // 1000)
        if first_response is not None:
            self.responses.append((first_response - opened_at) // 1000)

    def merge(self, other: Tally) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.responses += other.responses
        self.resolutions += other.resolutions

    def figures(self, key: Any = None) -> dict[str, Any]:
        base = self.due - self.deferred
        responses, resolutions = sorted(self.responses), sorted(self.resolutions)
        return {
            "key": key,
            "opened": self.opened,
            "rejected": self.rejected,
            "due": self.due,
            "deferred": self.deferred,
            "closed": self.closed,
            "closed_on_time": self.on_time,
            "overdue": self.overdue,
            "resolved": self.resolved,
            "reopened": self.reopened,
            "closure_rate": rate(self.closed, base),
            "on_time_rate": rate(self.on_time, base),
            "rework_rate": rate(self.reopened, self.resolved),
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


def report(facts: Iterable[Facts], period: Period, t: int, by: str | None,
           cal: CityCalendar) -> dict[str, Any]:
    """The report as ``cityorder report --format json`` writes it (keys in the spec's order),
    with 环比: the same figures for the period before, as of the same T. ``facts``: every case
    opened at or before T in the period or the one before, with ``by``'s value as its key."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"{by!r} is not a grouping: use one of {', '.join(GROUPINGS)}")
    before = previous(period, cal)
    # One pass, one tally per (period, group); a total is the merge of its groups.
    now: dict[str | None, Tally] = {}
    then: dict[str | None, Tally] = {}
    for f in facts:
        opened_at, key = f[0], f[1] if by is not None else None
        if period.start <= opened_at < period.end:
            groups = now
        elif before.start <= opened_at < before.end:
            groups = then
        else:
            continue
        tally = groups.get(key)
        if tally is None:
            tally = groups[key] = Tally()
        tally.add(f, t)
    out = _section(now, period, t, by, cal)
    out["previous"] = _section(then, before, t, by, cal)
    return out


def _section(groups: dict[str | None, Tally], period: Period, t: int, by: str | None,
             cal: CityCalendar) -> dict[str, Any]:
    total = Tally()
    for tally in groups.values():
        total.merge(tally)
    return {
        "period": {"kind": period.kind, "start": cal.format(period.start),
                   "end": cal.format(period.end)},
        "as_of": cal.format(t),
        "by": by,
        "total": total.figures(),
        "groups": [] if by is None else rank_groups(
            [tally.figures(key) for key, tally in groups.items()]),
    }


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


def top_categories(facts: Iterable[Facts], period: Period, n: int = 10
                   ) -> list[tuple[str, int]]:
    """高发问题: the categories with the most cases opened in the period."""
    counts: dict[str, int] = {}
    for f in facts:
        if period.start <= f[0] < period.end:
            key = f[2] or UNSPECIFIED
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
