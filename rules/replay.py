"""Replay a recorded input log (RULES.md, the replay file) through ingest and the engine.

The same code path as a live worker's partition, minus Kafka: each line is one message as
it arrived (or a clock tick), so a replay of a recording gives the messages the live run
gave, on every field but ``emitted_at``.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.decode import TOPIC_SOURCES, BadInput
from models.outputs import deadletter_payload
from models.timestamps import parse_timestamp_ms as parse_timestamp
from rules.citymap import CityMap
from rules.engine import DeadOut, Engine
from rules.ingest import Ingest
from rules.pack import RuleSet


class ReplayFileError(ValueError):
    """A line of the replay file itself is malformed (not an input message that is bad)."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")


@dataclass(frozen=True, slots=True)
class Message:
    """One line of a replay file: an input message as it arrived, or a tick."""

    topic: str | None
    key: str | None
    payload: bytes
    arrival: int | None
    tick: int | None = None


def parse_line(text: str | bytes, source: str = "<replay>", line: int = 0) -> Message:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ReplayFileError(source, line, f"not a JSON object ({e})") from None
    if not isinstance(obj, dict):
        raise ReplayFileError(source, line, "each line must be a JSON object")
    if "tick" in obj:
        return Message(None, None, b"", None, tick=_time(obj["tick"], source, line, "tick"))
    topic = obj.get("topic")
    if not isinstance(topic, str):
        raise ReplayFileError(source, line, "'topic' is missing (or write a {\"tick\": TIME} line)")
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise ReplayFileError(source, line, "'key' must be a string or null")
    if "value" in obj:
        payload = orjson.dumps(obj["value"])
    elif "raw" in obj:
        if not isinstance(obj["raw"], str):
            raise ReplayFileError(source, line, "'raw' must be a string")
        payload = obj["raw"].encode("utf-8", "surrogatepass")
    elif "raw_b64" in obj:
        try:
            payload = base64.b64decode(obj["raw_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ReplayFileError(source, line, "'raw_b64' is not valid base64") from None
    else:
        raise ReplayFileError(source, line, "a message line needs one of 'value', 'raw', 'raw_b64'")
    arrival = obj.get("arrival")
    return Message(topic, key, payload,
                   _time(arrival, source, line, "arrival") if arrival is not None else None)


def _time(value: Any, source: str, line: int, name: str) -> int:
    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise ReplayFileError(source, line, f"'{name}': {e}") from None


def dead_letter(topic: str, partition: int | None, offset: int | None, key: str | None,
                event_id: str | None, reason_code: str, reason: str, payload: bytes,
                received_at: str) -> dict[str, Any]:
    """The ``city.alerts.deadletter`` message, payload as text or base64, cut at 64 KiB."""
    text, encoding, truncated = deadletter_payload(payload)
    return {"topic": topic, "partition": partition, "offset": offset, "key": key,
            "event_id": event_id, "reason_code": reason_code, "reason": reason, "payload": text,
            "payload_encoding": encoding, "truncated": truncated, "received_at": received_at}


@dataclass(slots=True)
class Summary:
    lines: int = 0
    ticks: int = 0
    alerts_out: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)


class Replay:
    """Drive ingest and the engine from replay-file lines; collect the outputs.

    >>> replay = Replay(city, rules, clock="event", on_alert=print, on_dead=print)  # doctest: +SKIP
    >>> for n, text in enumerate(open("day.jsonl", "rb"), 1): replay.line(text, n)  # doctest: +SKIP
    >>> replay.finish()                                                        # doctest: +SKIP
    """

    def __init__(self, city: CityMap, rules: RuleSet, *, clock: str = "event",
                 on_alert: Callable[[dict[str, Any]], None],
                 on_dead: Callable[[dict[str, Any]], None],
                 now: Callable[[], int] | None = None, source: str = "<replay>",
                 engine: Engine | None = None) -> None:
        self.city = city
        self.clock = clock
        self.engine = engine or Engine(city, rules, clock=clock)
        self.ingest = Ingest(city, rules, clock=clock)
        self.on_alert = on_alert
        self.on_dead = on_dead
        self.now = now
        self.source = source
        self.summary = Summary()

    def line(self, text: str | bytes, lineno: int) -> None:
        msg = parse_line(text, self.source, lineno)
        self.summary.lines += 1
        if msg.tick is not None:
            self.summary.ticks += 1
            self._emit(self.engine.tick(msg.tick))
            return
        assert msg.topic is not None
        src = TOPIC_SOURCES.get(msg.topic)
        if src is None:
            raise ReplayFileError(self.source, lineno, f"unknown topic {msg.topic!r}; expected one "
                                  f"of {', '.join(sorted(TOPIC_SOURCES))}")
        if self.clock == "wall" and msg.arrival is None:
            raise ReplayFileError(self.source, lineno, "--clock wall needs an 'arrival' on every line")
        result = self.ingest(src, msg.topic, msg.payload, key=msg.key, arrival=msg.arrival,
                             partition=0, offset=lineno - 1)
        if isinstance(result, BadInput):
            self.summary.dead[result.reason_code] += 1
            self.on_dead(dead_letter(msg.topic, 0, lineno - 1, msg.key, result.event_id,
                                     result.reason_code, result.reason, msg.payload,
                                     self._received(msg.arrival)))
            if self.clock == "wall" and msg.arrival is not None:
                self._emit(self.engine.tick(msg.arrival))
            return
        for part in result:
            self._emit(self.engine.feed(part))

    def finish(self, until: int | None = None) -> Summary:
        self._emit(self.engine.finish(until))
        return self.summary

    def _received(self, arrival: int | None) -> str:
        if arrival is not None:
            return self.city.calendar.format(arrival)
        clock = self.engine.clock if self.engine.clock is not None else 0
        return self.city.calendar.format(clock)

    def _emit(self, out: list[dict[str, Any] | DeadOut]) -> None:
        for item in out:
            if isinstance(item, DeadOut):
                inp = item.input
                self.summary.dead[item.reason_code] += 1
                self.on_dead(dead_letter(inp.topic, inp.partition, inp.offset, inp.key,
                                         inp.event_id, item.reason_code, item.reason,
                                         inp.raw or b"", self._received(inp.arrival)))
            else:
                item["emitted_at"] = self.city.calendar.format(self.now()) if self.now else item["at"]
                self.summary.alerts_out += 1
                self.summary.final[item["alert_id"]] = item
                self.on_alert(item)
