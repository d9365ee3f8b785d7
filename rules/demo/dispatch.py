"""A simulated operations centre that answers the alerts of a demo day: the closed loop.

Feedback needs alert ids, and alert ids exist only once the engine has opened the alerts, so
the day is generated in one pass *through* the engine: each input line is fed to a replay as
it is written, and every alert it opens schedules the centre's reaction (acknowledge,
dispatch to a team, resolve, verify; sometimes a false alarm, a deferral, a rework, or nobody
answering so that escalation shows) as feedback lines merged back into the stream in time
order. The file written is exactly what was fed, so replaying it gives the same alerts.

Every choice is drawn from a generator seeded by the seed and the alert id: the same seed
gives the same day, byte for byte.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from models.timestamps import parse_timestamp_ms
from models.vocabulary import FEEDBACK_TOPIC
from rules.citymap import CityMap
from rules.demo.day import TICK_AFTER_MS, generate_events
from rules.pack import load_rules
from rules.replay import Replay

MINUTE = 60_000
DELIVERY_MS = 300


class Centre:
    """Decides, per alert, what the duty officers and field teams do and when."""

    def __init__(self, city: CityMap, seed: int) -> None:
        self.city = city
        self.seed = seed
        self.ids = itertools.count(1)
        self.queue: list[tuple[int, int, dict[str, Any]]] = []

    def on_alert(self, alert: dict[str, Any]) -> None:
        if alert["transition"] not in ("opened", "reopened"):
            return
        rng = random.Random(f"{self.seed}/{alert['alert_id']}/{alert['version']}")
        aid, t = alert["alert_id"], parse_timestamp_ms(alert["at"])
        team = f"{alert['responsible_unit']}-{rng.randint(1, 4)}组"
        if alert["transition"] == "reopened":
            t += rng.randint(5, 30) * MINUTE
            self._send(t, aid, "dispatch", rng, assignee=team, note="返工，重新派单")
            self._send(t + rng.randint(20, 60) * MINUTE, aid, "resolve", rng, note="已整改")
            return
        roll = rng.random()
        if roll < 0.12:
            return  # nobody answers: the policy escalates
        t += rng.randint(1, 20) * MINUTE
        self._send(t, aid, "acknowledge", rng, note="已接收")
        if roll < 0.20:
            self._send(t + rng.randint(1, 5) * MINUTE, aid, "reject", rng, note="误报：核实无此情况")
            return
        if roll < 0.25:
            until = t + rng.randint(60, 180) * MINUTE
            self._send(t + MINUTE, aid, "defer", rng, note="夜间统一处置", until=until)
            t = until
        t += rng.randint(1, 8) * MINUTE
        self._send(t, aid, "dispatch", rng, assignee=team, note="已派单")
        t += rng.randint(10, 90) * MINUTE
        self._send(t, aid, "resolve", rng, note="已处置",
                   photos=[f"https://evidence.example/done/{aid}.jpg"])
        t += rng.randint(10, 40) * MINUTE
        self._send(t, aid, "reopen" if rng.random() < 0.1 else "verify", rng,
                   note="核查未通过" if rng.random() < 0.1 else "核查通过")

    def _send(self, t: int, alert_id: str, action: str, rng: random.Random, **extra: Any) -> None:
        fmt = self.city.calendar.format
        value: dict[str, Any] = {"event_id": f"fb-{self.seed}-{next(self.ids):06d}",
                                 "alert_id": alert_id, "action": action,
                                 "actor": f"duty-officer-{rng.randint(1, 9)}", "at": fmt(t)}
        for key, v in extra.items():
            value[key] = fmt(v) if key == "until" else v
        arrival = t + DELIVERY_MS
        line = {"topic": FEEDBACK_TOPIC, "key": alert_id, "value": value, "arrival": fmt(arrival)}
        heapq.heappush(self.queue, (arrival, next(self.ids), line))


def generate_with_feedback(city_path: Path, pack_path: Path, day: date, seed: int,
                           scale: float = 1.0) -> Iterator[dict[str, Any]]:
    """The demo day's replay lines with the centre's feedback merged in, then a closing tick."""
    city = CityMap.load(city_path)
    rules = load_rules([pack_path])
    centre = Centre(city, seed)
    replay = Replay(city, rules, clock="event", on_alert=centre.on_alert, on_dead=lambda d: None)
    events = iter(generate_events(city_path, day, seed, scale))
    upcoming = next(events, None)
    last = None
    n = 0
    # The recording ends with the day's last input: feedback planned after it is not sent (were
    # it sent, the clock would run on past the day and every device would look silent).
    while upcoming is not None:
        if centre.queue and centre.queue[0][0] < upcoming[0]:
            arrival, _, line = heapq.heappop(centre.queue)
        else:
            arrival, line = upcoming
            upcoming = next(events, None)
        n += 1
        replay.line(orjson.dumps(line), n)
        last = arrival if last is None else max(last, arrival)
        yield line
    if last is not None:
        yield {"tick": city.calendar.format(last + TICK_AFTER_MS)}
