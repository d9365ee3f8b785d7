"""Webhook delivery: transitions per second to a local receiver (``make bench-webhooks``).

Everything real: the embedded broker holds ``--transitions`` alert messages on ``city.alerts``;
``cityorder webhooks run`` (its own process, pinned to one core with ``--cpu``) reads them
from the start and POSTs each to a local HTTP receiver (tests/webhook_receiver.py, in this
process: it checks every signature and records every delivery). The rate is counted from the
first delivery to the last, so the consumer group's join (about 5 s on the embedded broker) is
left out; the wall time from the process's start is printed too. Target (issue 17): at least
1,000 transitions/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from streams.broker import EmbeddedBroker
from streams.dev import free_port
from streams.settings import Settings
from streams.topics import default_topics, ensure_topics
from tests.webhook_receiver import Receiver, encoded, keys_of, produce_alerts, transitions

TARGET = 1_000
SECRET = "bench-secret-0123456789abcdef"
VERSIONS = 5


def one_run(broker: EmbeddedBroker, n: int, fmt: str, concurrency: int, cpu: int | None,
            latency_ms: float, logs: Path) -> tuple[float, float]:
    """(transitions/s from first to last delivery, seconds from the process's start)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    settings = Settings.from_env({}, brokers=broker.url, topic_prefix=prefix, store="memory",
                                 city=DEMO_CITY, state_dir=logs / prefix)
    messages = transitions(n // VERSIONS, VERSIONS)
    asyncio.run(ensure_topics(settings, default_topics(settings)))
    asyncio.run(produce_alerts(settings, encoded(messages)))
    server = Receiver(SECRET.encode(), free_port(0))
    server.behaviour.slow_s = latency_ms / 1000
    server.start()
    config = logs / f"{prefix}receivers.yml"
    config.write_text(f"""receivers:
  - name: bench
    url: {server.url()}
    secret_env: HOOK_SECRET
    format: {fmt}
    concurrency: {concurrency}
    max_in_flight: 5000
    start: earliest
""", encoding="utf-8")
    argv = [sys.executable, "-m", "streams.cli", "webhooks", "run", str(config), "--web-port",
            str(free_port(0)), "--loglevel", "warning"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYORDER_")} | settings.to_env()
    started = time.monotonic()
    with (logs / f"{prefix}webhooks.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env | {"HOOK_SECRET": SECRET}, stdout=log, stderr=subprocess.STDOUT)
        try:
            missing = server.wait_for(keys_of(messages), timeout=600)
            if missing:
                raise SystemExit(f"{len(missing)} transitions never arrived; see {log.name}")
        finally:
            proc.terminate()
            proc.wait(20)
            server.close()
    deliveries = server.deliveries()
    if server.bad_signatures:
        raise SystemExit(f"{server.bad_signatures} deliveries with a bad signature")
    first, last = min(d.at for d in deliveries), max(d.at for d in deliveries)
    return len(deliveries) / (last - first), last - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.webhooks_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--transitions", type=int, default=20_000, help="per run (default 20,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per format; the median is reported (default 3)")
    ap.add_argument("--format", choices=["json", "cap", "both"], default="both")
    ap.add_argument("--concurrency", type=int, default=16, help="the receiver's concurrency (default 16)")
    ap.add_argument("--cpu", type=int, default=None, help="pin the webhooks process to this core (taskset)")
    ap.add_argument("--latency", type=float, default=0.0, metavar="MS",
                    help="the receiver takes this long to answer each request (default 0)")
    args = ap.parse_args(argv)
    formats = ["json", "cap"] if args.format == "both" else [args.format]
    logs = Path(tempfile.mkdtemp(prefix="cityorder-bench-webhooks-"))
    broker = EmbeddedBroker(log_dir=logs / "broker")
    broker.start()
    print(f"webhook delivery: {args.transitions:,} transitions a run, {args.runs} runs, concurrency "
          f"{args.concurrency}, receiver latency {args.latency:g} ms, cpu "
          f"{args.cpu if args.cpu is not None else 'any'}; logs in {logs}")
    failed = False
    try:
        for fmt in formats:
            rates, walls = [], []
            for run in range(1, args.runs + 1):
                rate, wall = one_run(broker, args.transitions, fmt, args.concurrency, args.cpu, args.latency,
                                     logs)
                rates.append(rate)
                walls.append(wall)
                print(f"  {fmt} run {run}: {rate:,.0f} transitions/s ({wall:.1f} s from the process's start)",
                      flush=True)
            median = statistics.median(rates)
            ok = median >= TARGET
            failed |= not ok
            print(f"{fmt}: median {median:,.0f} transitions/s (min {min(rates):,.0f}, "
                  f"max {max(rates):,.0f}); target {TARGET:,}: {'met' if ok else 'NOT met'}")
    finally:
        broker.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
