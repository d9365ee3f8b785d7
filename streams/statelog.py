"""One partition's state as changelog records: bounded in size, committed atomically per step.

A step (one checkpoint: what changed since the last one) changes several state values; they
reach the changelog as several records, and a worker can die between any two of them. Written
naively, a restart would then see some values of the new step and some of the old, and apply
the records after the step's offset again on top of that mixture. So a step is written as a
redo log:

1. the **journal**: every change of the step in one value (``~journal``);
2. the changed values themselves, each under its own key (what compaction keeps);
3. the **commit** marker (``~commit``): the step's offset.

Records of one partition reach its changelog partition in the order they were sent, so the
log always holds a prefix of that sequence: without the journal's last record nothing of the
step is there; with it, a restart that finds the commit marker behind the journal applies the
journal again (idempotent: the same values) and finishes the step.

A value larger than :data:`CHUNK_BYTES` — the journal of a big step, a crowded grid — is
written as chunks under keys of their own followed by a head that names them, and the chunks
it replaced are deleted after the new head; chunks no head names (left by a death in between)
are deleted on load. No record comes near the broker's 1 MB message limit.

Pure: records in, records out. The caller writes them, in order, to the store and changelog.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterable, Mapping

#: The most bytes of a value in one changelog record (the broker's default limit is 1 MB).
CHUNK_BYTES = 256 * 1024
JOURNAL, COMMIT = "~journal", "~commit"
_WHOLE, _HEAD = b"v", b"c"
_SEP = "\x1e"

Record = tuple[str, bytes | None]


class CorruptState(Exception):
    """The stored state cannot be read back: a chunk its head names is missing."""


class StateLog:
    """Turns one partition's value changes into changelog records, and records back into values.

    Keys are full table keys that start with ``prefix`` (the partition), e.g. ``"3\\x1fmeta"``.
    """

    def __init__(self, prefix: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.prefix = prefix
        self.chunk_bytes = chunk_bytes
        self.committed = -1
        self.chunked: dict[str, tuple[int, int]] = {}  # key -> (generation, chunks) as stored

    @property
    def journal_key(self) -> str:
        return self.prefix + JOURNAL

    @property
    def commit_key(self) -> str:
        return self.prefix + COMMIT

    # -- writing -----------------------------------------------------------------------------

    def commit(self, offset: int, changes: Mapping[str, bytes | None],
               journal: bytes | None = None) -> list[Record]:
        """The records of one step, in the order they must be written. ``journal``: the step's
        :func:`encode_journal`, when the caller made it already (in another thread)."""
        if journal is None:
            journal = encode_journal(offset, changes)
        records = self._put(self.journal_key, journal, offset)
        records += self.write(changes, offset)
        records.append((self.commit_key, _WHOLE + str(offset).encode()))
        self.committed = offset
        return records

    def write(self, changes: Mapping[str, bytes | None], generation: int | None = None) -> list[Record]:
        """The records of the changed values themselves, each head after its chunks (a death
        in between leaves only orphans): ``commit`` writes them after the journal, ``load``
        again when it finishes an interrupted step. Alone, safe for one key only."""
        gen = self.committed if generation is None else generation
        records: list[Record] = []
        for key, value in changes.items():
            if value is None:
                records += self._delete(key)
            else:
                records += self._put(key, value, gen)
        return records

    def _put(self, key: str, value: bytes, gen: int) -> list[Record]:
        old = self.chunked.pop(key, None)
        if len(value) <= self.chunk_bytes:
            records: list[Record] = [(key, _WHOLE + value)]
        else:
            size = self.chunk_bytes
            chunks = [value[i:i + size] for i in range(0, len(value), size)]
            # a value rewritten in the same generation (a load finishing a step whose head for
            # this value was already written) must not overwrite the chunks its current head
            # names: move to the next free generation
            if old is not None and old[0] >= gen:
                gen = old[0] + 1
            records = [(_chunk_key(key, gen, i), c) for i, c in enumerate(chunks)]
            records.append((key, _HEAD + pickle.dumps((gen, len(chunks)))))
            self.chunked[key] = (gen, len(chunks))
        if old is not None and old[0] != self.chunked.get(key, (None,))[0]:
            records += [(_chunk_key(key, old[0], i), None) for i in range(old[1])]
        return records

    def _delete(self, key: str) -> list[Record]:
        records: list[Record] = [(key, None)]
        old = self.chunked.pop(key, None)
        if old is not None:
            records += [(_chunk_key(key, old[0], i), None) for i in range(old[1])]
        return records

    # -- reading -----------------------------------------------------------------------------

    def load(self, stored: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[Record]]:
        """Values as of the last step whose journal was written, and the records that finish
        that step and delete orphaned chunks (write them before anything else)."""
        heads: dict[str, bytes] = {}
        chunks: dict[str, bytes] = {}
        for key, raw in stored.items():
            if not key.startswith(self.prefix):
                continue
            (chunks if _SEP in key else heads)[key] = raw
        values: dict[str, bytes] = {}
        used: set[str] = set()
        self.chunked = {}
        for key, raw in heads.items():
            if raw[:1] == _HEAD:
                gen, n = pickle.loads(raw[1:])
                names = [_chunk_key(key, gen, i) for i in range(n)]
                missing = [name for name in names if name not in chunks]
                if missing:
                    raise CorruptState(f"state value {key!r} names {n} chunks, {len(missing)} of "
                                       f"them are missing from the changelog")
                values[key] = b"".join(chunks[name] for name in names)
                used.update(names)
                self.chunked[key] = (gen, n)
            else:
                values[key] = raw[1:]
        repairs: list[Record] = [(name, None) for name in sorted(set(chunks) - used)]
        journal = values.pop(self.journal_key, None)
        commit = values.pop(self.commit_key, None)
        self.committed = int(commit) if commit is not None else -1
        if journal is not None:
            offset, changes = pickle.loads(zlib.decompress(journal))
            if offset > self.committed:   # died while writing the step: finish it
                for key, value in changes.items():
                    if value is None:
                        values.pop(key, None)
                    else:
                        values[key] = value
                repairs += self.write(changes, offset)
                repairs.append((self.commit_key, _WHOLE + str(offset).encode()))
                self.committed = offset
        return values, repairs


def encode_journal(offset: int, changes: Mapping[str, bytes | None]) -> bytes:
    """A step's journal value. Compressed (zlib level 1, ~4x on state values): the journal
    repeats every value the step writes, and the broker's work grows with the bytes. Pure and
    mostly zlib, which lets go of the GIL: a runtime can make it in a thread (~50 ms for a
    busy partition's step) while its event loop goes on."""
    return zlib.compress(pickle.dumps((offset, dict(changes)), protocol=pickle.HIGHEST_PROTOCOL), 1)


def _chunk_key(key: str, gen: int, index: int) -> str:
    return f"{key}{_SEP}{gen}{_SEP}{index}"


def apply(store: dict[str, bytes], records: Iterable[Record]) -> None:
    """What writing records does to a table (for tests and tools reading a changelog)."""
    for key, value in records:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
