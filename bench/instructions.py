"""Instructions per event of ingest and of the engine, counted by valgrind's cachegrind.

Why: on a shared machine the engine benchmark's figures move by 20-30% from run to run,
so a change worth 5% cannot be told from noise by timing it. The number of instructions
the interpreter executes for the same input is the same from run to run (to ~1.5%, with
``PYTHONHASHSEED`` fixed), so it can: a change that removes work removes instructions.
It is not time (a cache miss costs more than an add), so a kept change is also timed with
``bench.engine_bench``; but it is what decides between two versions of a hot path. Run on
demand::

    .venv/bin/python -m bench.instructions                          # 20k events: ingest, engine
    .venv/bin/python -m bench.instructions --without evidence,apply   # what each step costs
    .venv/bin/python -m bench.instructions --stages engine,tracked    # + as a worker runs it
    .venv/bin/python -m bench.instructions --stages checkpointed      # + its checkpoints

The workload is ``bench.engine_bench``'s (camera messages for the demo city, one track
re-seen every 30 s), built and ingested outside valgrind and handed over in a file. Each
figure is the difference between two runs under cachegrind, one that only loads its input
and one that also processes it, so the interpreter's start, the imports and the loading
cancel out. ``--without`` replaces one engine step by a no-op (outputs then differ: an
estimate of the step's cost, the way the engine's cost was broken down in issue 18).
Needs valgrind (Debian: ``apt-get install valgrind``), ~1 min for each figure.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Engine steps ``--without`` can take out, each replaced by a no-op: (module, class,
#: method, replacement).
STEPS: dict[str, tuple[str, str, str, Callable[..., Any]]] = {
    "evidence": ("rules.evidence", "Evidence", "add", lambda self, item, zones: True),
    "matched": ("rules.engine", "Engine", "matched", lambda self, *a: None),
    "liveness": ("rules.engine", "Engine", "_liveness", lambda self, g, inp: None),
    "observation": ("rules.engine", "Engine", "_observation", lambda self, *a: None),
    "apply": ("rules.engine", "Engine", "_apply", lambda self, inp: None),
    # These two change no output of this workload (it has no re-read or repeated event).
    "redelivered": ("rules.engine", "Engine", "_redelivered", lambda self, inp: False),
    "duplicate": ("rules.engine", "Engine", "_duplicate", lambda self, inp, progress: False),
}
STAGES = ("ingest", "engine", "tracked", "checkpointed")
LABELS = {"tracked": "engine, tracking changes", "checkpointed": "engine, checkpointing"}
#: Parts between two checkpoints of the ``checkpointed`` stage. A worker checkpoints every 30 s
#: (CITYORDER_CHECKPOINT_INTERVAL), ~300,000 parts into a drain; a checkpoint's cost is mostly
#: the subjects that changed, so more often than that is the dearer case.
CHECKPOINT_PARTS = 10_000
_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def prepare(events: int, seed: int, into: Path) -> tuple[int, int]:
    """The workload's messages and the parts ingest makes of them, pickled for the child
    runs; (messages, parts)."""
    from bench import engine_bench as eb

    w = eb.build_workload(events, max(events // 6, 100), seed, 30.0, 0.01, 5, 1000)
    city, rules = eb._fresh()
    ingest = eb.Ingest(city, rules, clock="event")
    parts: list[Any] = []
    for i, raw in enumerate(w.messages):
        parts += ingest(eb.Source.CAMERA, eb.TOPIC, raw, key=w.keys[i], arrival=None, partition=0,
                        offset=i)
    with (into / "messages.pickle").open("wb") as f:
        pickle.dump((w.messages, w.keys), f)
    with (into / "parts.pickle").open("wb") as f:
        pickle.dump(parts, f)
    return len(w.messages), len(parts)


def child(stage: str, data: Path, work: bool, without: list[str]) -> int:
    """One counted run: load the stage's input and, if ``work``, process it; what it did
    (parts made by ingest, parts applied by the engine), so that a run that did nothing
    cannot pass for a cheap one."""
    import importlib

    from bench import engine_bench as eb
    from rules.engine import take

    for name in without:
        module, cls, method, stub = STEPS[name]
        setattr(getattr(importlib.import_module(module), cls), method, stub)
    city, rules = eb._fresh()
    if stage == "ingest":
        ingest = eb.Ingest(city, rules, clock="event")
        with (data / "messages.pickle").open("rb") as f:
            messages, keys = pickle.load(f)
        made = 0
        if work:
            with eb._tuned_gc():
                for i, raw in enumerate(messages):
                    made += len(ingest(eb.Source.CAMERA, eb.TOPIC, raw, key=keys[i], arrival=None,
                                       partition=0, offset=i))
        return made
    engine = eb.Engine(city, rules, clock="event", track_changes=stage in ("tracked", "checkpointed"))
    with (data / "parts.pickle").open("rb") as f:
        parts = pickle.load(f)
    written = 0

    def checkpoint() -> int:
        """As a worker's: the records that changed, pickled (rules.engine.Snapshot)."""
        return sum(len(value) for _, value in take(engine, changed_only=True).records())

    if work:
        with eb._tuned_gc():
            for j in range(0, len(parts), eb.BATCH):
                engine.feed_batch(parts[j:j + eb.BATCH])
                if stage == "checkpointed" and (j + eb.BATCH) % CHECKPOINT_PARTS == 0:
                    written += checkpoint()
            engine.finish()
            if stage == "checkpointed":
                written += checkpoint()
                if not written:
                    raise SystemExit("bench.instructions: the checkpointed run wrote no checkpoint")
    return engine.stats.applied


