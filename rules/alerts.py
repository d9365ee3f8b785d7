"""One alert's state and how it is shown: the contract's lifecycle table, escalation
arithmetic (levels, deadline, deferral shifts) and the ``city.alerts`` message.

The engine decides *when* things happen; this module decides what an alert looks like and
which feedback is legal, so both read like the tables in CONTRACTS.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rules.evidence import Evidence
from rules.pack import Policy, Rule

ACTIVE = frozenset({"open", "acknowledged", "dispatched", "deferred"})
RANK = {"open": 0, "acknowledged": 1, "dispatched": 2, "resolved": 3, "closed": 4}
SEVERITIES = ("minor", "major", "critical")
UPDATE_SPACING_MS = 60_000

# action -> (statuses it applies to, status it leads to, transition it emits)
LIFECYCLE: dict[str, tuple[frozenset[str], str, str]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged", "acknowledged"),
    "dispatch": (frozenset({"open", "acknowledged", "dispatched"}), "dispatched", "dispatched"),
    "resolve": (frozenset(ACTIVE), "resolved", "resolved"),
    "verify": (frozenset({"resolved"}), "closed", "closed"),
    "reject": (frozenset(ACTIVE), "rejected", "rejected"),
    "reopen": (frozenset({"resolved", "closed"}), "open", "reopened"),
    "defer": (frozenset(ACTIVE), "deferred", "deferred"),
}


def alert_id(grid_id: str, rule_id: str, subject: str, episode_start: int) -> str:
    """Derived, not random: a replay or a restarted worker names the same case the same way."""
    digest = hashlib.sha256(f"{rule_id}\n{subject}\n{episode_start}".encode()).hexdigest()
    return f"a-{grid_id}-{digest[:20]}"


def raise_severity(severity: str) -> str:
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


class Alert:
    """Mutable state of one alert. ``shift`` is the total time spent deferred: every level
    and the deadline are due that much later than the policy says."""

    __slots__ = (
        "armed", "assignee", "defer_start", "deferred_until", "dirty", "ended_at",
        "episode_start", "evidence", "feedback_ids", "grid_id", "hotspot", "id", "last_msg_at",
        "level", "observed", "open_lat", "open_lon", "opened_at", "overdue_fired", "prev_status",
        "restart_base", "rule", "severity", "shift", "status", "subject", "subjects", "version",
    )

    def __init__(self, aid: str, grid_id: str, rule: Rule, subject: str, episode_start: int,
                 opened_at: int, evidence: Evidence) -> None:
        self.id = aid
        self.grid_id = grid_id
        self.rule = rule
        self.subject = subject
        self.episode_start = episode_start
        self.opened_at = opened_at
        self.evidence = evidence
        loc = evidence.location
        self.open_lat, self.open_lon = loc if loc is not None else (None, None)
        self.version = 0
        self.status = "open"
        self.prev_status = "open"
        self.level = 1
        self.severity = rule.severity
        self.hotspot = False
        self.overdue_fired = False
        self.shift = 0
        self.restart_base: int | None = None
        self.defer_start: int | None = None
        self.deferred_until: int | None = None
        self.assignee: str | None = None
        self.observed: set[str] = set()
        self.subjects: set[str] = {subject}
        self.last_msg_at = opened_at
        self.dirty = False
        self.feedback_ids: set[str] = set()
        self.ended_at: int | None = None
        self.armed: dict[tuple[str, int], int] = {}

    @property
    def policy(self) -> Policy:
        return self.rule.policy

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    # -- escalation arithmetic ------------------------------------------------------------

    def deadline_at(self) -> int | None:
        """The 处置时限 in force, shifted by time spent deferred (not by the current deferral)."""
        deadline = self.policy.deadline_ms
        if deadline is None:
            return None
        base = self.restart_base if self.restart_base is not None else self.opened_at
        return base + deadline + self.shift

    def shown_deadline(self) -> int | None:
        """While deferred, the deadline as it will be if the deferral lasts until ``until``."""
        d = self.deadline_at()
        if d is not None and self.status == "deferred":
            assert self.deferred_until is not None and self.defer_start is not None
            d += self.deferred_until - self.defer_start
        return d

    def level_due(self, level: int) -> int | None:
        """When a level not yet reached is due; None while deferred or once nothing can fire."""
        if self.level >= level or self.status in ("deferred", "rejected"):
            return None
        return self.opened_at + self.policy.levels[level - 1].after_ms + self.shift

    def level_blocked(self, level: int) -> bool:
        """``unless``: skip the level once the alert has reached that status or a later one."""
        unless = self.policy.levels[level - 1].unless
        return unless is not None and RANK.get(self.status, -1) >= RANK[unless]

    def overdue_due(self) -> int | None:
        if self.overdue_fired or self.status in ("deferred", "resolved", "closed", "rejected"):
            return None
        return self.deadline_at()

    def end_deferral(self, now: int) -> None:
        """Shift pending levels and the deadline by the time actually spent deferred."""
        assert self.defer_start is not None
        self.shift += max(0, now - self.defer_start)
        self.defer_start = None
        self.deferred_until = None

    def notify(self, transition: str) -> list[str]:
        levels = self.policy.levels
        if transition == "opened":
            roles: list[str] = []
            for lv in levels[: self.level]:
                roles.extend(r for r in lv.notify if r not in roles)
            return roles
        return list(levels[self.level - 1].notify)


def render(alert: Alert, transition: str, at: int, grid: Any, fmt: Any,
           actor: str | None = None, note: str | None = None,
           photos: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The ``city.alerts`` message for one transition (without ``emitted_at``, which the
    producer sets: two runs are compared on every other field)."""
    ev = alert.evidence
    rule = alert.rule
    if ev.location is not None:
        lat, lon = ev.location
        zones = list(ev.zones)
    else:
        lat, lon, zones = grid.lat, grid.lon, []
    deadline = alert.shown_deadline()
    first_seen, last_seen = ev.first_seen, ev.last_seen
    return {
        "alert_id": alert.id,
        "version": alert.version,
        "transition": transition,
        "status": alert.status,
        "level": alert.level,
        "notify": alert.notify(transition),
        "rule_id": rule.id,
        "category": rule.category,
        "case_code": rule.case_code,
        "description": rule.description,
        "severity": alert.severity,
        "grid_id": alert.grid_id,
        "district": grid.district,
        "responsible_unit": grid.responsible_unit,
        "zones": zones,
        "location": {"lat": lat, "lon": lon},
        "address": ev.address[1] if ev.address is not None else None,
        "first_seen": fmt(first_seen) if first_seen is not None else None,
        "last_seen": fmt(last_seen) if last_seen is not None else None,
        "opened_at": fmt(alert.opened_at),
        "deadline": fmt(deadline) if deadline is not None else None,
        "occurrences": ev.count,
        "hotspot": alert.hotspot,
        "assignee": alert.assignee,
        "deferred_until": fmt(alert.deferred_until) if alert.deferred_until is not None else None,
        "actor": actor,
        "note": note,
        "photos": list(photos) if photos is not None else None,
        "evidence": [item.render(fmt) for item in ev.items()],
        "at": fmt(at),
    }
