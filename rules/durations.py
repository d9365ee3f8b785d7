"""Durations and distances as analysts write them in rule packs (RULES.md): ``90s``, ``10m``,
``2h``, ``7d``; distances ``15m`` in metres. Everything inside the engine is integer
milliseconds, so a rule's arithmetic never meets a float or a timedelta on the hot path."""

import re
from dataclasses import dataclass
from typing import Literal

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DISTANCE = re.compile(r"^(\d+(?:\.\d+)?)m$")


def parse_duration(text: object) -> int:
    """Return milliseconds for ``90s`` / ``10m`` / ``2h`` / ``7d``; raise ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as 90s, 10m, 2h or 7d, got {text!r}")
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration: write a whole number and a unit (90s, 10m, 2h, 7d)")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_distance(text: object) -> float:
    """Return metres for ``15m`` (a bare number is not accepted: the unit is part of the format)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a distance such as 15m, got {text!r}")
    m = _DISTANCE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a distance: write metres with the unit, such as 15m")
    return float(m.group(1))


def format_duration(ms: int) -> str:
    """The shortest exact spelling of ``ms``, for messages and summaries."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms else "0s"


_SPAN = re.compile(r"^(\d+)(?:\.(\d))?(ms|s|m|h|d|wh|wd)$")
_WORK_HOUR_TENTH_MS = 360_000
SPAN_HELP = ("write a whole number and a unit: 90s, 10m, 2h, 7d in natural time, or working "
             "hours and days, 4wh, 1.5wh, 2wd (one decimal allowed for wh and wd)")


@dataclass(frozen=True, slots=True)
class Span:
    """A deadline or an escalation ``after``: natural time, or working time (ASSESSMENT.md).

    ``amount`` is milliseconds for a natural span, tenths of a unit for ``wh`` and ``wd``, so
    ``1.5wh`` is converted exactly (no floating point); a ``wd`` is the city's working day,
    known only with the map, so it stays in days until :meth:`ms` is given that length."""

    amount: int
    unit: Literal["ms", "wh", "wd"] = "ms"

    @property
    def working(self) -> bool:
        return self.unit != "ms"

    def ms(self, work_day_ms: int) -> int:
        """Milliseconds: of natural time, or of working time for a working span."""
        if self.unit == "wh":
            return self.amount * _WORK_HOUR_TENTH_MS
        if self.unit == "wd":
            return self.amount * work_day_ms // 10
        return self.amount

    def __str__(self) -> str:
        if not self.working:
            return format_duration(self.amount)
        whole, tenth = divmod(self.amount, 10)
        return f"{whole}.{tenth}{self.unit}" if tenth else f"{whole}{self.unit}"


def parse_span(text: object) -> Span:
    """``2h`` (natural) or ``4wh`` / ``1.5wh`` / ``2wd`` (working); ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration, got {text!r}: {SPAN_HELP}")
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration: {SPAN_HELP}")
    whole, tenth, unit = int(m.group(1)), m.group(2), m.group(3)
    if unit in ("wh", "wd"):
        return Span(whole * 10 + int(tenth or 0), unit)  # type: ignore[arg-type]
    if tenth is not None:
        raise ValueError(f"{text!r}: only working hours and days (wh, wd) take a decimal; "
                         f"{SPAN_HELP}")
    return Span(whole * _UNIT_MS[unit])
