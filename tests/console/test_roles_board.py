"""The pure parts of the console: who may do what, and the board's resumable change log."""

from __future__ import annotations

from typing import Any

import pytest

from console.board import Board
from console.roles import ACTIONS, NOTE, PERMISSIONS, ROLES, legal, may, offered
from rules.alerts import LIFECYCLE

STATUSES = ("open", "acknowledged", "dispatched", "deferred", "resolved", "closed", "rejected")


def test_roles_nest_and_only_admin_manages_users() -> None:
    assert PERMISSIONS["viewer"] == frozenset()
    assert PERMISSIONS["operator"] == {"acknowledge", "dispatch", "defer", NOTE}
    assert PERMISSIONS["supervisor"] == PERMISSIONS["operator"] | {
        "resolve", "verify", "reject", "reopen"}
    assert [r for r in ROLES if may(r, "users")] == ["admin"]


@pytest.mark.parametrize("status", STATUSES)
def test_legal_is_the_engines_lifecycle_table(status: str) -> None:
    assert {a for a in ACTIONS if legal(a, status)} == {
        a for a, (sources, _, _) in LIFECYCLE.items() if status in sources}
    assert legal(NOTE, status)


def test_offered_is_permitted_and_legal() -> None:
    assert offered("viewer", "open") == []
    assert offered("operator", "open") == ["acknowledge", "dispatch", "defer", NOTE]
    assert offered("operator", "resolved") == [NOTE]
    assert offered("supervisor", "resolved") == ["verify", "reopen", NOTE]
    assert offered("supervisor", "closed") == ["reopen", NOTE]
    assert offered("admin", "rejected") == [NOTE]


def m(aid: str, version: int, status: str, transition: str = "updated") -> dict[str, Any]:
    return {"alert_id": aid, "version": version, "status": status, "transition": transition,
            "evidence": [{"event_id": "e"}], "level": 1}


def test_board_keeps_open_cases_at_their_newest_version() -> None:
    b = Board("E")
    b.load(m("a", 3, "open"), overdue=False)
    b.load(m("z", 2, "closed"), overdue=False)
    assert list(b.cases) == ["a"] and "evidence" not in b.cases["a"]
    assert b.apply(m("a", 3, "open")) is None             # the snapshot had it
    assert b.apply(m("a", 2, "open")) is None             # older
    c = b.apply(m("a", 4, "acknowledged", "acknowledged"))
    assert c is not None and (c.seq, c.event) == (1, "case")
    c = b.apply(m("a", 5, "open", "overdue"))
    assert c is not None and b.cases["a"]["overdue"] is True
    c = b.apply(m("a", 6, "resolved", "resolved"))      # awaits verification: still shown
    assert c is not None and c.event == "case" and b.cases["a"]["status"] == "resolved"
    c = b.apply(m("a", 7, "closed", "closed"))
    assert c is not None and c.event == "gone" and "a" not in b.cases
    assert b.apply(m("z", 3, "closed")) is None            # never on the board: no change


def test_a_case_in_a_key_zone_is_flagged_for_the_alarm() -> None:
    b = Board("E", key_zones=frozenset({"school-1"}))
    b.load({**m("a", 1, "open"), "zones": ["road-2", "school-1"]}, overdue=False)
    c = b.apply({**m("b", 1, "open", "opened"), "zones": ["road-2"]})
    assert b.cases["a"]["key_area"] is True
    assert c is not None and c.data["key_area"] is False
    assert Board("E").summary({**m("a", 1, "open"), "zones": ["school-1"]}, False)["key_area"] \
        is False


def test_a_reconnect_gets_every_change_it_missed_or_is_told_to_reload() -> None:
    b = Board("E", log_size=3)
    for v in range(1, 6):
        b.apply(m("a", v, "open"))
    assert b.seq == 5
    assert [c.seq for c in b.since("E:3") or []] == [4, 5]
    assert b.since("E:5") == [] and b.since(None) == []
    assert b.since("E:1") is None              # seq 2 has left the log (it keeps 3)
    assert [c.seq for c in b.since("E:2") or []] == [3, 4, 5]
    assert b.since("OTHER:4") is None          # another run of the console
    assert b.since("E:9") is None and b.since("E:x") is None


def test_dead_letters_counted_by_reason_and_topic_newest_first() -> None:
    from console.deadletters import DeadLetters

    d = DeadLetters(keep=3)
    for i, (reason, topic) in enumerate([("invalid_field", "city.events.camera"),
                                         ("not_json", "city.events.report"),
                                         ("invalid_field", "city.events.camera"),
                                         ("illegal_transition", "city.alerts.feedback")]):
        d.add({"received_at": f"t{i}", "topic": topic, "reason_code": reason, "reason": "r",
               "key": None, "event_id": f"e{i}", "partition": 0, "offset": i,
               "payload": "x" * 1000, "payload_encoding": "utf-8", "truncated": False})
    d.add({"topic": 7, "payload_encoding": "base64", "offset": True})     # not the contract's
    counts, letters = d.view()
    assert counts[0] == ("invalid_field", "city.events.camera", 2)
    assert ("?", "?", 1) in counts and sum(n for *_, n in counts) == 5
    assert [x.event_id for x in letters] == [None, "e3", "e2"]              # keeps the last 3
    assert letters[0].payload == "(binary)" and letters[0].offset is None
    assert len(letters[1].payload) == 300
    assert [x.event_id for x in d.view(reason="invalid_field")[1]] == ["e2"]
    assert [x.event_id for x in d.view(topic="city.alerts.feedback")[1]] == ["e3"]
