"""What the engine consumes: validated, located input, one part per grid.

Ingest turns a contract message into these parts (a camera message with detections in
several grids is split), so the engine never parses, never looks up geometry and never
sees a message that is not its grid's. The parts are plain immutable data, frozen msgspec
structs: several are built and read per event, and in CPython 3.11 a struct is the cheapest
record to do both with (valgrind, a million of each: built from its fields ~700 machine
instructions, against ~1,750 for a named tuple from a tuple and ~2,150 for a slotted class;
a field read ~50, against ~190 for a named tuple's, which 3.11 does not specialise). They are
arrays to msgspec, as named tuples were, so the internal topic's records did not change, and
not tracked by the garbage collector (they hold no cycle). The streaming runtime writes them
to its internal topic and a replay builds them in-process, and both feed the very same engine.
"""

import msgspec

from models.decode import Source

__all__ = ["CAMERA", "FEEDBACK", "REPORT", "SENSOR", "SOURCE_OF", "FeedbackIn", "FrozenRecord", "Input",
           "Obs", "Source", "new_record"]

#: Builds a named tuple from all its fields, in order, at C speed: its own ``__new__`` is
#: Python code, which the engine's timers (one pushed every few parts) and the evidence an
#: alert shows would pay.
new_record = tuple.__new__

#: A source from its number (``Source(n)`` is Python code; a part or an evidence item read back
#: asks for one). A number that is not a source is a KeyError.
SOURCE_OF: dict[int, Source] = {int(s): s for s in Source}

#: The sources as module globals, for code that runs once a part or more: CPython 3.11 does not
#: specialise an attribute read from a class, and ``Source.CAMERA`` (through ``EnumType``)
#: costs ~900 machine instructions more than a global (valgrind), and a camera part read it
#: five times on its way through ingest and the engine.
CAMERA, SENSOR, REPORT, FEEDBACK = Source.CAMERA, Source.SENSOR, Source.REPORT, Source.FEEDBACK


class FrozenRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the engine's input records are (see the module's docstring), and the worker's
    records of what it consumed: immutable, an array in field order when encoded, and
    untracked by the garbage collector."""


class Obs(FrozenRecord):
    """One matchable observation: a detection, a sensor reading or a report.

    ``located`` is False only for a report given by ``grid_id`` alone: it sits at the
    grid's representative point, is inside no zone, and never becomes an alert's location.
    """

    kind: str
    lat: float
    lon: float
    zone_ids: tuple[str, ...]
    located: bool = True
    track_id: str | None = None
    confidence: float | None = None
    state: str | None = None
    value: float | None = None
    report_source: str | None = None
    reporter_id: str | None = None
    address: str | None = None
    photos: tuple[str, ...] | None = None


class FeedbackIn(FrozenRecord):
    alert_id: str
    action: str
    actor: str
    note: str | None = None
    assignee: str | None = None
    photos: tuple[str, ...] | None = None
    until: int | None = None


class Input(FrozenRecord):
    """One grid's share of one input message.

    ``alive`` marks the part that proves ``device_id`` alive: the one in the grid of the
    device's registered position (liveness belongs there, whatever grid the detections
    fell in). ``origin`` and ``raw`` let the engine dead-letter feedback it must reject.
    """

    source: Source
    topic: str
    event_id: str
    time: int
    grid_id: str
    device_id: str | None = None
    alive: bool = False
    snapshot_url: str | None = None
    obs: tuple[Obs, ...] = ()
    feedback: FeedbackIn | None = None
    arrival: int | None = None
    key: str | None = None
    partition: int | None = None
    offset: int | None = None
    raw: bytes | None = None

    @property
    def order(self) -> tuple[int, int, str]:
        """The contract's order of application: (time, source, event_id)."""
        return (self.time, int(self.source), self.event_id)
