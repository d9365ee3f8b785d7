"""A case row from its transitions: pure, and independent of the order they arrive in.

Redelivery after a crash, or a consumer that reads a partition again, can bring a case's
versions in any order and more than once; the store gives :func:`fold` each new
``(alert_id, version)`` exactly once, and the row it builds is the same whatever the order.
"""

from __future__ import annotations

from typing import Any

from ledger.record import Transition

#: The transitions that count as the first response to a case (ASSESSMENT.md, 响应时长).
RESPONSES = frozenset({"acknowledged", "dispatched", "resolved", "rejected", "deferred"})
_FIRSTS = {"acknowledged": "first_acknowledged_at", "dispatched": "first_dispatched_at",
           "resolved": "first_resolved_at", "closed": "first_closed_at"}


def _earliest(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def fold(row: dict[str, Any] | None, t: Transition) -> dict[str, Any]:
    """``row`` (a ``cases`` row as a dict, or None for a new case) with ``t`` applied."""
    if row is None:
        row = {"alert_id": t.alert_id, "version": 0, "first_response_at": None,
               "first_acknowledged_at": None, "first_dispatched_at": None,
               "first_resolved_at": None, "last_resolved_at": None, "last_resolved_version": None,
               "first_closed_at": None, "reopen_count": 0, "ever_deferred": False,
               "overdue": False, "opened_seen": False}
    else:
        row = dict(row)
    if t.version > row["version"]:
        row.update(
            version=t.version, transition=t.transition, status=t.status, level=t.level,
            rule_id=t.rule_id, category=t.category, case_code=t.case_code, severity=t.severity,
            grid_id=t.grid_id, district=t.district, responsible_unit=t.responsible_unit,
            address=t.address, lat=t.lat, lon=t.lon, hotspot=t.hotspot, assignee=t.assignee,
            opened_at=t.opened_at, deadline=t.deadline, deferred_until=t.deferred_until,
            updated_at=t.at, message=t.message)
    if t.transition in RESPONSES:
        row["first_response_at"] = _earliest(row["first_response_at"], t.at)
    first = _FIRSTS.get(t.transition)
    if first is not None:
        row[first] = _earliest(row[first], t.at)
    if t.transition == "resolved" and (row["last_resolved_version"] is None
                                       or t.version > row["last_resolved_version"]):
        row["last_resolved_version"], row["last_resolved_at"] = t.version, t.at
    row["reopen_count"] += t.transition == "reopened"
    row["ever_deferred"] = row["ever_deferred"] or t.transition == "deferred"
    row["overdue"] = row["overdue"] or t.transition == "overdue"
    row["opened_seen"] = row["opened_seen"] or t.transition == "opened"
    row["on_time"] = on_time(row)
    return row


def on_time(row: dict[str, Any]) -> bool | None:
    """Closed by its deadline (ASSESSMENT.md, 按期结案数): the last ``resolved`` at or before
    the deadline in force; a case without a deadline is on time. None unless closed."""
    if row.get("status") != "closed":
        return None
    deadline, resolved = row.get("deadline"), row.get("last_resolved_at")
    return deadline is None or (resolved is not None and resolved <= deadline)
