"""Drive ``rules.replay.Replay`` line by line and check every line's accounting.

The path is ``cityorder replay``'s own: ``Replay.line`` (parse the replay line, decode,
ingest, the engines of every partition), ``Replay.finish``, outputs written as JSON. After each
line a :class:`Session` checks:

- nothing but ``ReplayFileError`` escapes, and that only for a line the replay file format
  forbids (which then changes nothing);
- ``accepted + ignored + late + duplicates + dead letters == lines - ticks``, every counter but
  ``accepted`` never goes down (feedback moves from accepted to a dead letter or a duplicate
  once its fate is known), and the line's own outcome is one the generator allowed for it;
- every dead letter has a reason code of the contract (``internal_error`` is never right on
  generated input: it is the last line of defence catching a bug) and is a valid
  ``city.alerts.deadletter`` message that can be written as JSON; the summary's dead letters by
  code are the dead letters written;
- every alert message is a valid ``city.alerts`` message that can be written as JSON, and each
  alert's versions count 1, 2, 3, ...

A failure keeps the session's lines, so :func:`reduce` can cut them down to a reproducer.
"""

from __future__ import annotations

import io
import logging
import sys
import time
import traceback
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import orjson

from models.outputs import Alert, DeadLetter
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH
from rules.pack import DEFAULT_PACK, RuleSet, load_rules
from rules.replay import Replay, ReplayFileError
from tests.fuzz.messages import MALFORMED, TAKEN, Line

