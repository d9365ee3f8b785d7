"""One alert's state and how it is shown: the contract's lifecycle table, escalation
arithmetic (levels, deadline, deferral shifts) and the ``city.alerts`` message.

The engine decides *when* things happen; this module decides what an alert looks like and
which feedback is legal, so both read like the tables in CONTRACTS.md.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from rules.durations import Span
from rules.evidence import Evidence
from rules.inputs import FeedbackIn
from rules.pack import Policy, Rule
from rules.schedule import CityCalendar
from rules.worktime import day_length_ms, wt_add, wt_between

ACTIVE = frozenset({"open", "acknowledged", "dispatched", "deferred"})
#: Statuses a case leaves only by a reopen: no evidence, escalation or timer changes it.
FINAL = frozenset({"closed", "rejected"})
RANK = {"open": 0, "acknowledged": 1, "dispatched": 2, "resolved": 3, "closed": 4}
SEVERITIES = ("minor", "major", "critical")
#: Statuses that end a case (``ended_at`` set): kept for the retention, then forgotten.
ENDED = frozenset({"resolved", "closed", "rejected"})
#: Statuses after which the case's subjects wait out the rule's cooldown before another opens.
COOLING = frozenset({"resolved", "rejected"})
UPDATE_SPACING_MS = 60_000


class Step(NamedTuple):
    """One row of the lifecycle table."""

    applies_to: frozenset[str]
    leads_to: str
    transition: str


LIFECYCLE: dict[str, Step] = {
    "acknowledge": Step(frozenset({"open"}), "acknowledged", "acknowledged"),
    "dispatch": Step(frozenset({"open", "acknowledged", "dispatched"}), "dispatched", "dispatched"),
    "resolve": Step(frozenset(ACTIVE), "resolved", "resolved"),
    "verify": Step(frozenset({"resolved"}), "closed", "closed"),
    "reject": Step(frozenset(ACTIVE), "rejected", "rejected"),
    "reopen": Step(frozenset({"resolved", "closed"}), "open", "reopened"),
    "defer": Step(frozenset(ACTIVE), "deferred", "deferred"),
}


class Effects(NamedTuple):
    """What a feedback did beyond the alert itself, for the engine to carry out (it owns the
    subjects, the cases and the timers)."""

    transition: str
    #: Resolved or rejected: the case's subjects wait out the rule's cooldown from now.
    cool_down: bool
    #: The case ended now: it is kept for the retention, then dropped.
    ended: bool
    #: Reopened: no longer ended, and the current case of its rule and subject again.
    reopened: bool
    #: Deferred: when it resumes.
    resume_at: int | None


def alert_id(grid_id: str, rule_id: str, subject: str, episode_start: int) -> str:
    """Derived, not random: a replay or a restarted worker names the same case the same way."""
    digest = hashlib.sha256(f"{rule_id}\n{subject}\n{episode_start}".encode()).hexdigest()
    return f"a-{grid_id}-{digest[:20]}"


def raise_severity(severity: str) -> str:
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


def span_add(cal: CityCalendar, t: int, span: Span) -> int | None:
    """``t`` plus a natural or working span (None: beyond the calendar, never due)."""
    if span.working:
        return wt_add(cal, t, span.ms(day_length_ms(cal)))
    return t + span.amount


def _left(cal: CityCalendar, applied: int, due: int, span: Span) -> int:
    """What remains of a pending due at ``applied``, in the span's own kind of time."""
    return wt_between(cal, applied, due) if span.working else due - applied


def _resume(cal: CityCalendar, end: int, left: int, span: Span) -> int | None:
    return wt_add(cal, end, left) if span.working else end + left


