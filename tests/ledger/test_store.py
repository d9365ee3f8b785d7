"""The ledger's store on real databases (SQLite in-process, a PostgreSQL server the tests start):
idempotence, conflicts kept apart, unreadable records kept, the order of arrival not mattering,
and the migrations matching the tables."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from ledger.case import fold
from ledger.record import Transition, parse
from ledger.schema import metadata, report_evidence
from ledger.store import _MIGRATIONS as MIGRATIONS
from ledger.store import CaseQuery, LedgerError, LedgerStore, database_url, migrate
from tests.pg import Postgres
from tests.rules.harness import T
from tests.rules.test_lifecycle import opened_vendor


def lifecycle(tmp_path: Path) -> list[dict[str, Any]]:
    """Three cases of the test city: one handled to closure and reopened once, one deferred and
    rejected, one left open past its deadline."""
    h, _ = opened_vendor(tmp_path)           # opened 10:10, left open past its deadline
    h.focus = None
    h.sensor(T("10:10:10"), "mh-1", "manhole_cover", state="open")
    h.report(T("10:10:20"), eid="r1")
    h.report(T("10:10:30"), eid="r2")
    h.report(T("10:10:40"), eid="r3")
    h.tick(T("10:11:00"))
    by_rule = {a["rule_id"]: a["alert_id"] for a in h.alerts if a["transition"] == "opened"}
    assert len(by_rule) == 3, h.kinds()
    mh = [by_rule["manhole.open"]]
    h.fb(T("10:11:00"), mh[0], "acknowledge")
    h.fb(T("10:11:30"), by_rule["report.repeat"], "defer", until=T("12:00:00"))
    h.fb(T("10:12:00"), mh[0], "dispatch", assignee="team-3")
    h.fb(T("10:20:00"), mh[0], "resolve")
    h.fb(T("10:30:00"), mh[0], "verify")
    h.fb(T("10:40:00"), by_rule["report.repeat"], "reject", reason="duplicate report")
    h.fb(T("11:00:00"), mh[0], "reopen")
    h.fb(T("11:10:00"), mh[0], "resolve")
    h.fb(T("11:20:00"), mh[0], "verify")
    h.finish(T("13:00:00"))
    return h.alerts


def lines(messages: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(m) for m in messages]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    if request.param == "sqlite":
        s = LedgerStore(tmp_path / "ledger.sqlite")
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        engine = create_engine(database_url(pg.url))
        with engine.begin() as conn:   # a fresh schema for each test
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        s = LedgerStore(pg.url)
    request.addfinalizer(s.close)
    return s


def all_cases(store: LedgerStore) -> dict[str, dict[str, Any]]:
    return {c["alert_id"]: c for c in store.find(CaseQuery(limit=10_000))}


def test_every_transition_once_and_a_redelivery_changes_nothing(store: LedgerStore,
                                                               tmp_path: Path) -> None:
    messages = lifecycle(tmp_path)
    records = [(raw, 0, i) for i, raw in enumerate(lines(messages))]
    applied = store.apply(records)
    assert (applied.inserted, applied.redelivered, applied.conflicts) == (len(messages), 0, [])
    before = all_cases(store)
    # A worker that crashed re-sends what it had sent, with a new emitted_at: a redelivery.
    again = [orjson.dumps({**m, "emitted_at": "2026-11-18T23:59:59.000+08:00"}) for m in messages]
    applied = store.apply([(raw, 1, i) for i, raw in enumerate(again)])
    assert (applied.inserted, applied.redelivered, applied.conflicts) == (0, len(messages), [])
    assert all_cases(store) == before
    assert store.counts() == {"cases": len({m["alert_id"] for m in messages}),
                              "transitions": len(messages), "conflicts": 0, "unreadable": 0}


def test_case_rows_hold_what_the_scorecards_need(store: LedgerStore, tmp_path: Path) -> None:
    messages = lifecycle(tmp_path)
    store.apply([(raw, None, None) for raw in lines(messages)])
    cases = all_cases(store)
    first = {}
    for m in messages:
        first.setdefault(m["rule_id"], m["alert_id"])
    mh = cases[first["manhole.open"]]
    assert mh["reopen_count"] == 1 and mh["on_time"] is True and mh["assignee"] == "team-3"
    assert mh["first_acknowledged_at"] == T("10:11:00") and mh["first_dispatched_at"] == T("10:12:00")
    assert mh["first_resolved_at"] == T("10:20:00") and mh["last_resolved_at"] == T("11:10:00")
    assert mh["first_closed_at"] == T("10:30:00") and mh["first_response_at"] == T("10:11:00")
    rejected = cases[first["report.repeat"]]
    assert rejected["status"] == "rejected"
    assert rejected["ever_deferred"] and rejected["on_time"] is None
    assert rejected["first_response_at"] == T("10:11:30")
    late = cases[first["vend.main"]]
    assert late["status"] == "open"
    assert late["overdue"] and late["level"] == 3 and late["on_time"] is None
    overdue = {c["alert_id"] for c in store.find(CaseQuery(overdue=True))}
    assert late["alert_id"] in overdue
    assert overdue == {m["alert_id"] for m in messages if m["transition"] == "overdue"}
    assert [c["alert_id"] for c in store.find(CaseQuery(status=("closed",)))] == [mh["alert_id"]]
    history = store.history(mh["alert_id"])
    assert [h["version"] for h in history] == list(range(1, len(history) + 1))
    assert history[-1]["message"] == mh["message"] and history[-1]["transition"] == "closed"


def test_arrival_order_does_not_matter(store: LedgerStore, tmp_path: Path) -> None:
    messages = lifecycle(tmp_path)
    in_order = {}
    for c in _fold_all(messages).values():
        in_order[c["alert_id"]] = c
    shuffled = lines(messages)
    random.Random(5).shuffle(shuffled)
    for i in range(0, len(shuffled), 7):   # in several transactions, as a consumer would
        store.apply([(raw, 0, i) for raw in shuffled[i:i + 7]])
    got = all_cases(store)
    assert got.keys() == in_order.keys()
    for aid, row in got.items():
        assert {k: row[k] for k in in_order[aid]} == in_order[aid]


def _fold_all(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for raw in lines(messages):
        t = parse(raw)
        assert isinstance(t, Transition)
        rows[t.alert_id] = fold(rows.get(t.alert_id), t)
    return rows


def test_a_conflicting_copy_is_kept_apart_and_never_applied(store: LedgerStore,
                                                           tmp_path: Path) -> None:
    messages = lifecycle(tmp_path)
    store.apply([(raw, 0, i) for i, raw in enumerate(lines(messages))])
    before = all_cases(store)
    last = messages[-1]
    forged = {**last, "status": "closed", "note": "changed after the fact"}
    applied = store.apply([(orjson.dumps(forged), 2, 99)])
    assert applied.inserted == 0 and applied.conflicts == [(last["alert_id"], last["version"], 2, 99)]
    assert all_cases(store) == before
    kept = store.conflicts_of(last["alert_id"])
    assert len(kept) == 1 and kept[0]["message"]["note"] == "changed after the fact"
    assert kept[0]["source_offset"] == 99


def test_unreadable_records_are_kept_with_their_reason(store: LedgerStore, tmp_path: Path) -> None:
    good = lines(lifecycle(tmp_path))[0]
    bad_shape = orjson.dumps({**orjson.loads(good), "version": 0})
    applied = store.apply([(b"\xff not json", 3, 1), (bad_shape, 3, 2), (b"[1, 2]", 3, 3), (good, 3, 4)])
    assert applied.inserted == 1
    assert [(p, o, u.reason_code) for p, o, u in applied.unreadable] == [
        (3, 1, "not_json"), (3, 2, "bad_shape"), (3, 3, "bad_shape")]
    assert "version" in applied.unreadable[1][2].reason
    assert store.counts()["unreadable"] == 3


def test_a_database_the_ledger_group_has_not_been_writing_is_refused(store: LedgerStore,
                                                                    tmp_path: Path) -> None:
    """Every record read from a partition is kept (a transition, a conflict, an unreadable
    record) before its offset is committed: a committed offset with nothing of its partition
    in the database means another database than the ledger's."""
    messages = lines(lifecycle(tmp_path))
    check = store.check_group_offsets
    # a new database, a new group: nothing read, nothing to hold
    check({0: None, 1: None, 2: None}, "g", "city.alerts")
    check({0: 0}, "g", "city.alerts")
    with pytest.raises(LedgerError) as refused:
        check({0: None, 1: 17, 2: 4}, "cityorder-ledger", "city.alerts")
    said = str(refused.value)
    assert "partitions 1, 2" in said and "offsets 17, 4" in said and "cityorder-ledger" in said
    assert "--ledger" in said and "--delete-offsets --group cityorder-ledger" in said
    store.apply([(messages[0], 1, 16)])                     # partition 1: a transition
    store.apply([(b"\xff not json", 2, 3)])                 # partition 2: an unreadable record
    check({0: None, 1: 17, 2: 4}, "g", "city.alerts")
    with pytest.raises(LedgerError, match=r"partition 0, though .* read it \(to offset 9\)"):
        check({0: 9, 1: 17, 2: 4}, "g", "city.alerts")
    forged = {**orjson.loads(messages[0]), "note": "another copy"}
    store.apply([(orjson.dumps(forged), 0, 8)])             # partition 0: only a conflict
    check({0: 9, 1: 17, 2: 4}, "g", "city.alerts")