CONTRACT_CODES: Final = frozenset({
    "bad_encoding", "bad_json", "too_large", "invalid_field", "naive_timestamp",
    "bad_coordinate", "unregistered_device", "outside_map", "future_timestamp", "unknown_alert",
    "unknown_action", "illegal_transition", "bad_timestamp",
})
"""CONTRACTS.md's reason codes and ``bad_timestamp`` (a time before the input range); not
``internal_error``, which generated input must never reach."""
COUNTERS: Final = ("accepted", "ignored", "late", "duplicates")
_UNPRINTED: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Unicode categories a terminal must not get raw from input (controls, bidi overrides...)."""
ALERT_IDS_KEPT: Final = 200

logging.getLogger("rules.replay").setLevel(logging.CRITICAL)   # faults are failures here


EXTREME_PACK: Final = Path(__file__).with_name("extreme.yaml")
PACKS: Final = ("default", "extreme")


@cache
def demo(pack: str = "default") -> tuple[CityMap, RuleSet]:
    """The demo city and the default pack, as ``cityorder replay`` loads them by default; with
    ``pack="extreme"`` also tests/fuzz/extreme.yaml (every duration at a limit; sessions on it
    also cap unregistered subjects at 2 a grid)."""
    paths = [DEFAULT_PACK] if pack == "default" else [DEFAULT_PACK, EXTREME_PACK]
    return CityMap.load(GEOJSON_PATH), load_rules(paths)


@dataclass(slots=True)
class Failure:
    """What went wrong, at which line of the session, with the traceback of an exception."""

    kind: str          # crash, internal_error, accounting, expectation, output, replay_file
    message: str
    lineno: int
    line: Line | None
    traceback: str = ""

    def signature(self) -> tuple[str, str]:
        """What a reduced input must still give to count as the same failure."""
        if self.kind == "crash":
            return self.kind, self.message.split(":", 1)[0]
        return self.kind, ""

    def __str__(self) -> str:
        return f"{self.kind} at line {self.lineno}: {self.message}"


@dataclass(slots=True)
class Tally:
    """Counts over many sessions: the replay summaries added up, and own outcomes by family."""

    sessions: int = 0
    lines: int = 0
    ticks: int = 0
    malformed: int = 0
    accepted: int = 0
    ignored: int = 0
    late: int = 0
    duplicates: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    alerts_out: int = 0
    evicted: int = 0
    by_family: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def messages(self) -> int:
        return self.lines - self.ticks

    @property
    def dead_letters(self) -> int:
        return sum(self.dead.values())

    @property
    def balanced(self) -> bool:
        return (self.accepted + self.ignored + self.late + self.duplicates + self.dead_letters
                == self.messages)

    def add(self, session: Session) -> None:
        s = session.replay.summary
        self.sessions += 1
        self.lines += s.lines
        self.ticks += s.ticks
        self.malformed += session.malformed
        self.accepted += s.accepted
        self.ignored += s.ignored
        self.late += s.late
        self.duplicates += s.duplicates
        self.dead.update(s.dead)
        self.alerts_out += s.alerts_out
        self.evicted += session.replay.stats.evicted
        self.by_family.update(session.by_family)
        for f in session.failures:
            self.failures[f.kind] += 1


class Session:
    """One ``Replay`` (one clock mode, one partitioning) fed generated lines.

    ``alert_ids`` receives the id of every alert opened, for feedback to act on. A caller
    stops feeding once the session is :attr:`broken`: later lines would be checked against a
    replay in an unknown state."""

    def __init__(self, clock: str = "event", partitions: int = 4, *,
                 alert_ids: list[str] | None = None, keep_lines: bool = True,
                 validate: bool = True, pack: str = "default") -> None:
        city, rules = demo(pack)
        self.clock = clock
        self.partitions = partitions
        self.pack = pack
        # The extreme regime also caps unregistered subjects at 2 a grid, so eviction is common.
        options = {"subject_cap": 2} if pack == "extreme" else None
        self.replay = Replay(city, rules, clock=clock, partitions=partitions,
                             on_alert=self._on_alert, on_dead=self._on_dead,
                             engine_options=options)
        self.alert_ids = alert_ids if alert_ids is not None else []
        self.keep_lines = keep_lines
        self.validate = validate
        self.lines: list[Line] = []
        self.lineno = 0
        self.malformed = 0
        self.failures: list[Failure] = []
        self.by_family: Counter[tuple[str, str]] = Counter()
        self.versions: dict[str, int] = {}
        self.dead_written: Counter[str] = Counter()
        self.alerts_written = 0
        self.finished = False
        self._dead_now: list[dict[str, Any]] = []

    @property
    def broken(self) -> bool:
        return bool(self.failures)

    # -- outputs ----------------------------------------------------------------------------

    def _on_alert(self, alert: dict[str, Any]) -> None:
        self.alerts_written += 1
        try:
            orjson.dumps(alert)
            if self.validate:
                Alert.model_validate(alert)
        except Exception as e:
            self._fail("output", f"alert {alert.get('alert_id')} v{alert.get('version')} cannot "
                       f"be written: {e!r}", tb=traceback.format_exc())
        aid, version = alert.get("alert_id"), alert.get("version")
        expected = self.versions.get(aid, 0) + 1
        if version != expected:
            self._fail("output", f"alert {aid}: version {version} after {expected - 1}")
        self.versions[aid] = version
        if version == 1:
            self.alert_ids.append(aid)
            if len(self.alert_ids) > ALERT_IDS_KEPT:
                del self.alert_ids[: ALERT_IDS_KEPT // 2]

    def _on_dead(self, dead: dict[str, Any]) -> None:
        code = dead.get("reason_code")
        self.dead_written[code] += 1
        self._dead_now.append(dead)
        if code == "internal_error":
            self._fail("internal_error", f"dead letter internal_error: {dead.get('reason')}")
        elif code not in CONTRACT_CODES:
            self._fail("output", f"dead letter with reason code {code!r}, not the contract's")
        try:
            orjson.dumps(dead)
            if self.validate:
                DeadLetter.model_validate(dead)
        except Exception as e:
            self._fail("output", f"dead letter ({code}) cannot be written: {e!r}",
                       tb=traceback.format_exc())

    def _fail(self, kind: str, message: str, tb: str = "") -> None:
        line = self.lines[-1] if self.lines else None
        self.failures.append(Failure(kind, message, self.lineno, line, tb))

    # -- lines ------------------------------------------------------------------------------

    def _counts(self) -> tuple[int, ...]:
        s = self.replay.summary
        return (s.accepted, s.ignored, s.late, s.duplicates, sum(s.dead.values()), s.lines,
                s.ticks, s.faults)

    def feed(self, line: Line) -> str | None:
        """Apply one line and check it; its own outcome (None for a tick or a failure)."""
        self.lineno += 1
        if self.keep_lines:
            self.lines.append(line)
        before = self._counts()
        dead_before = Counter(self.replay.summary.dead)
        self._dead_now.clear()
        try:
            self.replay.line(line.text, self.lineno)
        except ReplayFileError as e:
            if line.family != "given" and (line.expect is None or
                                            "replay_file_error" not in line.expect):
                self._fail("replay_file", f"ReplayFileError on a well-formed line: {e}")
            elif self._counts() != before or self._dead_now:
                self._fail("accounting", f"a malformed line changed the replay: {e}")
            self.malformed += 1
            self.by_family[(line.family, "replay_file_error")] += 1
            return "replay_file_error"
        except Exception as e:
            self._fail("crash", f"{type(e).__name__}: {e}", tb=traceback.format_exc())
            return None
        if line.expect is MALFORMED:
            self._fail("expectation", f"no ReplayFileError for a malformed line ({line.what})")
            return None
        after = self._counts()
        own = self._check(line, before, after, dead_before)
        self.by_family[(line.family, own or "?")] += 1
        if own is not None and line.expect is not None and own not in line.expect and \
                not (own == "accepted/duplicate" and line.expect & {"accepted", "duplicate"}):
            self._fail("expectation", f"{line.family} line ({line.what}) became {own}, expected "
                       f"one of {sorted(line.expect)}")
        return own

    def _check(self, line: Line, before: tuple[int, ...], after: tuple[int, ...],
               dead_before: Counter[str]) -> str | None:
        s = self.replay.summary
        acc, ign, late, dup, dead, lines, ticks, faults = after
        if faults != before[7]:
            self._fail("internal_error", f"{faults - before[7]} fault(s) caught by the last line "
                       "of defence")
        tick = line.family == "tick"
        if lines != before[5] + 1 or ticks != before[6] + tick:
            self._fail("accounting", f"lines {before[5]}->{lines}, ticks {before[6]}->{ticks} "
                       f"for one {'tick' if tick else 'message'} line")
        if acc + ign + late + dup + dead != lines - ticks:
            self._fail("accounting", f"accepted {acc} + ignored {ign} + late {late} + duplicates "
                       f"{dup} + dead letters {dead} != message lines {lines - ticks}")
        for name, b, a in zip(COUNTERS[1:], before[1:4], after[1:4], strict=True):
            if a < b:
                self._fail("accounting", f"{name} went down: {b} -> {a}")
        for code, n in dead_before.items():
            if s.dead.get(code, 0) < n:
                self._fail("accounting", f"dead letters {code} went down: {n} -> {s.dead[code]}")
        if s.dead != self.dead_written:
            self._fail("accounting", f"summary dead letters {dict(s.dead)} != written "
                       f"{dict(self.dead_written)}")
        offset = self.lineno - 1
        own_dead = [d for d in self._dead_now if d.get("offset") == offset]
        moved = len(self._dead_now) - len(own_dead)   # earlier feedback, rejected now
        if tick:
            if own_dead:
                self._fail("accounting", "a tick line has a dead letter of its own")
            return "tick"
        if len(own_dead) > 1:
            self._fail("accounting", f"{len(own_dead)} dead letters for one line")
        if own_dead:
            return str(own_dead[0].get("reason_code"))
        d_acc = acc - before[0] + moved
        d_ign, d_late, d_dup = ign - before[1], late - before[2], dup - before[3]
        if d_ign == 1:
            return "ignored"
        if d_late == 1:
            return "late"
        if d_acc + d_dup == 1:
            if d_dup <= 0:
                return "accepted"
            return "duplicate" if d_acc == 0 else "accepted/duplicate"
        self._fail("accounting", f"no single outcome: accepted {d_acc:+d} ignored {d_ign:+d} "
                   f"late {d_late:+d} duplicates {d_dup:+d}")
        return None

    def finish(self, until: int | None = None, summary: bool = True) -> None:
        """End the replay (CONTRACTS.md: End of a replay; ``until`` as ``--until``), check the
        totals once more and (``summary``) print the summary ``cityorder replay`` prints."""
        if self.finished:
            return
        self.finished = True
        before = self._counts()
        self._dead_now.clear()
        try:
            self.replay.finish(until)
        except Exception as e:
            self.lineno += 1
            self._fail("crash", f"{type(e).__name__}: {e} (at finish)", tb=traceback.format_exc())
            return
        s = self.replay.summary
        if s.faults != before[7]:
            self._fail("internal_error", "fault(s) at finish")
        if s.accepted + s.ignored + s.late + s.duplicates + sum(s.dead.values()) != s.messages:
            self._fail("accounting", f"at the end: {s.accepted} + {s.ignored} + {s.late} + "
                       f"{s.duplicates} + {sum(s.dead.values())} != {s.messages}")
        if s.dead != self.dead_written:
            self._fail("accounting", f"summary dead letters {dict(s.dead)} != written "
                       f"{dict(self.dead_written)}")
        if s.alerts_out != self.alerts_written:
            self._fail("accounting", f"summary alerts {s.alerts_out} != written "
                       f"{self.alerts_written}")
        if summary:
            self._print_summary()

    def _print_summary(self) -> None:
        """``cityorder replay``'s summary must print, and escape what input put in it."""
        from streams.cli import _print_summary
        err, sys.stderr = sys.stderr, io.StringIO()
        try:
            _print_summary(self.replay, self.replay.summary, 1.0)
            text = sys.stderr.getvalue()
        except Exception as e:
            self._fail("crash", f"{type(e).__name__}: {e} (printing the summary)",
                       tb=traceback.format_exc())
            return
        finally:
            sys.stderr = err
        bad = sorted({c for c in text if c != "\n" and unicodedata.category(c) in _UNPRINTED})
        if bad:
            self._fail("output", f"the summary prints raw {', '.join(map(ascii, bad))}")


