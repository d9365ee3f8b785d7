"""``cityorder_engine_state``: what each partition engine holds, so a soak can tell a growing
population from a leak (bench/soak.py prints it every minute); the case gauges; and a scrape
of some names only, which does not walk the engines' state."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.timestamps import parse_timestamp_ms
from streams.metrics import EngineCollector, Metrics, StateCollector, exposition
from tests.rules.harness import Harness, T


class _Evaluator:
    """What the collector reads of a partition evaluator, around a harness's engine."""

    def __init__(self, h: Harness) -> None:
        self.partition = 2
        self.engine = h.engine
        self.held: list[object] = []


def test_the_state_gauge_follows_an_alert_from_open_to_ended(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.tick(T("10:00:30"))
    opened = h.last("opened")
    sizes = h.engine.sizes()
    assert (sizes.alerts_active, sizes.alerts_ended) == (1, 0)
    assert sizes.subjects >= 1 and sizes.dedup_ids == 1 and sizes.reorder == 0

    h.fb(T("10:01:00"), opened["alert_id"], "reject", reason="a test")
    h.tick(T("10:01:30"))
    assert h.last()["status"] == "rejected"
    sizes = h.engine.sizes()
    assert (sizes.alerts_active, sizes.alerts_ended) == (0, 1)

    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: [_Evaluator(h)]))  # type: ignore[list-item]
    text = generate_latest(registry).decode()
    assert 'cityorder_engine_state{kind="alerts_ended",partition="2"} 1.0' in text
    assert 'cityorder_engine_state{kind="alerts_active",partition="2"} 0.0' in text
    assert f'cityorder_engine_state{{kind="subjects",partition="2"}} {float(sizes.subjects)}' in text


def test_the_case_gauges_follow_a_case_through_acknowledgement_and_rejection(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: [_Evaluator(h)]))  # type: ignore[list-item]

    def scrape() -> str:
        return generate_latest(registry).decode()

    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.tick(T("10:00:30"))
    opened = h.last("opened")
    h.tick(T("10:05:30"))
    assert h.engine.clock is not None
    age = (h.engine.clock - parse_timestamp_ms(opened["opened_at"])) / 1000
    where = f'category="{opened["category"]}",district="{opened["district"]}"'
    text = scrape()
    assert f'cityorder_open_cases{{{where},level="1",status="open"}} 1.0' in text
    grid = f'district="{opened["district"]}",grid_id="{opened["grid_id"]}"'
    assert f"cityorder_grid_open_cases{{{grid}}} 1.0" in text
    assert age > 300
    assert f"cityorder_oldest_unacknowledged_age_seconds {age}" in text
    assert f'cityorder_oldest_active_case_age_seconds{{level="1"}} {age}' in text

    h.fb(T("10:06:00"), opened["alert_id"], "acknowledge")
    h.tick(T("10:06:30"))
    text = scrape()
    assert f'cityorder_open_cases{{{where},level="1",status="acknowledged"}} 1.0' in text
    assert "cityorder_oldest_unacknowledged_age_seconds 0.0" in text   # acknowledged: none waits
    assert 'cityorder_oldest_active_case_age_seconds{level="1"} 0.0' not in text

    h.fb(T("10:07:00"), opened["alert_id"], "reject", reason="a test")
    h.tick(T("10:07:30"))
    text = scrape()
    assert "cityorder_open_cases{" not in text and "cityorder_grid_open_cases{" not in text
    assert 'cityorder_oldest_active_case_age_seconds{level="1"} 0.0' in text   # every level, 0


def _samples(text: str) -> dict[str, set[tuple[str, tuple[tuple[str, str], ...], float]]]:
    """The ``cityorder_*`` samples of an exposition by family (process figures move between
    two scrapes)."""
    return {f.name: {(s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples}
            for f in text_string_to_metric_families(text) if f.name.startswith("cityorder_")}


def test_a_scrape_of_some_names_gives_them_as_a_whole_scrape_does_and_skips_the_walk(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.tick(T("10:00:30"))
    h.last("opened")
    h.sensor(T("00:00:01"), "mh-1", "manhole_cover", state="open")    # late: counted
    assert h.engine.stats.late_sources
    walks = []

    def walked() -> list[_Evaluator]:
        walks.append(1)
        return [_Evaluator(h)]

    metrics = Metrics()    # the worker's registry, with its collectors as the worker registers them
    metrics.registry.register(EngineCollector(lambda: [_Evaluator(h)], lambda: None))  # type: ignore[list-item, return-value]
    metrics.registry.register(StateCollector(walked))  # type: ignore[arg-type]
    metrics.ingest_lag.labels("city.events.camera", "0").set(3)
    whole = _samples(exposition(metrics.registry).decode())
    assert {"cityorder_open_cases", "cityorder_engine_state", "cityorder_late_inputs",
            "cityorder_engine_progress_timestamp_seconds", "cityorder_ingest_lag_records"} <= set(whole)
    assert len(walks) == 1
    for family, samples in whole.items():
        names = {name for name, _, _ in samples} or {family}
        alone = _samples(exposition(metrics.registry, sorted(names)).decode())
        assert alone.get(family, set()) == samples, family

    del walks[:]
    cheap = _samples(exposition(metrics.registry, ["cityorder_engine_progress_timestamp_seconds",
                                                   "cityorder_late_inputs_total"]).decode())
    assert set(cheap) == {"cityorder_engine_progress_timestamp_seconds", "cityorder_late_inputs"}
    assert cheap["cityorder_late_inputs"] == whole["cityorder_late_inputs"]
    assert walks == []      # the state and the cases were not walked

    # The standard collectors' series too (process_*, python_*), by name.
    everything = {f.name for f in text_string_to_metric_families(exposition(metrics.registry).decode())}
    assert {"process_resident_memory_bytes", "python_info", "python_gc_collections"} <= everything
    for family in everything - set(whole):
        names = [family, f"{family}_total"]
        alone = {f.name for f in text_string_to_metric_families(exposition(metrics.registry, names).decode())
                 if f.samples}
        assert alone == {family}, family