def count(stage: str, data: Path, work: bool, without: list[str]) -> int:
    """Instructions of one child run under cachegrind."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, "-m", "bench.instructions", "--child", stage, "--data", str(data)]
    if work:
        cmd.append("--work")
    if without:
        cmd += ["--without", ",".join(without)]
    # main has made PYTHONHASHSEED=0 this process's, and so the child's
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    found = _IREFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"bench.instructions: the {stage} run under valgrind failed "
                         f"(exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0],
                                epilog="Method and figures: bench/README.md, section Instructions.")
    p.add_argument("--events", type=int, default=20_000, help="camera messages (default 20k)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stages", default="ingest,engine",
                   help=f"of {', '.join(STAGES)}, comma-separated (default: ingest,engine); tracked "
                   "is the engine as a worker runs it, tracking what changed for its checkpoints; "
                   f"checkpointed that and a checkpoint every {CHECKPOINT_PARTS:,} parts")
    p.add_argument("--without", default="",
                   help=f"engine steps to take out, comma-separated: {', '.join(STEPS)}; "
                   "each is counted apart beside the whole engine")
    p.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    without = [s for s in a.without.split(",") if s]
    unknown = [s for s in without if s not in STEPS]
    if unknown:
        p.error(f"--without: no step {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    if a.child:
        print(f"{a.child}: {child(a.child, a.data, a.work, without):,}")
        return 0
    stages = [s for s in a.stages.split(",") if s]
    if not set(stages) <= set(STAGES) or not stages:
        p.error(f"--stages: one or more of {', '.join(STAGES)}")
    if os.environ.get("PYTHONHASHSEED") != "0":
        # The workload is built here, and sets of strings iterate in their hashes' order: the
        # same seed would otherwise build a slightly different workload each run (±2%).
        os.execve(sys.executable, [sys.executable, "-m", "bench.instructions", *(argv or sys.argv[1:])],
                  dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT)))
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind: apt-get install valgrind (Debian)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cityorder-instructions-") as tmp:
        data = Path(tmp)
        print(f"building {a.events:,} camera messages (seed {a.seed}) and their parts ...", flush=True)
        messages, parts = prepare(a.events, a.seed, data)
        print(f"{messages:,} messages, {parts:,} parts; each figure is two runs under valgrind", flush=True)
        runs = [(s, []) for s in stages] + [("engine", [w]) for w in without]
        for stage, out in runs:
            per = messages if stage == "ingest" else parts
            base = count(stage, data, False, out)
            total = count(stage, data, True, out)
            label = f"engine without {out[0]}" if out else LABELS.get(stage, stage)
            unit = "message" if stage == "ingest" else "part"
            print(f"{label:28s} {(total - base) / per:>10,.0f} instructions a {unit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
