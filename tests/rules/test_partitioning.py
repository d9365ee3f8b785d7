"""rules/partitioning.py is Kafka's partitioner, bit for bit: a replay splits grids exactly as
a worker does (and as any Kafka tool finds a grid's partition)."""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2 as kafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from rules.partitioning import DEFAULT_PARTITIONS, grid_partition, murmur2


def test_murmur2_agrees_with_aiokafka_on_many_random_strings() -> None:
    rng = random.Random(13)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-简城街道"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 70)))
        data = text.encode("utf-8")
        assert murmur2(data) == kafka_murmur2(data), text


@given(st.binary(max_size=200))
def test_murmur2_agrees_with_aiokafka_on_any_bytes(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data)


def test_grid_partition_is_the_sign_cleared_hash_modulo_the_count() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        grid = f"JY-{rng.randrange(10_000):04d}"
        n = rng.randrange(1, 65)
        assert grid_partition(grid, n) == (kafka_murmur2(grid.encode()) & 0x7FFFFFFF) % n
    assert grid_partition("JY-0312", DEFAULT_PARTITIONS) == 2


def test_the_default_is_the_workers() -> None:
    from streams.settings import Settings

    assert DEFAULT_PARTITIONS == 4 == Settings.model_fields["partitions"].default
