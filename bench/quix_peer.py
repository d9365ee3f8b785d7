"""The peer in the runtime benchmark: a quixstreams application over the same topic.

A 10 s tumbling count per key (camera) of ``city.events.camera`` messages, by their Kafka
timestamps (CreateTime = observed_at), with RocksDB state and at-least-once commits: about
the least a stream processor does with each message, in the library cityorder is most often
compared with. It drains a backlog the benchmark produced and prints one JSON line:
messages, the seconds from the first message processed to the last, and closed windows.

quixstreams 3.28 pins pydantic below cityorder's, so this runs in a venv of its own
(``.venv-peer``, made by ``make bench-runtime``) and imports nothing of cityorder::

    .venv-peer/bin/python bench/quix_peer.py --brokers localhost:9092 --topic T --messages N
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from typing import Any


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/quix_peer.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--messages", type=int, required=True, help="stop after this many")
    ap.add_argument("--window-ms", type=int, default=10_000)
    args = ap.parse_args()

    from quixstreams import Application
    from quixstreams.models.topics.manager import TopicManager

    # Tansu reports no ``retention.ms`` for a topic, which quixstreams copies to a window's
    # changelog: default it to Kafka's "unlimited" rather than fail.
    derive = TopicManager.derive_topic_config

    def derive_on_tansu(cls: type, topics: Any) -> Any:
        for t in topics:
            t.broker_config.extra_config.setdefault("retention.ms", "-1")
        return derive(topics)

    TopicManager.derive_topic_config = classmethod(derive_on_tansu)  # type: ignore[method-assign,assignment]

    state_dir = tempfile.mkdtemp(prefix="quix-peer-")
    app = Application(broker_address=args.brokers, consumer_group=f"quix-peer-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                      processing_guarantee="at-least-once")
    topic = app.topic(args.topic, value_deserializer="json")
    sdf = app.dataframe(topic)
    seen = {"n": 0, "first": 0.0, "last": 0.0, "windows": 0}

    def counted(value: Any) -> None:
        if seen["n"] == 0:
            seen["first"] = time.perf_counter()
        seen["n"] += 1
        if seen["n"] >= args.messages:
            seen["last"] = time.perf_counter()
            app.stop()

    def closed(value: Any) -> None:
        seen["windows"] += 1

    sdf = sdf.update(counted)
    sdf = sdf.tumbling_window(duration_ms=args.window_ms).count().final()
    sdf = sdf.update(closed)
    app.run()
    seconds = seen["last"] - seen["first"]
    print(json.dumps({"messages": seen["n"], "seconds": seconds, "windows": seen["windows"],
                      "events_per_s": seen["n"] / seconds if seconds > 0 else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
