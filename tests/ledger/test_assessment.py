"""The 督查考核 figures on a hand-built alert log, every number worked out by hand below, and the
same report from a replay's output file (``--alerts``), SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from ledger.assessment import Tally, nearest_rank, rank_groups, rate, report
from ledger.rows import Source, from_lines, from_store
from ledger.store import LedgerStore
from rules.schedule import CityCalendar
from tests.pg import Postgres

CAL = CityCalendar(ZoneInfo("Asia/Shanghai"))
A, B = "甲街道", "乙街道"


def ts(text: str) -> str:
    """'11-03 10:00' (2026, +08:00), or with seconds and milliseconds."""
    day, clock = text.split(" ")
    year = "2026"
    if clock.count(":") == 1:
        clock += ":00.000"
    return f"{year}-{day}T{clock}+08:00"


def msg(n: int, version: int, transition: str, status: str, at: str, opened: str,
        deadline: str | None, district: str | None, **extra: Any) -> dict[str, Any]:
    aid = f"a-G-{n}-{n:020x}"
    return {
        "alert_id": aid, "version": version, "transition": transition, "status": status,
        "level": 1, "notify": [], "rule_id": f"rule.{n % 2}", "category": "garbage_pile",
        "case_code": None, "description": None, "severity": "minor", "grid_id": f"G-{n}",
        "district": district, "responsible_unit": None, "zones": [],
        "location": {"lat": 30.0, "lon": 104.0}, "address": None, "first_seen": ts(opened),
        "last_seen": ts(opened), "opened_at": ts(opened),
        "deadline": ts(deadline) if deadline else None, "occurrences": 1, "hotspot": False,
        "assignee": None, "deferred_until": None, "actor": None, "note": None, "photos": None,
        "evidence": [{"event_id": f"e{n}", "source": "report", "kind": "garbage_pile",
                      "observed_at": ts(opened), "reporter_id": None, "address": None,
                      "photos": None}],
        "at": ts(at), "emitted_at": ts(at), **extra}


def case(n: int, district: str | None, opened: str, deadline: str | None,
         *steps: tuple[str, str, str] | tuple[str, str, str, str | None]) -> list[dict[str, Any]]:
    """A case's messages: ``opened`` then each (transition, status, at[, deadline shown])."""
    out = [msg(n, 1, "opened", "open", opened, opened, deadline, district)]
    for i, step in enumerate(steps, 2):
        shown = step[3] if len(step) == 4 else deadline   # type: ignore[misc]
        out.append(msg(n, i, step[0], step[1], step[2], opened, shown, district))
    return out


LOG = [
    # 甲街道
    *case(1, A, "11-03 10:00", "11-03 12:00", ("acknowledged", "acknowledged", "11-03 10:10"),
          ("resolved", "resolved", "11-03 11:00"), ("closed", "closed", "11-03 11:30")),
    *case(2, A, "11-05 10:00", "11-05 12:00", ("overdue", "open", "11-05 12:00"),
          ("resolved", "resolved", "11-05 13:00"), ("closed", "closed", "11-05 13:30")),
    *case(3, A, "11-10 09:00", "11-10 11:00", ("rejected", "rejected", "11-10 09:30")),
    *case(4, A, "11-12 09:00", "11-12 11:00",
          ("deferred", "deferred", "11-12 09:10", "11-13 10:50"),
          ("resumed", "open", "11-13 09:00", "11-13 10:50"),
          ("resolved", "resolved", "11-13 10:00", "11-13 10:50"),
          ("closed", "closed", "11-13 10:30", "11-13 10:50")),
    *case(5, A, "11-20 10:00", "11-20 12:00", ("resolved", "resolved", "11-20 11:00"),
          ("closed", "closed", "11-20 11:10"), ("reopened", "open", "11-21 09:00"),
          ("resolved", "resolved", "11-21 10:00"), ("closed", "closed", "11-21 10:30")),
    # 乙街道
    *case(6, B, "11-25 10:00", None, ("acknowledged", "acknowledged", "11-25 10:05")),
    *case(7, B, "11-28 10:00", "12-02 10:00", ("updated", "open", "11-28 10:01"),
          ("resolved", "resolved", "12-01 10:00")),                  # after T: not read
    *case(8, B, "11-29 08:00", "11-29 10:00", ("overdue", "open", "11-29 10:00")),
    *case(9, B, "11-30 23:59:59.999", "12-01 01:59:59.999"),          # the period's last instant
    # no district
    *case(10, None, "11-15 10:00", "11-15 12:00", ("resolved", "resolved", "11-15 11:30"),
          ("closed", "closed", "11-15 11:40")),
    # the period before (环比)
    *case(11, A, "10-31 23:59:59.999", "11-01 01:59:59.999",
          ("resolved", "resolved", "11-01 01:00"), ("closed", "closed", "11-01 01:30")),
    # the period after, opened before T
    *case(12, B, "12-01 00:00", "12-01 02:00"),
]
AS_OF = ts("12-01 09:00")
#: A second copy of case 8's opening with other content: the first copy counts.
CONFLICT = {**LOG[[m["alert_id"] for m in LOG].index("a-G-8-" + f"{8:020x}")], "district": A}

