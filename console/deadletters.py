"""What producers sent wrong: the newest dead letters, and counts by reason and source topic.

Pure: the follower adds each ``city.alerts.deadletter`` record; the page reads. The console
reads the last :data:`TAIL` records of each partition at start, then every new one, so the page
shows recent history after a restart, not only what came since.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

KEEP = 2_000
TAIL = 500
EXCERPT = 300


@dataclass(frozen=True)
class Letter:
    received_at: str
    topic: str
    reason_code: str
    reason: str
    key: str | None
    event_id: str | None
    partition: int | None
    offset: int | None
    payload: str


class DeadLetters:
    def __init__(self, keep: int = KEEP) -> None:
        self.recent: deque[Letter] = deque(maxlen=keep)
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, raw: dict[str, Any]) -> None:
        """A dead letter as the contract writes it; anything else is counted as unreadable."""
        def text(key: str) -> str:
            value = raw.get(key)
            return value if isinstance(value, str) else ""

        def number(key: str) -> int | None:
            value = raw.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        letter = Letter(text("received_at"), text("topic") or "?", text("reason_code") or "?",
                        text("reason"), raw.get("key") if isinstance(raw.get("key"), str) else None,
                        raw.get("event_id") if isinstance(raw.get("event_id"), str) else None,
                        number("partition"), number("offset"),
                        text("payload")[:EXCERPT] if raw.get("payload_encoding") == "utf-8"
                        else "(binary)")
        self.recent.append(letter)
        self.counts[(letter.reason_code, letter.topic)] += 1

    def view(self, reason: str | None = None, topic: str | None = None,
             limit: int = 200) -> tuple[list[tuple[str, str, int]], list[Letter]]:
        """Counts (reason, topic, n), most first; and the newest letters matching, newest first."""
        counts = sorted(((r, t, n) for (r, t), n in self.counts.items()),
                        key=lambda x: (-x[2], x[0], x[1]))
        letters = [x for x in reversed(self.recent)
                   if (reason is None or x.reason_code == reason)
                   and (topic is None or x.topic == topic)][:limit]
        return counts, letters
