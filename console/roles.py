"""Who may do what: the four roles, and the actions legal from a case's status.

Pure, so every role × action × status is tested without a server. The statuses each action
applies to are the engine's own table (``rules.alerts.LIFECYCLE``): the console offers only
what the engine would accept, and the engine stays the judge (it refuses to the dead letters
what the console could not know, e.g. a reopen while another alert of the rule is active).
"""

from __future__ import annotations

from rules.alerts import LIFECYCLE

ROLES = ("viewer", "operator", "supervisor", "admin")
#: The feedback actions, in the order the case page offers them.
ACTIONS = ("acknowledge", "dispatch", "defer", "resolve", "verify", "reject", "reopen")
#: ``note`` is the console's own: a note on a case, in the ledger's audit trail.
NOTE = "note"
_OPERATOR = frozenset({"acknowledge", "dispatch", "defer", NOTE})
_SUPERVISOR = _OPERATOR | {"resolve", "verify", "reject", "reopen"}
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(),
    "operator": _OPERATOR,
    "supervisor": _SUPERVISOR,
    "admin": _SUPERVISOR | {"users"},
}


def may(role: str, action: str) -> bool:
    """Whether ``role`` may take ``action`` at all (``users``: manage users)."""
    return action in PERMISSIONS.get(role, frozenset())


def legal(action: str, status: str) -> bool:
    """Whether the engine accepts ``action`` from ``status`` (a note: always)."""
    if action == NOTE:
        return True
    spec = LIFECYCLE.get(action)
    return spec is not None and status in spec[0]


def offered(role: str, status: str) -> list[str]:
    """The actions the case page offers ``role`` on a case in ``status``."""
    return [a for a in (*ACTIONS, NOTE) if may(role, a) and legal(a, status)]