def run(lines: Sequence[Line | bytes], clock: str = "event", partitions: int = 4,
        stop_at_failure: bool = True, pack: str = "default") -> Session:
    """A fresh session over ``lines``, finished unless it failed. Bytes are taken as lines of
    any outcome (a tick if they are one), and a line the format forbids is passed over."""
    session = Session(clock, partitions, pack=pack)
    for item in lines:
        if isinstance(item, bytes):
            item = Line(item, "tick" if item.startswith(b'{"tick"') else "given", None, None)
        session.feed(item)
        if stop_at_failure and session.broken:
            return session
    session.finish()
    return session


def reduce(lines: Sequence[Line], failing: Callable[[Sequence[Line]], bool],
           budget_s: float = 60.0) -> list[Line]:
    """A shorter list of lines that still fails (delta debugging, ddmin), within ``budget_s``."""
    current = list(lines)
    n = 2
    deadline = time.monotonic() + budget_s
    while len(current) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(current) // n)
        reduced = False
        for start in range(0, len(current), chunk):
            candidate = current[:start] + current[start + chunk:]
            if candidate and failing(candidate):
                current = candidate
                n = max(n - 1, 2)
                reduced = True
                break
            if time.monotonic() >= deadline:
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(current), n * 2)
    return current


def reproduce(session: Session, budget_s: float = 60.0) -> tuple[list[Line], Failure]:
    """The session's first failure cut down to the fewest lines found that still give it (the
    same kind of failure; for a crash, the same exception type)."""
    first = session.failures[0]
    signature = first.signature()
    lines = session.lines[: first.lineno]

    def failing(candidate: Sequence[Line]) -> bool:
        s = run(candidate, session.clock, session.partitions, pack=session.pack)
        return any(f.signature() == signature for f in s.failures)

    if not failing(lines):
        return lines, first
    small = reduce(lines, failing, budget_s)
    s = run(small, session.clock, session.partitions, pack=session.pack)
    found = next(f for f in s.failures if f.signature() == signature)
    return small, found


def describe(lines: Sequence[Line | bytes], failure: Failure, clock: str, partitions: int,
             limit: int = 600, pack: str = "default") -> str:
    """A reproducer as text: the replay options, the lines (each cut to ``limit`` bytes), the
    failure and its traceback."""
    rules = "" if pack == "default" else \
        " --rules rules/packs/default --rules tests/fuzz/extreme.yaml"
    out = [f"{failure}", f"reproduce with: cityorder replay FILE --clock {clock} "
           f"--partitions {partitions}{rules}   ({len(lines)} line(s)):"]
    for item in lines:
        text = item.text if isinstance(item, Line) else item
        shown = text if len(text) <= limit else text[:limit] + b"... (%d bytes)" % len(text)
        out.append("  " + shown.decode("utf-8", "backslashreplace"))
    if failure.line is not None and failure.line.what:
        out.append(f"(the last line: {failure.line.family}, {failure.line.what})")
    if failure.traceback:
        out.append(failure.traceback.rstrip())
    return "\n".join(out)


__all__ = ["CONTRACT_CODES", "TAKEN", "Failure", "Session", "Tally", "demo", "describe",
           "reduce", "reproduce", "run"]
