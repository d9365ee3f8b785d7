"""Items kept in state records by when they were added, so each is written about once.

The engine's de-duplication memory and reorder buffer hold thousands of small entries that
come and go at the input rate. Kept in one state record, that record is rewritten on every
batch and outgrows the broker's message size; kept one record each, every input costs a
changelog record to add and another to remove. A bucket is what was added between two
seals (two snapshots: in the runtime, a checkpoint interval), up to :data:`BUCKET_ENTRIES`
entries (more fill several): written once when it is sealed and deleted when its last entry
has left. The bound keeps each record quick to pickle, so that a runtime pickling a
checkpoint a slice at a time is never held up long by one record. An entry that leaves
before the rest of its bucket is not rewritten out of it: whoever restores the buckets knows
which entries had left by then (the engine: those its progress has passed) and skips them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: The most entries in one bucket: a reorder buffer's 512 entries pickle in ~3 ms.
BUCKET_ENTRIES = 512


class Buckets(Generic[K, V]):
    """Entries grouped into numbered buckets; ``seal`` says which buckets to write or delete."""

    def __init__(self, size: int = BUCKET_ENTRIES) -> None:
        self.size = size
        self.next_id = 0
        self.buckets: dict[int, dict[K, V]] = {}
        self.where: dict[K, int] = {}
        self.changed: set[int] = set()

    def add(self, key: K, value: V) -> None:
        bucket = self.next_id
        entries = self.buckets.setdefault(bucket, {})
        entries[key] = value
        self.where[key] = bucket
        self.changed.add(bucket)
        if len(entries) >= self.size:
            self.next_id += 1

    def discard(self, key: K) -> None:
        bucket = self.where.pop(key, None)
        if bucket is not None:
            entries = self.buckets[bucket]
            del entries[key]
            if not entries:
                self.changed.add(bucket)

    def seal(self) -> dict[int, dict[K, V]]:
        """Close the open bucket; return the buckets filled since the last seal that hold
        entries (to write). Buckets emptied since then are dropped: their records are to be
        deleted."""
        writes: dict[int, dict[K, V]] = {}
        for bucket in sorted(self.changed):
            entries = self.buckets[bucket]
            if entries:
                writes[bucket] = entries
            else:
                del self.buckets[bucket]
        self.changed.clear()
        self.next_id += 1
        return writes

    def load(self, bucket: int, entries: dict[K, V]) -> None:
        """Restore a sealed bucket: the entries of it that are still live."""
        self.buckets[bucket] = dict(entries)
        for key in entries:
            self.where[key] = bucket
        self.next_id = max(self.next_id, bucket + 1)
