"""Which alert messages a receiver wants, written as Alertmanager writes route matchers, so an
operator who knows one knows the other::

    matchers:
      - district="简城街道"
      - level=~"2|3"
      - notify="district_duty"
      - transition!="updated"

Every matcher must hold. ``=`` and ``!=`` compare text, ``=~`` and ``!~`` a regular expression
anchored at both ends (as Alertmanager anchors them). The labels are fields of the alert
message; ``notify`` holds several roles and matches if any of them does (``!=`` and ``!~``:
if none does). A null field, and an empty ``notify``, is the empty string, as a missing label is
in Alertmanager.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

#: The alert fields a matcher may name; the multi-valued one is ``notify``.
LABELS: Final = ("rule_id", "category", "level", "district", "notify", "severity", "transition",
                 "status", "grid_id", "responsible_unit", "case_code")
_HINTS: Final = {"rule": "rule_id", "role": "notify", "roles": "notify", "street": "district",
                 "unit": "responsible_unit", "grid": "grid_id"}
_MATCHER: Final = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
Op = Literal["=", "!=", "=~", "!~"]
#: An alert's labels: each a tuple of texts (one, except ``notify``).
Labels = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Matcher:
    label: str
    op: Op
    value: str
    pattern: re.Pattern[str] | None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """``district="简城街道"``; raise ValueError saying what to write instead."""
        m = _MATCHER.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a matcher: write label=\"value\" (or !=, =~, !~), such "
                             "as district=\"简城街道\" or level=~\"2|3\"")
        label, op, raw = m.groups()
        if label not in LABELS:
            hint = f" (did you mean {_HINTS[label]}?)" if label in _HINTS else ""
            raise ValueError(f"{text!r}: no label {label!r}{hint}; a matcher names one of "
                             f"{', '.join(LABELS)}")
        value = _unquote(raw, text)
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(f"(?:{value})")
            except re.error as e:
                raise ValueError(f"{text!r}: {value!r} is not a regular expression: {e}") from None
        return cls(label, op, value, pattern)  # type: ignore[arg-type]

    def holds(self, labels: Labels) -> bool:
        values = labels[self.label]
        if self.pattern is not None:
            pattern = self.pattern
            hit = any(pattern.fullmatch(v) is not None for v in values)
        else:
            hit = self.value in values
        return hit if self.op in ("=", "=~") else not hit

    def __str__(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def _unquote(raw: str, text: str) -> str:
    if not raw.startswith('"'):
        if '"' in raw:
            raise ValueError(f"{text!r}: a value with a quote must be written in double quotes")
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, str):
        raise ValueError(f"{text!r}: {raw} is not a double-quoted string (escape \\\" and \\\\ inside)")
    return value


def labels_of(alert: Mapping[str, Any]) -> Labels:
    """The labels of one ``city.alerts`` message."""
    out: dict[str, tuple[str, ...]] = {}
    for name in LABELS:
        value = alert.get(name)
        if name == "notify" and isinstance(value, list | tuple):
            out[name] = tuple(str(v) for v in value) if value else ("",)
        else:
            out[name] = ("" if value is None else str(value),)
    return out


def matches(matchers: Sequence[Matcher], alert: Mapping[str, Any]) -> bool:
    """Whether every matcher holds for ``alert`` (no matchers: every alert)."""
    if not matchers:
        return True
    labels = labels_of(alert)
    return all(m.holds(labels) for m in matchers)
