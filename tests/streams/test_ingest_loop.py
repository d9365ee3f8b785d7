"""Ingest's judgement of which source partitions may hold nothing back (``IngestLoop._free``)."""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH
from rules.pack import DEFAULT_PACK, load_rules
from streams.ingest_loop import IDLE_GRACE_S, IngestLoop
from streams.metrics import Metrics
from streams.settings import Settings

TP0, TP1 = TopicPartition("city.events.camera", 0), TopicPartition("city.events.camera", 1)


class _Consumer:
    """What ``_free`` and ``_flow_control`` ask of the consumer."""

    def __init__(self, paused: set[TopicPartition]) -> None:
        self._paused = set(paused)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def assignment(self) -> set[TopicPartition]:
        return {TP0, TP1}

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)


def _loop(clock: str, paused: set[TopicPartition]) -> IngestLoop:
    settings = Settings.from_env({}, clock=clock, city=GEOJSON_PATH)
    loop = IngestLoop(settings, CityMap.load(GEOJSON_PATH), load_rules([DEFAULT_PACK]), Metrics())
    loop.consumer = _Consumer(paused)  # type: ignore[assignment]
    long_ago = time.monotonic() - IDLE_GRACE_S - 1
    loop.last_fetched = {TP0: long_ago, TP1: long_ago}
    return loop


def test_a_quiet_partition_at_its_end_is_free_but_not_while_it_is_paused() -> None:
    """Paused, it is not fetched: its end is what its last fetch saw, and its quiet is ours."""
    loop = _loop("event", paused={TP1})
    assert loop._free({TP0, TP1}) == {TP0}


def test_a_resumed_partition_is_quiet_only_from_its_resumption() -> None:
    loop = _loop("event", paused={TP1})
    loop._flow_control(at_end={TP0, TP1})          # holds nothing, nothing ahead: resumed
    assert loop.consumer.paused() == set()        # type: ignore[union-attr]
    assert loop._free({TP0, TP1}) == {TP0}
    loop.last_fetched[TP1] -= IDLE_GRACE_S
    assert loop._free({TP0, TP1}) == {TP0, TP1}


def test_in_wall_mode_every_partition_at_its_end_is_free() -> None:
    """Later records carry later stamps there (the broker's clock, or the producer's)."""
    assert _loop("wall", paused={TP1})._free({TP0, TP1}) == {TP0, TP1}