TOTAL = {
    "key": None, "opened": 10, "rejected": 1, "due": 7, "deferred": 1, "closed": 4,
    "closed_on_time": 2, "overdue": 2, "resolved": 5, "reopened": 1,
    "closure_rate": 0.6667, "on_time_rate": 0.3333, "rework_rate": 0.2,
    # responses 300, 600, 600, 1800, 3600, 5400, 10800: ranks 4 and 7
    "response_median_s": 1800, "response_p90_s": 10800,
    # resolutions 3600, 3600, 5400, 10800, 90000: ranks 3 and 5
    "resolution_median_s": 5400, "resolution_p90_s": 90000,
}
GROUPS = [
    {"key": None, "rank": 1, "bottom": True, "opened": 1, "rejected": 0, "due": 1, "deferred": 0,
     "closed": 1, "closed_on_time": 1, "overdue": 0, "resolved": 1, "reopened": 0,
     "closure_rate": 1.0, "on_time_rate": 1.0, "rework_rate": 0.0, "response_median_s": 5400,
     "response_p90_s": 5400, "resolution_median_s": 5400, "resolution_p90_s": 5400},
    {"key": A, "rank": 2, "bottom": True, "opened": 5, "rejected": 1, "due": 4, "deferred": 1,
     "closed": 3, "closed_on_time": 1, "overdue": 1, "resolved": 4, "reopened": 1,
     "closure_rate": 1.0, "on_time_rate": 0.3333, "rework_rate": 0.25, "response_median_s": 1800,
     "response_p90_s": 10800, "resolution_median_s": 3600, "resolution_p90_s": 90000},
    {"key": B, "rank": 3, "bottom": True, "opened": 4, "rejected": 0, "due": 2, "deferred": 0,
     "closed": 0, "closed_on_time": 0, "overdue": 1, "resolved": 0, "reopened": 0,
     "closure_rate": 0.0, "on_time_rate": 0.0, "rework_rate": None, "response_median_s": 300,
     "response_p90_s": 300, "resolution_median_s": None, "resolution_p90_s": None},
]
PREVIOUS_TOTAL = {
    "key": None, "opened": 1, "rejected": 0, "due": 1, "deferred": 0, "closed": 1,
    "closed_on_time": 1, "overdue": 0, "resolved": 1, "reopened": 0, "closure_rate": 1.0,
    "on_time_rate": 1.0, "rework_rate": 0.0,
    "response_median_s": 3600, "response_p90_s": 3600,   # 3600.001 s: milliseconds truncated
    "resolution_median_s": 3600, "resolution_p90_s": 3600,
}


def check(got: dict[str, Any]) -> None:
    assert list(got) == ["period", "as_of", "by", "total", "groups", "previous"]
    assert got["period"] == {"kind": "month", "start": "2026-11-01T00:00:00.000+08:00",
                             "end": "2026-12-01T00:00:00.000+08:00"}
    assert got["as_of"] == AS_OF and got["by"] == "district"
    assert got["total"] == TOTAL
    assert list(got["total"]) == list(TOTAL)
    assert got["groups"] == GROUPS
    prev = got["previous"]
    assert prev["period"]["start"] == "2026-10-01T00:00:00.000+08:00"
    assert prev["total"] == PREVIOUS_TOTAL and "previous" not in prev
    assert [g["key"] for g in prev["groups"]] == [A]


def lines() -> list[bytes]:
    return [orjson.dumps(m) for m in LOG] + [orjson.dumps(CONFLICT)]


def by_district(source: Source) -> dict[str, Any]:
    return report(source.facts, source.period, source.t, "district", CAL)


def test_the_figures_worked_by_hand_from_a_replay_output() -> None:
    source, bad = from_lines(lines(), "month", date(2026, 11, 20), None, 0, CAL, "district")
    assert bad == []
    # T is the newest `at` of the data when --as-of is not given: case 7's 12-01 10:00 resolve.
    assert by_district(source)["as_of"] == ts("12-01 10:00")
    source, _ = from_lines(lines(), "month", date(2026, 11, 20), _ms(AS_OF), 0, CAL, "district")
    check(by_district(source))


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_same_figures_from_the_ledger(db: str, tmp_path: Path,
                                          request: pytest.FixtureRequest) -> None:
    if db == "sqlite":
        store = LedgerStore(tmp_path / "l.sqlite")
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        from sqlalchemy import create_engine, text

        from ledger.store import database_url
        engine = create_engine(database_url(pg.url))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        store = LedgerStore(pg.url)
    try:
        applied = store.apply([(raw, None, i) for i, raw in enumerate(lines())])
        assert len(applied.conflicts) == 1
        source = from_store(store, "month", date(2026, 11, 20), _ms(AS_OF), 0, CAL, "district",
                            trend=True)
        check(by_district(source))
        from_file, _ = from_lines(lines(), "month", date(2026, 11, 20), _ms(AS_OF), 0, CAL, "district")
        assert source.trend == from_file.trend and sum(o for _, o, _ in source.trend) == 10
        # T after every transition: every case is read from the cases table (its fast path).
        late = _ms(ts("12-31 00:00"))
        source = from_store(store, "month", date(2026, 11, 20), late, 0, CAL, "district")
        from_file, _ = from_lines(lines(), "month", date(2026, 11, 20), late, 0, CAL, "district")
        assert by_district(source) == by_district(from_file)
    finally:
        store.close()


