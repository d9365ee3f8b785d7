"""The operator interface: every config kind has its logic, and a new operator plugs into the
engine without a change to it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from rules.citymap import CityMap
from rules.engine import Engine
from rules.evidence import Item
from rules.inputs import Input, Obs, Source
from rules.ops import OPERATORS, build
from rules.ops.base import Glue, Operator, Subject, located_match, subject_of
from rules.pack import Rule
from rules.timers import END, FIRE
from tests.rules.harness import Harness, T, city_geojson


def test_every_operator_config_of_the_rule_language_builds_its_logic(tmp_path: Path) -> None:
    kinds = typing.get_args(typing.get_type_hints(Rule)["operator"])
    assert set(OPERATORS) == set(kinds)
    for rule in Harness(tmp_path).rules.rules:
        logic = build(rule)
        assert logic.rule is rule and logic.rank in (END, FIRE)
        state = logic.new_state()
        assert (state.running, logic.due(state)) == (False, None)


def test_subjects_are_encoded_by_the_contract() -> None:
    cam = Input(Source.CAMERA, "city.events.camera", "e", 0, "G-1", "cam-1")
    assert subject_of(cam, Obs("parked_car", 0, 0, (), track_id="7"), "-") == "cam:cam-1/7"
    assert subject_of(cam, Obs("parked_car", 0, 0, ()), "z-1") == "label:parked_car/z-1"
    assert subject_of(replace(cam, source=Source.SENSOR), Obs("x", 0, 0, ()), "-") == "dev:cam-1"
    assert subject_of(replace(cam, source=Source.REPORT), Obs("x", 0, 0, ()), "-") == "grid"


# -- a fifth operator, in this file only ------------------------------------------------------

@dataclass(frozen=True)
class Glimpse:
    """A test operator: any matching sighting opens at once; the episode ends ``hold`` after
    the last sighting."""

    hold_ms: int


@dataclass(slots=True)
class GlimpseState:
    start: int = 0
    last: int = 0
    running: bool = False


class GlimpseOp(Operator):
    rank = END

    def new_state(self) -> GlimpseState:
        return GlimpseState()

    def span_ms(self) -> int:
        return self.rule.operator.hold_ms  # type: ignore[union-attr]

    def observe(self, eng: Glue, g: Any, inp: Input, obs: Obs, zone_ids: tuple[str, ...],
                zone: str) -> None:
        hit = located_match(eng, self.rule, inp, obs, zone)
        if hit is not None:
            key, item = hit
            eng.queue(self.rule.id, key, self._step, eng, g, key, item, zone_ids)

    def _step(self, eng: Glue, g: Any, key: str, item: Item, zones: tuple[str, ...]) -> None:
        subj = eng.subject(g, self, key, item)
        st: GlimpseState = subj.state
        new = not st.running
        if new:
            st.start, st.running = item.observed_at, True
        st.last = max(st.last, item.observed_at)
        eng.arm(g, subj, self.due(st))
        eng.matched(g, subj, item, zones, new, True)

    def due(self, state: GlimpseState) -> int | None:
        return state.last + self.span_ms() if state.running else None

    def on_timer(self, eng: Glue, g: Any, subj: Subject, due: int) -> None:
        subj.state.running = False
        eng.touch(g, subj)
        eng.episode_ended(g, subj)


def test_a_fifth_operator_needs_only_its_module_and_its_entry(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OPERATORS, Glimpse, GlimpseOp)
    base = Harness(tmp_path)
    rules = tuple(dataclasses.replace(r, operator=Glimpse(120_000)) if r.id == "vend.main" else r
                  for r in base.rules.rules)
    city = CityMap.from_geojson(city_geojson(), "test-city")
    h = Harness(tmp_path, engine=Engine(city, dataclasses.replace(base.rules, rules=rules)))
    h.cam(T("10:00:00"))
    h.cam(T("10:01:00"))
    h.finish(T("10:10:00"))
    got = [(a["transition"], a["at"][11:19]) for a in h.alerts if a["rule_id"] == "vend.main"]
    assert got == [("opened", "10:00:00"), ("updated", "10:01:00"), ("cleared", "10:03:00")]


def test_a_snapshot_of_each_operator_state_is_an_equal_private_copy(tmp_path: Path) -> None:
    """Every field set away from its default, so a field the copy left out shows; a container
    field (count's entries) must be a copy the engine's later changes do not reach."""
    for rule in Harness(tmp_path).rules.rules:
        logic = build(rule)
        state = logic.new_state()
        for i, f in enumerate(dataclasses.fields(state)):
            value = getattr(state, f.name)
            if isinstance(value, dict):
                value[f"k{i}"] = (i, f"e{i}", None)
            else:
                setattr(state, f.name, not value if isinstance(value, bool) else 1_000 + i)
        copied = logic.snapshot(state)
        assert copied == state and copied is not state, type(state).__name__
        for f in dataclasses.fields(state):
            value = getattr(state, f.name)
            if isinstance(value, dict):
                assert getattr(copied, f.name) is not value
                value["later"] = (0, "later", None)
                assert "later" not in getattr(copied, f.name)


def test_a_state_a_snapshot_cannot_rebuild_is_refused_by_name(tmp_path: Path) -> None:
    @dataclass(slots=True)
    class Checked:
        start: int = 0
        running: bool = False

        def __post_init__(self) -> None:
            self.start += 1

    @dataclass(slots=True)
    class Derived:
        start: int = 0
        running: bool = dataclasses.field(default=False, init=False)

    logic = build(Harness(tmp_path).rules.rules[0])
    for state in (Checked(), Derived()):
        with pytest.raises(TypeError, match=type(state).__name__):
            logic.snapshot(state)
