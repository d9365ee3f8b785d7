"""Compare two sets of ``city.alerts`` messages: is a live run what its replay says it must be?

Live output may repeat a version (at-least-once delivery: a worker that recovers produces the
same transitions again) and stamps ``emitted_at`` when it sends; everything else must be equal.
Used by ``cityorder compare`` and by the tests that hold the worker to the replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

Key = tuple[str, int]
#: How many examples of each kind of difference are told, and how much of a value.
EXAMPLES = 3
VALUE_CHARS = 120


def read_alerts(path: Path) -> Iterator[dict[str, Any]]:
    """The messages of a JSONL file; ValueError naming the line that is not a JSON object."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from None
            if not isinstance(obj, dict) or "alert_id" not in obj or "version" not in obj:
                raise ValueError(f"{path}:{n}: not a city.alerts message (no alert_id and version)")
            yield obj


def by_version(messages: Iterable[dict[str, Any]]) -> tuple[dict[Key, dict[str, Any]], list[Key]]:
    """Messages by (alert_id, version) without ``emitted_at``, and the keys that came twice with
    different content (the first content is kept)."""
    out: dict[Key, dict[str, Any]] = {}
    conflicts: list[Key] = []
    for m in messages:
        m = {k: v for k, v in m.items() if k != "emitted_at"}
        key = (m["alert_id"], m["version"])
        first = out.setdefault(key, m)
        if first != m:
            conflicts.append(key)
    return out, conflicts


@dataclass(frozen=True, slots=True)
class Comparison:
    missing: list[Key]            # expected, not live
    extra: list[Key]              # live, not expected
    differ: list[tuple[Key, list[tuple[str, Any, Any]]]]   # both: (field, expected, live) that differ
    conflicts: list[Key]          # a version live sent twice with different content
    total: int                    # versions expected

    @property
    def same(self) -> bool:
        return not (self.missing or self.extra or self.differ or self.conflicts)

    def describe(self, live: str = "live", expected: str = "expected") -> str:
        if self.same:
            return f"same: {self.total} versions, equal on every field but emitted_at"
        lines = [f"{live} differs from {expected} ({self.total} versions expected):"]
        for title, keys in ((f"missing from {live}", self.missing), (f"only in {live}", self.extra),
                            (f"sent twice by {live} with different content", self.conflicts)):
            if keys:
                examples = ", ".join(f"{a} v{v}" for a, v in keys[:EXAMPLES])
                lines.append(f"  {len(keys)} {title}, e.g. {examples}")
        if self.differ:
            lines.append(f"  {len(self.differ)} with other content, e.g.")
            for (a, v), fields in self.differ[:EXAMPLES]:
                told = (f"{f} {want!r:.{VALUE_CHARS}} expected, {got!r:.{VALUE_CHARS}} live"
                        for f, want, got in fields)
                lines.append(f"    {a} v{v}: " + "; ".join(told))
        return "\n".join(lines)


def compare_alerts(live: Iterable[dict[str, Any]], expected: Iterable[dict[str, Any]]) -> Comparison:
    got, conflicts = by_version(live)
    want, _ = by_version(expected)
    differ = [(k, [(f, want[k].get(f), got[k].get(f)) for f in sorted(want[k].keys() | got[k].keys())
                   if want[k].get(f) != got[k].get(f)])
              for k in sorted(want.keys() & got.keys()) if want[k] != got[k]]
    return Comparison(sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys()), differ,
                      conflicts, len(want))
