"""Entries of the de-duplication memory and the reorder buffer in state records, each written
once.

Both hold thousands of small entries that come and go at the input rate. Kept in one state
record, that record is rewritten on every batch and outgrows the broker's message size; kept
one record each, every input costs a changelog record to add and another to remove. So the
entries a checkpoint finds new since the last one are written in buckets of at most
:data:`BUCKET_ENTRIES` (several if there are more), and a bucket's record is deleted once
none of its entries can be live any more. An entry that leaves before the rest of its bucket
is not rewritten out of it: whoever restores the buckets knows which entries had left by then
(the engine: those its progress has passed) and skips them.

Nothing is kept per entry as it comes and goes: which entries are new is worked out at the
checkpoint (the engine knows: the reorder buffer's by their sequence numbers, the
de-duplication memory's by what its expiry lists held at the last one), and a bucket lives
while progress has not passed the last instant any of its entries is live at. Keeping each
entry in a bucket as it came and left cost ~9,000 instructions an input, ~8% of a worker's
engine, and two more dict entries an id held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

E = TypeVar("E")
C = TypeVar("C")

#: The most entries in one bucket: a reorder buffer's 512 entries pickle in ~3 ms.
BUCKET_ENTRIES = 512


class Buckets(Generic[E, C]):
    """Numbered buckets of entries: each bucket's record content, and the last progress at
    which one of its entries is live."""

    def __init__(self, build: Callable[[Sequence[E]], tuple[C, int]], size: int = BUCKET_ENTRIES) -> None:
        """``build`` makes a bucket's record content of its entries, and says the last
        progress at which one of them is live."""
        self.build = build
        self.size = size
        self.next_id = 0
        self.until: dict[int, int] = {}
        self.contents: dict[int, C] = {}   # what a snapshot of everything writes again

    def add(self, entries: Sequence[E]) -> Iterator[tuple[int, C]]:
        """New entries in new buckets: each bucket's number and record content, as it is
        made."""
        for i in range(0, len(entries), self.size):
            bucket = self.next_id
            self.next_id += 1
            content, self.until[bucket] = self.build(entries[i:i + self.size])
            self.contents[bucket] = content
            yield bucket, content

    def live(self, progress: int) -> dict[int, C]:
        """The buckets still live at ``progress``, with their contents. The others are
        forgotten: their records are to be deleted."""
        for bucket in [b for b, until in self.until.items() if until < progress]:
            del self.until[bucket], self.contents[bucket]
        return self.contents

    def load(self, bucket: int, content: C, until: int | None) -> None:
        """A restored bucket, live until ``until`` (None: none of its entries is live, and its
        record is deleted at the next checkpoint). Numbering goes on after it."""
        if until is not None:
            self.until[bucket] = until
            self.contents[bucket] = content
        self.next_id = max(self.next_id, bucket + 1)
