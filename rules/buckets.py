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

The de-duplication memory's keys come in groups (an event id within its topic and grid):
:class:`GroupedBuckets` keeps them nested, so that no entry costs a tuple of its own.
"""

from __future__ import annotations

from typing import Generic, TypeVar

G = TypeVar("G")
K = TypeVar("K")
V = TypeVar("V")
E = TypeVar("E")

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
        writes = _seal(self.buckets, self.changed)
        self.next_id += 1
        return writes

    @staticmethod
    def copy(entries: dict[K, V]) -> dict[K, V]:
        """A bucket's entries as a private copy (they leave the live bucket later)."""
        return dict(entries)

    def load(self, bucket: int, entries: dict[K, V]) -> None:
        """Restore a sealed bucket: the entries of it that are still live. A bucket none of
        whose entries are is dropped at the next seal (its record deleted)."""
        self.buckets[bucket] = dict(entries)
        for key in entries:
            self.where[key] = bucket
        self.next_id = max(self.next_id, bucket + 1)
        if not entries:
            self.changed.add(bucket)


class GroupedBuckets(Generic[G, K, V]):
    """:class:`Buckets` of keys in groups: a bucket is ``{group: {key: value}}``."""

    def __init__(self, size: int = BUCKET_ENTRIES) -> None:
        self.size = size
        self.next_id = 0
        self.filling = 0   # entries added to the open bucket
        self.buckets: dict[int, dict[G, dict[K, V]]] = {}
        self.where: dict[G, dict[K, int]] = {}
        self.changed: set[int] = set()

    def add(self, group: G, key: K, value: V) -> None:
        bucket = self.next_id
        entries = self.buckets.setdefault(bucket, {})
        members = entries.get(group)
        if members is None:
            members = entries[group] = {}
        members[key] = value
        where = self.where.get(group)
        if where is None:
            where = self.where[group] = {}
        where[key] = bucket
        self.changed.add(bucket)
        self.filling += 1
        if self.filling >= self.size:
            self.next_id += 1
            self.filling = 0

    def discard(self, group: G, key: K) -> None:
        where = self.where.get(group)
        bucket = where.pop(key, None) if where is not None else None
        if bucket is not None:
            entries = self.buckets[bucket]
            members = entries[group]
            del members[key]
            if not members:
                del entries[group]
                if not entries:
                    self.changed.add(bucket)

    def seal(self) -> dict[int, dict[G, dict[K, V]]]:
        """As :meth:`Buckets.seal`."""
        writes = _seal(self.buckets, self.changed)
        self.next_id += 1
        self.filling = 0
        return writes

    @staticmethod
    def copy(entries: dict[G, dict[K, V]]) -> dict[G, dict[K, V]]:
        """A bucket's entries as a private copy (they leave the live bucket later)."""
        return {group: dict(members) for group, members in entries.items()}

    def load(self, bucket: int, entries: dict[G, dict[K, V]]) -> None:
        """As :meth:`Buckets.load`."""
        self.buckets[bucket] = {group: dict(members) for group, members in entries.items() if members}
        for group, members in entries.items():
            where = self.where.setdefault(group, {})
            for key in members:
                where[key] = bucket
        self.next_id = max(self.next_id, bucket + 1)
        if not self.buckets[bucket]:
            self.changed.add(bucket)


def _seal(buckets: dict[int, E], changed: set[int]) -> dict[int, E]:
    """The changed buckets that hold entries; the emptied ones dropped."""
    writes: dict[int, E] = {}
    for bucket in sorted(changed):
        entries = buckets[bucket]
        if entries:
            writes[bucket] = entries
        else:
            del buckets[bucket]
    changed.clear()
    return writes
