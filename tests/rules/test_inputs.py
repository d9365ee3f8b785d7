"""The engine's records (rules.inputs.FrozenRecord): structs that checkpoints and the internal topic
carry, and that checkpoints written when they were named tuples still restore into."""

from __future__ import annotations

import gc
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest

from rules.engine import Engine, _dump, _load, restore
from rules.evidence import Item
from rules.inputs import FeedbackIn, Input, Obs, Source
from rules.replay import Replay
from tests.rules.test_properties import _harness, run

#: Two checkpoints the engine wrote at 72e6e33, when parts and evidence items were named
#: tuples, each with the stream it was taken from and where: a list of {"lines", "cut",
#: "records"}, pickled and zlib'd. Each is a replay of ``tests.rules.test_properties.stream``
#: (seeds 0 and 2) snapshotted before line ``cut``; their reorder buffers hold parts (the
#: second's a feedback too), and their subjects evidence items.
OLD = Path(__file__).parent / "data" / "checkpoints-72e6e33.pickle.zlib"


def _old() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = pickle.loads(zlib.decompress(OLD.read_bytes()))
    return found


def _continued(lines: list[bytes], cut: int, records: dict[Any, bytes]) -> list[dict[str, Any]]:
    """What a replay of ``lines`` outputs when its engine is replaced, before line ``cut``, by
    one restored from ``records``."""
    h = _harness(feed=False)
    out: list[dict[str, Any]] = []
    replay = Replay(h.city, h.rules, on_alert=out.append, on_dead=lambda d: None, partitions=1)
    for n, line in enumerate(lines, 1):
        if n == cut:
            replay.engine = Engine(h.city, h.rules)
            restore(replay.engine, records)
        replay.line(line, n)
    replay.finish()
    return out


@pytest.mark.parametrize("case", range(2))
def test_a_checkpoint_written_when_records_were_named_tuples_restores(case: int) -> None:
    old = _old()[case]
    pending = next(v for k, v in old["records"].items() if k[0] == "pending")
    with pytest.raises(pickle.UnpicklingError, match="__new__"):   # what the stand-ins are for
        pickle.loads(pending)
    restored = _continued(old["lines"], old["cut"], old["records"])
    assert restored == run(old["lines"])
    assert any(m["transition"] == "opened" for m in restored)


def test_the_old_checkpoints_hold_every_kind_of_record() -> None:
    """So the test above reads each kind back from a named tuple's pickle."""
    blob = b"".join(v for case in _old() for v in case["records"].values())
    for cls in (Input, Obs, FeedbackIn, Item):
        assert cls.__name__.encode() in blob


def test_records_round_trip_a_checkpoint_untracked_by_the_collector() -> None:
    part = Input(Source.FEEDBACK, "city.alerts.feedback", "f-1", 7, "G",
                 obs=(Obs("garbage_pile", 1.0, 2.0, ("z",), located=False),),
                 feedback=FeedbackIn("a-1", "defer", "duty-7", until=99), raw=b"\xff")
    item = Item(7, "f-1", Source.REPORT, part.obs[0], None, None)
    back = _load(_dump({"pending": [(7, 3, "f-1", 1, part)], "item": item}))
    assert back == {"pending": [(7, 3, "f-1", 1, part)], "item": item}
    assert type(back["item"]) is Item and type(back["pending"][0][4].feedback) is FeedbackIn
    assert not any(gc.is_tracked(r) for r in (part, part.obs[0], part.feedback, item))
