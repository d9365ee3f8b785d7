"""Which partition a grid's state lives on, shared by a worker and ``cityorder replay``.

A worker keeps one engine per partition of its internal topic, and each engine has its own
clock (CONTRACTS.md, Time): whether an input is late depends on what else reached *its*
partition. A replay that wants to give a worker's output must therefore split the grids
exactly as the worker does, which is why the function lives here, in ``rules/`` (no Kafka
client, no Faust), and the runtime imports it rather than the other way round.

>>> grid_partition("JY-0312", 4)
2
"""

from __future__ import annotations

import functools
from typing import Final

DEFAULT_PARTITIONS: Final = 4
"""Partitions of every topic unless configured (``CITYORDER_PARTITIONS``), and so the number of
engines ``cityorder replay`` runs unless told (``--partitions``)."""

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), unsigned 32 bits.

    The same function as ``aiokafka.partitioner.murmur2``, written here so that ``rules/``
    needs no Kafka client; tests/rules/test_partitioning.py checks the two agree.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length - whole
    if extra >= 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=65_536)
def grid_partition(grid_id: str, partitions: int) -> int:
    """The partition of ``grid_id`` among ``partitions``: Kafka's own function for keyed records
    (the Java client's default: murmur2 of the UTF-8 bytes, sign bit cleared, modulo the count),
    so any Kafka tool finds a grid's partition.

    Our own stable partitioner, called explicitly, never left to a client: other systems'
    producers partition differently, and co-partitioning must not depend on them. Not a CRC:
    CRC-32 is linear, so for ids with a shared pattern the partition is an XOR of the id's bits
    (each 2 x 2 block of the demo map's grids landed on four partitions whose numbers XOR to 0).

    Cached whole: murmur2 in Python is ~3 µs, grids are few, and ingest and replay ask for
    every part (the cache's C wrapper spares them a Python call too).
    """
    return (murmur2(grid_id.encode("utf-8")) & 0x7FFFFFFF) % partitions
