"""Random kill runs, on demand (issue 13, item 7): as many as asked, each a whole demo day.

Each run (``tests/e2e/chaos.py``) produces part of the day before two event-clock workers
start and the rest while they run, SIGKILLs a worker at random moments (start-up and recovery
included) and starts it again, then checks the output against ``cityorder replay`` of the
recording: every version and its content, no version gaps, no part behind its frontier in the
internal log, no input late. One line per run, a summary, exit 1 if any run failed::

    .venv/bin/python -m bench.kill                       # 10 runs, seeds 1-10, 4 kills each
    .venv/bin/python -m bench.kill --runs 3 --seed 42 --kills 6 --window 20

The embedded broker is started and stopped by the script; every run has its own topics.
A failing run names its seed: ``--runs 1 --seed N`` runs it again.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.demo.dispatch import generate_with_feedback
from rules.pack import DEFAULT_PACK
from streams.broker import EmbeddedBroker
from streams.settings import Settings
from tests.e2e import chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="how many runs (default 10)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the first run; the next add 1 (default 1)")
    parser.add_argument("--kills", type=int, default=4, help="SIGKILLs per run (default 4)")
    parser.add_argument("--window", type=float, default=12.0,
                        help="seconds after both workers are ready within which the kills fall "
                             "(default 12: two workers take ~15 s over the day)")
    args = parser.parse_args(argv)
    day = [x for x in generate_with_feedback(DEMO_CITY, DEFAULT_PACK, date(2026, 11, 20), 7)
           if "tick" not in x]
    failed = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cityorder-kill-") as tmp, \
            EmbeddedBroker(log_dir=Path(tmp) / "broker") as broker:
        for n in range(args.runs):
            seed = args.seed + n
            run_dir = Path(tmp) / f"run-{seed}"
            run_dir.mkdir()
            prefix = f"kill-{seed}-{uuid.uuid4().hex[:6]}."
            settings = Settings.from_env({}, brokers=broker.url, topic_prefix=prefix, store="memory",
                                         city=DEMO_CITY, state_dir=run_dir / "state",
                                         checkpoint_interval="1s")
            print(f"run {n + 1}/{args.runs} (seed {seed}) ...", flush=True)
            result = chaos.run(settings, run_dir, day, seed, kills=args.kills, window_s=args.window)
            print(result.describe(), flush=True)
            if not result.ok:
                failed += 1
                for log in sorted(run_dir.glob("*.log")):
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    print(f"--- last lines of {log.name}:\n" + "\n".join(tail))
    print(f"{args.runs - failed} of {args.runs} runs gave the replay's output "
          f"({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