def indexed_reports(store: LedgerStore) -> list[tuple[str, str, int]]:
    with store.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(report_evidence.c.event_id,
                                                            report_evidence.c.alert_id,
                                                            report_evidence.c.version)))


def test_the_citizen_reports_in_the_evidence_are_indexed_and_an_upgrade_fills_the_index(
        store: LedgerStore, tmp_path: Path) -> None:
    """An Open311 request finds the case its report joined by this index: kept as transitions
    are applied, and filled from the transitions already kept when an older ledger upgrades."""
    messages = lifecycle(tmp_path)
    want = sorted({(e["event_id"], m["alert_id"], m["version"]) for m in messages
                   for e in m["evidence"] if e["source"] == "report"})
    assert len({aid for _, aid, _ in want}) == 1 and len({e for e, _, _ in want}) == 3
    store.apply([(raw, 0, i) for i, raw in enumerate(lines(messages))])
    assert indexed_reports(store) == want
    store.apply([(raw, 1, i) for i, raw in enumerate(lines(messages))])    # redelivered
    assert indexed_reports(store) == want
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:       # back to the ledger before the index ...
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
        assert "report_evidence" not in inspect(conn).get_table_names()
    migrate(store.engine)                    # ... and up again: filled from the transitions
    assert indexed_reports(store) == want


def test_the_migrations_make_exactly_the_tables(store: LedgerStore) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_a_database_that_cannot_be_opened_says_which_and_why(tmp_path: Path) -> None:
    from ledger.store import LedgerError
    with pytest.raises(LedgerError, match=r"cannot open the ledger database postgresql\+psycopg://"
                                          r"u:\*\*\*@127\.0\.0\.1:1/x"):
        LedgerStore("postgresql://u:secret@127.0.0.1:1/x")
