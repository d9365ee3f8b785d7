"""The live board's state: the open cases, and a numbered log of their changes for the
Server-Sent Events stream.

Pure (no I/O): ``follow`` feeds it the ledger's snapshot and then every ``city.alerts`` message;
the handlers read it. Each change gets the next sequence number, which is the SSE event id. A
browser that reconnects with ``Last-Event-ID: n`` gets every change after ``n`` from the log;
if ``n`` has already left the log (or is from before a restart), it is told to reload the
board, so no change is ever lost, only sometimes re-fetched whole.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from rules.alerts import ACTIVE

#: The cases the board shows: the engine's active ones and the resolved ones, which wait for a
#: supervisor's verification (核查) before they close.
ON_BOARD = ACTIVE | {"resolved"}
LOG_SIZE = 20_000
#: What the board shows of an alert message: all but the evidence (up to 10 events each).
_DROP = ("evidence",)


@dataclass(frozen=True)
class Change:
    seq: int
    event: str               # case (added or changed) | gone (closed or rejected) | refused | reset
    data: dict[str, Any]

    @cached_property
    def text(self) -> str:
        """The event's data as sent: encoded once, however many browsers follow."""
        return orjson.dumps(self.data).decode()


#: Sent to a browser whose stream fell behind: it fetches the board again.
RESET = Change(0, "reset", {})


class Board:
    """Open cases by id, each at its highest version seen."""

    def __init__(self, epoch: str, log_size: int = LOG_SIZE,
                 key_zones: frozenset[str] = frozenset()) -> None:
        #: Names this run of the log: a Last-Event-ID from another run means "reload".
        self.epoch = epoch
        #: The city map's key zones (重点区域): a case in one is flagged ``key_area``.
        self.key_zones = key_zones
        self.cases: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.overdue: set[str] = set()
        self.seq = 0
        self.log: deque[Change] = deque(maxlen=log_size)

    def key_area(self, message: dict[str, Any]) -> bool:
        return not self.key_zones.isdisjoint(message.get("zones") or ())

    def summary(self, message: dict[str, Any], overdue: bool) -> dict[str, Any]:
        """What the board shows of a case: all but the evidence, and two flags of its own."""
        out = {k: v for k, v in message.items() if k not in _DROP}
        out["overdue"] = overdue
        out["key_area"] = self.key_area(message)
        return out

    def load(self, message: dict[str, Any], overdue: bool) -> None:
        """A case from the ledger's snapshot (no change is logged: nobody has seen the board)."""
        aid = message["alert_id"]
        self.versions[aid] = message["version"]
        if overdue:
            self.overdue.add(aid)
        if message["status"] in ON_BOARD:
            self.cases[aid] = self.summary(message, overdue)

    def apply(self, message: dict[str, Any]) -> Change | None:
        """A ``city.alerts`` message; None when it is not newer than what the board has."""
        aid, version = message["alert_id"], message["version"]
        if version <= self.versions.get(aid, 0):
            return None
        self.versions[aid] = version
        if message["transition"] == "overdue":
            self.overdue.add(aid)
        if message["status"] in ON_BOARD:
            self.cases[aid] = self.summary(message, aid in self.overdue)
            return self._log("case", self.cases[aid])
        if self.cases.pop(aid, None) is None:
            return None
        return self._log("gone", {"alert_id": aid, "version": version,
                                  "status": message["status"]})

    def refused(self, data: dict[str, Any]) -> Change:
        """The engine refused an action (its dead letter): shown to whoever is watching."""
        return self._log("refused", data)

    def _log(self, event: str, data: dict[str, Any]) -> Change:
        self.seq += 1
        change = Change(self.seq, event, data)
        self.log.append(change)
        return change

    def snapshot(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq, "cases": list(self.cases.values())}

    def since(self, last: str | None) -> list[Change] | None:
        """Changes after the SSE id ``last`` (``epoch:seq``); None: the browser must reload."""
        if last is None:
            return []
        epoch, _, n = last.partition(":")
        if epoch != self.epoch or not n.isdigit() or int(n) > self.seq:
            return None
        after = int(n)
        if after == self.seq:
            return []
        if not self.log or self.log[0].seq > after + 1:
            return None
        return [c for c in self.log if c.seq > after]
