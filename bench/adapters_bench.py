"""Camera adapters: messages converted per second on one core (``make bench-adapters``).

What a running adapter does for each source record, minus the brokers: parse the platform's
message, place its boxes (calibration), build the contract message, check it as the worker
would (``models.decode``), and encode it. Target (issue 17): at least 20,000 messages/s on one
core for each input adapter. The samples are the recorded ones in tests/adapters/samples/, with
the track ids and frame numbers varied so no two messages are equal (Frigate's: a new, an
update and an end in turn, the end a heartbeat with no box to place).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from adapters.deepstream import DeepStream
from adapters.frigate import Frigate
from adapters.placing import Placer
from models.decode import BadInput
from tests.pinhole import calibrated_city

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "adapters" / "samples"
TARGET = 20_000


def workloads(n: int) -> dict[str, tuple[Callable[[Placer], Callable[[bytes], object]], list[bytes]]]:
    full = json.loads((SAMPLES / "deepstream_full.json").read_text(encoding="utf-8"))
    minimal = json.loads((SAMPLES / "deepstream_minimal.json").read_text(encoding="utf-8"))
    frigate = [json.loads(line) for line in (SAMPLES / "frigate_events.jsonl").read_text(encoding="utf-8")
               .splitlines()]
    frigate_messages = []
    for i in range(n):
        event = json.loads(json.dumps(frigate[i % len(frigate)]))
        event["after"] |= {"camera": "cam-0012", "id": f"{event['after']['id']}-{i}"}
        frigate_messages.append(orjson.dumps(event))
    return {
        "deepstream full (1 object)": (DeepStream, [orjson.dumps(full | {"messageid": f"m-{i}"})
                                                    for i in range(n)]),
        "deepstream minimal (3 objects)": (DeepStream, [orjson.dumps(minimal | {"id": str(i)})
                                                        for i in range(n)]),
        "frigate new/update/end": (Frigate, frigate_messages),
    }


def rate(convert: Callable[[bytes], object], messages: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in messages:
        out = convert(raw)
        if isinstance(out, BadInput):
            raise SystemExit(f"a benchmark message was refused: {out}")
        orjson.dumps(out)
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000, help="per workload and run")
    parser.add_argument("--runs", type=int, default=5, help="the median is reported")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU (one core)")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    city, _ = calibrated_city()
    print(f"{args.messages:,} messages a run, median of {args.runs}; target >= {TARGET:,}/s on one core")
    for name, (adapter, messages) in workloads(args.messages).items():
        convert = adapter(Placer(city))
        rate(convert, messages[:2000])            # warm caches
        rates = [rate(convert, messages) for _ in range(args.runs)]
        median = statistics.median(rates)
        verdict = "PASS" if median >= TARGET else f"SHORT, {TARGET / median:.1f}x"
        print(f"  {name:32} {median:>10,.0f} messages/s  ({1e6 / median:.1f} µs each)  {verdict}")


if __name__ == "__main__":
    main()