class Alert:
    """Mutable state of one alert.

    ``level_dues`` (one per policy level) and ``deadline`` are absolute instants, computed at
    opening in the span's kind of time (natural, or working time from the city calendar).
    A deferral (ASSESSMENT.md, Defer and reopen) takes, once at its first ``deferred``, what
    remains of each item still pending (``defer_left``: level index or -1 for the deadline,
    and the remaining time); when it ends each becomes due that much after its end. Items
    already due when it was applied never move."""

    __slots__ = (
        "armed", "assignee", "deadline", "defer_left", "deferred_deadline", "deferred_until",
        "dirty", "ended_at", "episode_start", "evidence", "feedback_ids", "grid_id", "hotspot",
        "id", "last_msg_at", "level", "level_dues", "observed", "open_lat", "open_lon",
        "opened_at", "overdue_fired", "prev_status", "rule", "severity", "status", "subject",
        "subjects", "version",
    )

    def __init__(self, aid: str, grid_id: str, rule: Rule, subject: str, episode_start: int,
                 opened_at: int, evidence: Evidence, cal: CityCalendar) -> None:
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
        self.level_dues: tuple[int | None, ...] = tuple(
            span_add(cal, opened_at, lv.after) for lv in rule.policy.levels)
        self.deadline = span_add(cal, opened_at, rule.deadline) if rule.deadline is not None else None
        self.defer_left: tuple[tuple[int, int], ...] | None = None
        self.deferred_deadline: int | None = None
        self.deferred_until: int | None = None
        self.assignee: str | None = None
        # The case's subjects, and those whose episode runs on: tuples, as they nearly always
        # hold one subject or none (an empty tuple costs nothing, an empty set 216 B). The
        # order they are in means nothing.
        self.observed: tuple[str, ...] = ()
        self.subjects: tuple[str, ...] = (subject,)
        self.last_msg_at = opened_at
        self.dirty = False
        self.feedback_ids: tuple[str, ...] = ()   # applied (a tuple for the same reason)
        self.ended_at: int | None = None
        self.armed: dict[tuple[str, int], int] = {}

    def join(self, subject: str) -> None:
        """Another subject joins the case (within the rule's merge radius)."""
        if subject not in self.subjects:
            self.subjects += (subject,)

    def observe(self, subject: str) -> None:
        if subject not in self.observed:
            self.observed += (subject,)

    def unobserve(self, subject: str) -> bool:
        """The subject's episode ended; False if it was not observed."""
        if subject not in self.observed:
            return False
        self.observed = tuple(s for s in self.observed if s != subject)
        return True

    @property
    def policy(self) -> Policy:
        return self.rule.policy

    # -- escalation arithmetic ------------------------------------------------------------

    def shown_deadline(self) -> int | None:
        """The deadline a message shows: while deferred, as it will be if the deferral lasts
        until ``deferred_until`` (CONTRACTS.md, Defer)."""
        return self.deferred_deadline if self.status == "deferred" else self.deadline

    def level_due(self, level: int) -> int | None:
        """When a level not yet reached is due; None while deferred or once nothing can fire."""
        if self.level >= level or self.status in ("deferred", "rejected"):
            return None
        return self.level_dues[level - 1]

    def level_blocked(self, level: int) -> bool:
        """``unless``: skip the level once the alert has reached that status or a later one."""
        unless = self.policy.levels[level - 1].unless
        return unless is not None and RANK.get(self.status, -1) >= RANK[unless]

    def overdue_due(self) -> int | None:
        if self.overdue_fired or self.status in ("deferred", "resolved", "closed", "rejected"):
            return None
        return self.deadline

    def _span(self, item: int) -> Span:
        if item < 0:
            assert self.rule.deadline is not None
            return self.rule.deadline
        return self.policy.levels[item].after

    def defer(self, cal: CityCalendar, applied: int, until: int) -> None:
        """Apply a ``defer`` at ``applied``: the first of a deferral takes what remains of each
        pending item; a later one only moves the end."""
        if self.status != "deferred":
            self.prev_status = self.status
            items = [(i, due) for i, due in enumerate(self.level_dues) if i >= self.level]
            items.append((-1, self.deadline))
            self.defer_left = tuple((i, _left(cal, applied, due, self._span(i)))
                                    for i, due in items if due is not None and due > applied)
        self.deferred_until = until
        self.status = "deferred"
        left = dict(self.defer_left or ())
        self.deferred_deadline = (_resume(cal, until, left[-1], self._span(-1)) if -1 in left
                                  else self.deadline)

    def end_deferral(self, cal: CityCalendar, end: int) -> None:
        """The deferral ends at ``end`` (``resumed``, ``resolve`` or ``reject``): each item
        still pending when it began is due what remained of it after ``end``."""
        dues = list(self.level_dues)
        for i, left in self.defer_left or ():
            due = _resume(cal, end, left, self._span(i))
            if i < 0:
                self.deadline = due
            else:
                dues[i] = due
        self.level_dues = tuple(dues)
        self.defer_left = None
        self.deferred_deadline = None
        self.deferred_until = None

    def restart_deadline(self, cal: CityCalendar, at: int) -> None:
        """``on_reopen: restart``: a new deadline from the reopening, and a new overdue."""
        self.deadline = span_add(cal, at, self.rule.deadline) if self.rule.deadline is not None else None
        self.overdue_fired = False

    # -- the lifecycle ------------------------------------------------------------------------

    def refusal(self, action: str) -> str | None:
        """Why the lifecycle table refuses ``action`` now (the dead letter's reason), or None."""
        step = LIFECYCLE[action]
        if self.status in step.applies_to:
            return None
        return (f"action: {action} does not apply to an alert that is {self.status} "
                f"(it applies to: {', '.join(sorted(step.applies_to))})")

    def act(self, fb: FeedbackIn, now: int, cal: CityCalendar) -> Effects:
        """Apply a feedback the table allows (:meth:`refusal` is None) at ``now``."""
        step = LIFECYCLE[fb.action]
        if fb.action == "defer":
            assert fb.until is not None
            self.defer(cal, now, fb.until)
            return Effects(step.transition, False, False, False, fb.until)
        if self.status == "deferred":
            self.end_deferral(cal, now)
        self.status = step.leads_to
        if fb.action == "dispatch" and fb.assignee is not None:
            self.assignee = fb.assignee
        ended = self.status in ENDED
        if ended:
            self.ended_at = now
        reopened = fb.action == "reopen"
        if reopened:
            self.ended_at = None
            if self.policy.on_reopen == "restart":
                self.restart_deadline(cal, now)
        return Effects(step.transition, self.status in COOLING, ended, reopened, None)

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