def test_the_ledgers_fast_path_equals_the_fold_at_every_instant(tmp_path: Path) -> None:
    """The database reads a case with nothing after T from its one ``cases`` row and folds the
    others again; the file folds everything. At T on, just before and just after every
    transition, for every grouping, the two give the same report."""
    store = LedgerStore(tmp_path / "l.sqlite")
    try:
        store.apply([(raw, None, i) for i, raw in enumerate(lines())])
        instants = sorted({_ms(m["at"]) + d for m in LOG for d in (-1, 0, 1)})
        assert len(instants) > 60
        for t in instants:
            for by in (None, "district", "responsible_unit", "grid_id", "category", "rule_id"):
                db = from_store(store, "month", date(2026, 11, 20), t, 0, CAL, by)
                file, _ = from_lines(lines(), "month", date(2026, 11, 20), t, 0, CAL, by)
                assert _plain(db.facts) == _plain(file.facts), (t, by)
                assert (report(db.facts, db.period, t, by, CAL)
                        == report(file.facts, file.period, t, by, CAL)), (t, by)
    finally:
        store.close()


def test_an_empty_period_gives_zeros_and_nulls() -> None:
    source, _ = from_lines([], "week", date(2026, 11, 18), None, 0, CAL, "district")
    got = report(source.facts, source.period, source.t, "district", CAL)
    assert got["period"] == {"kind": "week", "start": "2026-11-16T00:00:00.000+08:00",
                             "end": "2026-11-23T00:00:00.000+08:00"}
    assert got["as_of"] == "2026-11-23T00:00:00.000+08:00"      # p1, with --date and no data
    assert got["total"]["opened"] == 0 and got["total"]["on_time_rate"] is None
    assert got["total"]["response_median_s"] is None and got["groups"] == []
    source, _ = from_lines([], "day", date(2026, 11, 18), None, 0, CAL, None)
    no_by = report(source.facts, source.period, source.t, None, CAL)
    assert no_by["by"] is None and no_by["groups"] == [] and no_by["previous"]["groups"] == []


def test_rates_round_half_up_and_percentiles_are_nearest_rank() -> None:
    assert rate(1, 8) == 0.125 and rate(1, 3) == 0.3333 and rate(2, 3) == 0.6667
    assert rate(1, 20000) == 0.0001 and rate(3, 20000) == 0.0002   # 0.00005, 0.00015: half up
    assert rate(1, 0) is None and rate(0, 5) == 0.0
    assert nearest_rank([5, 1, 3, 2, 4], 0.5) == 3 and nearest_rank([5, 1, 3, 2, 4], 0.9) == 5
    assert nearest_rank([7, 9], 0.5) == 7 and nearest_rank([], 0.5) is None
    assert nearest_rank(list(range(1, 11)), 0.9) == 9


def _g(key: str | None, on_time: float | None, closure: float | None) -> dict[str, Any]:
    return {**Tally().figures(key), "on_time_rate": on_time, "closure_rate": closure}


def test_ranking_ties_nulls_and_the_bottom_three() -> None:
    groups = [_g("c", 0.5, 0.9), _g("a", 0.5, 0.9), _g(None, 0.5, 0.9), _g("b", 0.5, 1.0),
              _g("d", None, 0.2), _g("e", 0.9, None), _g("f", None, None), _g(None, None, None),
              _g("z", 0.1, 0.1)]
    out = rank_groups(groups)
    assert [(g["key"], g["rank"], g["bottom"]) for g in out] == [
        ("e", 1, False), ("b", 2, False), ("a", 3, False), ("c", 4, False), (None, 5, True),
        ("z", 6, True), ("d", 7, True), ("f", None, False), (None, None, False)]
    assert [g["bottom"] for g in rank_groups(groups[:2])] == [True, True]


def _plain(facts: list[Any]) -> list[tuple[Any, ...]]:
    """Facts sorted, with SQLite's 0/1 for booleans read as bools."""
    return sorted((tuple(bool(v) if i in (5, 6) else v for i, v in enumerate(f)) for f in facts),
                  key=repr)


def _ms(text: str) -> int:
    from models.timestamps import parse_timestamp_ms
    return parse_timestamp_ms(text)
