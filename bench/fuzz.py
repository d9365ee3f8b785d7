"""Fuzz run on demand: a million generated replay lines through ``cityorder replay``'s path.

The lines come from the same building blocks as the suite's hypothesis strategies
(tests/fuzz/messages.py: valid, duplicate, boundary and mutated messages of the four input
topics, ticks, malformed lines), drawn directly from a seeded ``random.Random`` instead of
hypothesis's engine, for throughput. They are replayed in sessions of a few hundred to a few
thousand lines, each a fresh ``rules.replay.Replay`` (clock ``event`` or ``wall``, the worker's
4 partitions or 1), and every line is checked as in the suite (tests/fuzz/check.py): nothing
escapes but ``ReplayFileError`` for a malformed line, exactly one outcome per line with a
contract reason code for a dead letter, no ``internal_error``, the summary adds up after every
line, outputs are valid and can be written as JSON. Feedback names alerts the session opened.

::

    .venv/bin/python -m bench.fuzz                          # 1,000,000 lines, seed 1
    .venv/bin/python -m bench.fuzz --lines 50000 --seed 7
    .venv/bin/python -m bench.fuzz --seed 7 --session 12    # replay one session only

Prints progress every few seconds, then lines/s, the accounting table, outcomes by family,
failures by kind and the first failure's reproducer, cut down by delta debugging. Exits 1 on
any failure or if the totals do not add up.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.timestamps import MAX_TIMESTAMP_MS
from streams.tuning import tune_gc
from tests.fuzz.check import PACKS, Session, Tally, demo, describe, reproduce
from tests.fuzz.known import OPEN
from tests.fuzz.messages import Gen, RandomDraw

SESSION_LINES = (200, 5_000)
ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class Plan:
    """Session ``index`` of run ``seed``: its own seed, clock, partitions, length and
    ``--until``, so any session can be replayed alone (``--session``)."""

    index: int
    seed: int
    clock: str
    partitions: int
    length: int
    until: str      # "", "after" (an hour past the last input) or "end" (the range's end)
    pack: str       # "default", or "extreme": the default pack and tests/fuzz/extreme.yaml

    @classmethod
    def of(cls, seed: int, index: int) -> Plan:
        rng = random.Random(f"cityorder-fuzz:{seed}:{index}")
        return cls(index, rng.getrandbits(63), "event" if index % 2 == 0 else "wall",
                   rng.choice((4, 4, 4, 1, 2)), rng.randint(*SESSION_LINES),
                   rng.choice(("", "", "", "", "", "", "", "", "after", "end")),
                   rng.choice(("default", "default", "extreme")))

    def until_ms(self, gen: Gen) -> int | None:
        if self.until == "after":
            return gen.tl.now + 3_600_000
        if self.until == "end":
            return MAX_TIMESTAMP_MS - 1
        return None


def sessions(seed: int, total: int, only: int | None,
             avoid: frozenset[str]) -> Iterator[tuple[Plan, Gen, Session]]:
    index = 0 if only is None else only
    made = 0
    while made < total:
        plan = Plan.of(seed, index)
        gen = Gen(RandomDraw(plan.seed), clock=plan.clock, avoid=avoid)
        yield plan, gen, Session(plan.clock, plan.partitions, alert_ids=gen.tl.alert_ids,
                                 pack=plan.pack)
        made += plan.length
        if only is not None:
            return
        index += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines to generate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--session", type=int, default=None,
                        help="run only this session of the seed's run (to reproduce a failure)")
    parser.add_argument("--avoid", action="append", default=[], choices=[*OPEN, "open"],
                        help="do not generate the inputs of this open bug (tests/fuzz/known.py); "
                             "'open': of every open bug")
    parser.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--reduce-budget", type=float, default=60.0,
                        help="seconds to spend cutting each distinct failure down to a reproducer")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip validating every output against the output models")
    args = parser.parse_args(argv)
    avoid = frozenset(OPEN if "open" in args.avoid else args.avoid)

    tune_gc()   # as every cityorder command runs
    for pack in PACKS:
        demo(pack)  # load the map and the packs before timing
    tally = Tally()
    by_clock: Counter[str] = Counter()
    by_pack: Counter[str] = Counter()
    distinct: dict[tuple[str, str], tuple[Plan, Session]] = {}
    failed_sessions = 0
    started = last = time.perf_counter()
    generated = 0
    total = args.lines if args.session is None else 10 ** 9
    for plan, gen, session in sessions(args.seed, total, args.session, avoid):
        session.validate = not args.no_validate
        for _ in range(min(plan.length, total - generated)):
            session.feed(gen.line())
            generated += 1
            if session.broken:
                break
            now = time.perf_counter()
            if now - last >= args.progress:
                last = now
                failures = sum(tally.failures.values()) + len(session.failures)
                print(f"  {generated:>9,} lines  {generated / (now - started):>7,.0f} lines/s  "
                      f"session {plan.index} ({session.clock}, {session.partitions} partitions)  "
                      f"failures {failures}", file=sys.stderr, flush=True)
        if not session.broken:
            session.finish(plan.until_ms(gen))
        if session.broken:
            failed_sessions += 1
            distinct.setdefault(_signature(session), (plan, session))
        else:
            session.lines.clear()
        by_clock[session.clock] += session.lineno
        by_pack[plan.pack] += session.lineno
        tally.add(session)
    elapsed = time.perf_counter() - started
    report(args, tally, by_clock, by_pack, generated, elapsed, failed_sessions, avoid)
    for n, (sig, (plan, session)) in enumerate(distinct.items(), 1):
        if n > 5:
            print(f"\n... and {len(distinct) - 5} more distinct failures")
            break
        print(f"\nfailure {n} of {len(distinct)} distinct ({sig[0]} {sig[1]}): seed {args.seed}, "
              f"session {plan.index} (python -m bench.fuzz --seed {args.seed} --session "
              f"{plan.index}):")
        small, failure = reproduce(session, args.reduce_budget)
        print(describe(small, failure, session.clock, session.partitions, pack=session.pack))
    ok = not distinct and tally.balanced
    print(f"\nverdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def _signature(session: Session) -> tuple[str, str]:
    """Failures of one kind at the same place (exception type and innermost frame of a crash;
    the message of another failure, numbers left out) count as one."""
    f = session.failures[0]
    if f.kind == "crash" and f.traceback:
        frames = [ln.strip() for ln in f.traceback.splitlines()
                  if ln.strip().startswith(f'File "{ROOT}') and "/tests/fuzz/" not in ln]
        return f.kind, f"{f.message.split(':', 1)[0]} at {frames[-1] if frames else '?'}"
    return f.kind, "".join(c for c in f.message if not c.isdigit())[:120]


def report(args: Any, t: Tally, by_clock: Counter[str], by_pack: Counter[str], generated: int,
           elapsed: float, failed_sessions: int, avoid: frozenset[str]) -> None:
    crashes = t.failures.get("crash", 0) + t.failures.get("internal_error", 0)
    print(f"fuzz: seed {args.seed}, {generated:,} lines generated in {elapsed:,.1f} s "
          f"({generated / elapsed:,.0f} lines/s, one core) on CPython {platform.python_version()}")
    if avoid:
        print(f"  not generated (open bugs, tests/fuzz/known.py): {', '.join(sorted(avoid))}")
    print(f"  {t.sessions} sessions; lines by clock: "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(by_clock.items()))
          + "; by pack: " + ", ".join(f"{k} {v:,}" for k, v in sorted(by_pack.items())))
    print(f"  crashes (exceptions, internal_error): {crashes}; other failures: "
          + (", ".join(f"{k} {v}" for k, v in sorted(t.failures.items())
                       if k not in ("crash", "internal_error")) or "none")
          + f"; sessions with a failure: {failed_sessions}")
    print("\naccounting (the replay summaries added up):")
    rows = [("lines read", t.lines), ("  ticks", t.ticks), ("  message lines", t.messages),
            ("accepted", t.accepted), ("ignored", t.ignored), ("late", t.late),
            ("duplicates", t.duplicates), ("dead letters", t.dead_letters)]
    rows += [(f"  {code}", n) for code, n in sorted(t.dead.items(), key=lambda kv: -kv[1])]
    rows += [("malformed lines (ReplayFileError, not read)", t.malformed),
             ("alert messages", t.alerts_out), ("subjects evicted (the per-grid cap)", t.evicted)]
    width = max(len(r[0]) for r in rows)
    for name, n in rows:
        print(f"  {name:<{width}}  {n:>11,}")
    total = t.accepted + t.ignored + t.late + t.duplicates + t.dead_letters
    print(f"  accepted + ignored + late + duplicates + dead letters = {total:,} "
          f"{'==' if t.balanced else '!='} message lines {t.messages:,}")
    print("\nown outcome of each line, by family:")
    families = sorted({f for f, _ in t.by_family})
    outcomes = sorted({o for _, o in t.by_family}, key=lambda o: (o not in _TAKEN_ORDER, _order(o), o))
    head = f"  {'outcome':<22}" + "".join(f"{f:>11}" for f in families)
    print(head)
    for o in outcomes:
        print(f"  {o:<22}" + "".join(f"{t.by_family.get((f, o), 0):>11,}" for f in families))


_TAKEN_ORDER = ("accepted", "ignored", "late", "duplicate", "accepted/duplicate")


def _order(outcome: str) -> int:
    return _TAKEN_ORDER.index(outcome) if outcome in _TAKEN_ORDER else 99


if __name__ == "__main__":
    raise SystemExit(main())
