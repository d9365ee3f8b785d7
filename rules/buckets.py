"""Entries of the de-duplication memory and the reorder buffer in state records, each written
once.

Both hold thousands of small entries that come and go at the input rate. Kept in one state
record, that record is rewritten on every batch and outgrows the broker's message size; kept
one record each, every input costs a changelog record to add and another to remove. So the
entries new since the last checkpoint are written in buckets of at most
:data:`BUCKET_ENTRIES` (several if there are more), and a bucket's record is deleted once
none of its entries can be live any more. An entry that leaves before the rest of its bucket
is not rewritten out of it: whoever restores the buckets knows which entries had left by then
(the engine: those its progress has passed) and skips them.

Between checkpoints the engine does one list append per new entry and nothing as entries
leave: the checkpoint cuts that list into buckets as slices, at C speed, and a bucket lives
while progress has not passed the last instant any of its entries is live at. Keeping each
entry in a bucket dictionary as it came and left cost ~9,000 instructions an input, ~8% of a
worker's engine. The cut holds the partition still (and the event loop, while it runs), so it
does no work per entry: scanning the expiry lists for what is new there would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

E = TypeVar("E")

#: The most entries in one bucket: a reorder buffer's 512 entries pickle in ~3 ms.
BUCKET_ENTRIES = 512


class Buckets(Generic[E]):
    """Numbered buckets of entries, each with the last progress at which one of them is live.

    A bucket is a list of entries, a slice of the new ones: made at C speed, so that taking a
    checkpoint (which holds the engine still) does no work per entry; the record's form is
    made when it is pickled (``rules.engine.Snapshot``). An entry may take ``stride``
    consecutive items of the lists rather than a tuple of its own: the de-duplication memory's
    new entries come at the input rate and live a minute, and a tuple each is 64 B more and
    one more object for the garbage collector to scan."""

    def __init__(self, until: Callable[[list[E]], int], size: int = BUCKET_ENTRIES,
                 stride: int = 1) -> None:
        """``until``: the last progress at which one of a bucket's entries is live;
        ``size``: the most entries in a bucket; ``stride``: the items an entry takes."""
        self.until_of = until
        self.size = size
        self.stride = stride
        self.next_id = 0
        self.until: dict[int, int] = {}
        self.contents: dict[int, list[E]] = {}   # what a snapshot of everything writes again
        self.rewrite: set[int] = set()

    def add(self, entries: list[E]) -> dict[int, list[E]]:
        """New entries in new buckets, by number, and the buckets an entry was taken out of
        since the last call (:meth:`remove`): the records to write."""
        made = {b: self.contents[b] for b in sorted(self.rewrite) if b in self.contents}
        self.rewrite.clear()
        step = self.size * self.stride
        for i in range(0, len(entries), step):
            bucket, chunk = self.next_id, entries[i:i + step]
            self.next_id += 1
            made[bucket] = self.contents[bucket] = chunk
            self.until[bucket] = self.until_of(chunk)
        return made

    def live(self, progress: int) -> dict[int, list[E]]:
        """The buckets still live at ``progress``, with their entries. The others are
        forgotten: their records are to be deleted."""
        for bucket in [b for b, until in self.until.items() if until < progress]:
            del self.until[bucket], self.contents[bucket]
        return self.contents

    def remove(self, entry: E) -> bool:
        """Take an entry out of the bucket that holds it (the bucket is written again at the
        next :meth:`add`); False if none does. For an entry that must not come back with a
        restore, not for one that left in time order: a scan of every bucket. Entries of one
        item only (``stride`` 1)."""
        if self.stride != 1:
            raise ValueError(f"Buckets.remove: entries of {self.stride} items are not taken out")
        for bucket, entries in self.contents.items():
            for i, held in enumerate(entries):
                if held is entry or held == entry:
                    self.contents[bucket] = entries = entries[:i] + entries[i + 1:]
                    if entries:
                        self.rewrite.add(bucket)
                    else:
                        del self.contents[bucket], self.until[bucket]
                    return True
        return False

    def load(self, bucket: int, entries: list[E]) -> None:
        """A restored bucket's live entries (none: its record is deleted at the next
        checkpoint). Numbering goes on after it."""
        if entries:
            self.until[bucket] = self.until_of(entries)
            self.contents[bucket] = entries
        self.next_id = max(self.next_id, bucket + 1)
