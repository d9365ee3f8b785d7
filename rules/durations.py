"""Durations and distances as analysts write them in rule packs (RULES.md): ``90s``, ``10m``,
``2h``, ``7d``; distances ``15m`` in metres. Everything inside the engine is integer
milliseconds, so a rule's arithmetic never meets a float or a timedelta on the hot path."""

import re

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
