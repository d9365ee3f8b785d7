"""The worker's Prometheus metrics, all named ``cityorder_*``, served at ``/metrics``.

Counters the hot path bumps itself are plain prometheus-client metrics. What the engine and
ingest already count for their own reasons (late, redelivered and duplicate input, ignored
input by kind, evicted subjects) is read from them at scrape time by :class:`EngineCollector`
rather than counted twice, so the figures on a dashboard are the same numbers ``cityorder
replay`` prints; what the engines hold, and the cases among it, by :class:`StateCollector`.
A worker has its own registry, so two runtimes in one process (tests) never clash.

Labels are bounded: late and redelivered input by source (``camera``, ``sensor``, ``report``,
``feedback``), duplicates and dead letters by topic, cases by the city map's districts and the
packs' rules and categories, never by device, track or alert id, which a real city has by the
hundred thousand (and an attacker by the million). Which devices send late input is in the
engine's bounded per-device count (``rules.engine.Stats``), which ``cityorder replay`` prints.

docs/metrics.md lists every metric with what it is for; deploy/prometheus/ holds the rules and
alerts built on them.
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import fields
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.timestamps import parse_timestamp_ms

if TYPE_CHECKING:
    from multidict import MultiMapping

    from rules.ingest import Ingest
    from streams.partitioned import PartitionEvaluator

CONTENT_TYPE = "text/plain; version=0.0.4"
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Time to acknowledge and to resolve a case: minutes to days (a case waits over a weekend).
_CASE_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
                 172800.0, 604800.0)
#: Statuses of a case not yet ended: counted as open (resolved waits for its verification).
_OPEN = ("open", "acknowledged", "dispatched", "deferred", "resolved")


# No `*_created` series beside each counter and histogram: in the text format Prometheus stores
# them as gauges of their own, one more series per labelled counter, which no query here reads.
disable_created_metrics()


def exposition(registry: CollectorRegistry, names: Collection[str] = ()) -> bytes:
    """The registry in Prometheus's text format; only the series named, if any are (a scrape's
    ``name[]`` parameters, as prometheus-client's own handlers take them: a collector that
    yields none of them is not run)."""
    return generate_latest(registry.restricted_registry(names) if names else registry)


def scrape(registry: CollectorRegistry, query: MultiMapping[str]) -> bytes:
    """The answer to a ``/metrics`` request with this query: :func:`exposition` of the series
    its ``name[]`` parameters name, or of all."""
    return exposition(registry, query.getall("name[]", []))


def build_version() -> str:
    try:
        return version("cityorder")
    except PackageNotFoundError:   # a source tree that was never installed
        return "unknown"


def component_registry(component: str) -> CollectorRegistry:
    """A registry for one of cityorder's processes (``worker``, ``ledger``, ``console``) with
    what every process exports: the process's CPU, memory and file descriptors, the Python
    platform, the collector's generations, and ``cityorder_build_info``, so a dashboard can
    tell which version runs where and an upgrade shows on every graph."""
    # auto_describe: the standard collectors have no describe(), so their names are read from
    # a collect() at registration; without them a scrape by name (exposition) would miss them.
    r = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        r.register(collector)
    Gauge("cityorder_build_info", "Always 1: the version of cityorder and of Python a process runs, "
          "and which process it is.", ["component", "version", "python"], registry=r).labels(
        component, build_version(), platform.python_version()).set(1)
    return r


class Metrics:
    """The registry and every metric a worker exports."""

    def __init__(self) -> None:
        r = self.registry = component_registry("worker")
        self.input_records = Counter("cityorder_input_records", "Source records consumed by ingest.",
                                     ["topic"], registry=r)
        self.deadletters = Counter("cityorder_deadletters", "Messages written to the dead-letter "
                                   "topic, by reason and by the topic the bad record came from.",
                                   ["reason_code", "topic"], registry=r)
        self.transitions = Counter("cityorder_alert_transitions", "Alert messages written to city.alerts.",
                                   ["transition", "rule_id", "category", "severity"], registry=r)
        self.time_to_acknowledge = Histogram(
            "cityorder_case_acknowledge_seconds", "From a case's opening to its acknowledgement (a "
            "case reopened and acknowledged again counts again), natural time on the engine's "
            "clock, by category.", ["category"], buckets=_CASE_BUCKETS, registry=r)
        self.time_to_resolve = Histogram(
            "cityorder_case_resolve_seconds", "From a case's opening to its resolution, natural "
            "time on the engine's clock, by category.", ["category"], buckets=_CASE_BUCKETS,
            registry=r)
        self.internal_records = Counter("cityorder_internal_records",
                                        "Internal records applied by the evaluators (batches and progress).",
                                        ["kind"], registry=r)
        self.stale_records = Counter("cityorder_stale_records", "Internal records that reached the "
                                     "evaluator past a gap (the partition is fetched again from "
                                     "the gap) or for a partition it no longer owns; not applied.",
                                     registry=r)
        self.producer_errors = Counter("cityorder_producer_errors",
                                       "Failed produce attempts (retried with backoff).", ["stage"],
                                       registry=r)
        self.ingest_lag = Gauge("cityorder_ingest_lag_records", "Records not yet consumed by ingest.",
                                ["topic", "partition"], registry=r)
        self.ingest_lag_seconds = Gauge("cityorder_ingest_lag_seconds", "Age (wall clock less its "
                                        "Kafka timestamp) of the last record ingest consumed from "
                                        "a partition, while more wait behind it; 0 at the end.",
                                        ["topic", "partition"], registry=r)
        self.ingest_batch = Histogram("cityorder_ingest_batch_seconds", "Time to decode, locate and "
                                      "write one fetched batch.", buckets=_BATCH_BUCKETS, registry=r)
        self.gc_pause = Histogram("cityorder_gc_pause_seconds", "Pauses of the cyclic garbage "
                                  "collector (streams.tuning.WorkerCollector): young four times a "
                                  "second, full every 10 min.", ["kind"],
                                  buckets=_BATCH_BUCKETS, registry=r)
        self.evaluate_batch = Histogram("cityorder_evaluate_batch_seconds", "Time to apply one internal "
                                        "record: engine and output (and taking a checkpoint's cut "
                                        "when one is due), not counting where a long one let "
                                        "the event loop run other work.",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.loop_lag = Histogram("cityorder_event_loop_lag_seconds", "How late the worker's event "
                                  "loop woke a task that slept 0.1 s: the longest stretch nothing "
                                  "else could run (a long evaluation, a checkpoint's cut, a GC "
                                  "pause), sampled.", buckets=_BATCH_BUCKETS, registry=r)
        self.ingest_delay = Histogram("cityorder_ingest_delay_seconds", "Age of the newest input "
                                      "in a written batch when its internal records are acknowledged: "
                                      "broker to internal topic.", buckets=_DELAY_BUCKETS, registry=r)
        self.evaluate_delay = Histogram("cityorder_evaluate_delay_seconds", "Age of an internal record "
                                        "when the evaluator applies it: internal topic to engine.",
                                        buckets=_DELAY_BUCKETS, registry=r)
        self.checkpoint = Histogram("cityorder_checkpoint_seconds", "Time to checkpoint a partition, "
                                    "in the background: serialise its cut, wait for the one before "
                                    "and for its output, write the state (paced: the work rests "
                                    "between short slices, so input is never held up long).",
                                    buckets=_DELAY_BUCKETS,  # seconds, paced
                                    registry=r)
        self.checkpoint_failures = Counter("cityorder_checkpoint_failures", "Checkpoints or outputs "
                                           "the broker did not acknowledge; the worker stops at the "
                                           "next record and restarts from the last checkpoint.",
                                           registry=r)
        self.checkpoint_last = Gauge("cityorder_checkpoint_last_success_timestamp_seconds",
                                     "When the last checkpoint of any partition was written.",
                                     registry=r)
        self.rebalances = Counter("cityorder_rebalances", "Rebalances of the consumer group this "
                                  "worker took part in (partitions revoked).", registry=r)
        self.partitions_owned = Gauge("cityorder_partitions_owned", "Internal partitions this "
                                      "worker evaluates.", registry=r)
        self.ready = Gauge("cityorder_ready", "1 when the worker has recovered its state and reaches "
                           "the brokers.", registry=r)
        self.clock = Gauge("cityorder_clock_mode", "1 for the clock the worker runs on (CITYORDER_CLOCK: "
                           "wall, or event for replays and demos).", ["clock"], registry=r)

    def dead(self, message: dict[str, Any]) -> None:
        """Count a dead letter the worker writes (one place, so none goes uncounted)."""
        self.deadletters.labels(message["reason_code"], message["topic"]).inc()

    def transition(self, alert: dict[str, Any]) -> None:
        """Count an alert message written, and time the case's acknowledgement or resolution."""
        transition, category = alert["transition"], alert["category"]
        self.transitions.labels(transition, alert["rule_id"], category, alert["severity"]).inc()
        timer = {"acknowledged": self.time_to_acknowledge, "resolved": self.time_to_resolve}.get(transition)
        if timer is not None:
            timer.labels(category).observe(
                (parse_timestamp_ms(alert["at"]) - parse_timestamp_ms(alert["opened_at"])) / 1000)


class EngineCollector(Collector):
    """Reads the engines' and ingest's own counters and clocks at scrape time: cheap, a few
    values a partition. What takes a walk over the engines' state is :class:`StateCollector`."""

    def __init__(self, evaluators: Callable[[], Iterable[PartitionEvaluator]],
                 ingest: Callable[[], Ingest | None]) -> None:
        self.evaluators = evaluators
        self.ingest = ingest

    def describe(self) -> Iterator[Metric]:
        return iter(_engine_families())

    def collect(self) -> Iterator[Metric]:
        families = late, redelivered, dup, evicted, clock, progress, watermark, held, ignored = \
            _engine_families()
        for ev in self.evaluators():
            p = str(ev.partition)
            stats = ev.engine.stats
            for source, n in stats.late_sources.items():
                late.add_metric([p, source], n)
            for source, n in stats.redelivered.items():
                redelivered.add_metric([p, source], n)
            for topic, n in stats.duplicates.items():
                dup.add_metric([p, topic], n)
            evicted.add_metric([p], stats.evicted)
            held.add_metric([p], len(ev.held))
            if ev.engine.clock is not None:
                clock.add_metric([p], ev.engine.clock / 1000)
                progress.add_metric([p], max(ev.engine.progress, 0) / 1000)
                watermark.add_metric([p], max(ev.engine.watermark or 0, 0) / 1000)
        ingest = self.ingest()
        if ingest is not None:
            for (kind, value), n in ingest.ignored.items():
                ignored.add_metric([kind, value], n)
        return iter(families)


def _engine_families() -> tuple[Metric, ...]:
    return (
        CounterMetricFamily("cityorder_late_inputs", "New input older than allowed_lateness, counted "
                            "and not applied, by source.", labels=["partition", "source"]),
        CounterMetricFamily("cityorder_redelivered_inputs", "Source records read again (same topic, "
                            "partition and offset: ingest re-reads after a crash or rebalance) and "
                            "ignored, by source.", labels=["partition", "source"]),
        CounterMetricFamily("cityorder_duplicate_inputs", "Another record with the event id of one "
                            "already applied or counted, ignored, by topic.", labels=["partition", "topic"]),
        CounterMetricFamily("cityorder_evicted_subjects", "Unregistered subjects evicted by the per-grid "
                            "cap.", labels=["partition"]),
        GaugeMetricFamily("cityorder_engine_clock_timestamp_seconds", "A partition engine's clock "
                          "(newest arrival or tick).", labels=["partition"]),
        GaugeMetricFamily("cityorder_engine_progress_timestamp_seconds", "Up to where a partition "
                          "engine has applied everything.", labels=["partition"]),
        GaugeMetricFamily("cityorder_engine_watermark_timestamp_seconds", "A partition engine's "
                          "watermark: its clock less the reorder allowance.", labels=["partition"]),
        GaugeMetricFamily("cityorder_held_inputs", "Inputs a partition holds until every source "
                          "partition's ingest has written past their arrival (another worker's ingest "
                          "is behind, or has not reported yet).", labels=["partition"]),
        CounterMetricFamily("cityorder_ignored_inputs", "Input ignored by ingest and counted (unknown "
                            "label, kind, state or category; heartbeat).", labels=["kind", "value"]),
    )


class StateCollector(Collector):
    """What the engines hold and the cases among it, walked at scrape time (every alert of
    every partition: milliseconds for thousands). Registered apart from
    :class:`EngineCollector`, with its names, so a scrape that asks only for other names
    (``/metrics?name[]=...``, as a script watching progress does many times a second) does
    not pay for the walk."""

    def __init__(self, evaluators: Callable[[], Iterable[PartitionEvaluator]]) -> None:
        self.evaluators = evaluators

    def describe(self) -> Iterator[Metric]:
        yield _state_family()
        yield from CaseCount().families()

    def collect(self) -> Iterator[Metric]:
        state = _state_family()
        count = CaseCount()
        for ev in self.evaluators():
            p = str(ev.partition)
            count.add(ev)
            sizes = ev.engine.sizes()
            for f in fields(sizes):
                state.add_metric([p, f.name], getattr(sizes, f.name))
        yield state
        yield from count.families()


def _state_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("cityorder_engine_state", "What a partition engine holds, by kind "
                             "(subjects, alerts_active, alerts_ended, dedup_ids, timers, reorder, "
                             "held_feedback): to tell a growing population from a leak.",
                             labels=["partition", "kind"])


class CaseCount:
    """The cases of a worker's partitions, read from the engines at each scrape rather than
    counted as transitions pass, so the figures are right after a restart or a rebalance (a
    counter would start again from zero). Ages are on each partition's own clock."""

    def __init__(self) -> None:
        self.cases: Tally[tuple[str, str, str, str]] = Tally()
        self.overdue: Tally[tuple[str, str]] = Tally()
        self.grids: Tally[tuple[str, str]] = Tally()
        self.unacked_age = 0
        self.active_age: dict[str, int] = {}    # by level: the oldest case not resolved

    def add(self, ev: PartitionEvaluator) -> None:
        engine = ev.engine
        if not self.active_age:      # every level a case can reach, 0 until one does: the
            for rule in engine.rules.rules:   # partitions share one rule set, so once a scrape
                for level in range(1, max(len(rule.policy.levels), 1) + 1):
                    self.active_age.setdefault(str(level), 0)
        now = engine.clock
        for g in engine.grids.values():
            district = g.grid.district
            for a in g.alerts.values():
                if a.status not in _OPEN:
                    continue
                category, level = a.rule.category, str(a.level)
                self.cases[(district, category, level, a.status)] += 1
                self.grids[(district, g.grid.id)] += 1
                if a.status == "resolved" or now is None:
                    continue
                age = max(now - a.opened_at, 0)
                if a.overdue_fired and a.status != "deferred":
                    self.overdue[(district, category)] += 1
                self.active_age[level] = max(self.active_age.get(level, 0), age)
                if a.status == "open":
                    self.unacked_age = max(self.unacked_age, age)

    def families(self) -> Iterator[Metric]:
        open_cases = GaugeMetricFamily("cityorder_open_cases", "Cases not yet ended (closed or "
                                       "rejected), from the engines' state: exact after a restart. "
                                       "Resolved cases wait for verification.",
                                       labels=["district", "category", "level", "status"])
        for key, n in sorted(self.cases.items()):
            open_cases.add_metric(list(key), n)
        overdue = GaugeMetricFamily("cityorder_overdue_cases", "Open cases past their deadline "
                                    "(an overdue transition was written and the case has not "
                                    "ended, been resolved or deferred since).",
                                    labels=["district", "category"])
        for key2, n in sorted(self.overdue.items()):
            overdue.add_metric(list(key2), n)
        grids = GaugeMetricFamily("cityorder_grid_open_cases", "Open cases by grid (the map's "
                                  "grids: a bounded set), for the hotspot grids.",
                                  labels=["district", "grid_id"])
        for key2, n in sorted(self.grids.items()):
            grids.add_metric(list(key2), n)
        unacked = GaugeMetricFamily("cityorder_oldest_unacknowledged_age_seconds", "Age on the "
                                    "engine's clock of the oldest case still open (not "
                                    "acknowledged); 0 when there is none.")
        unacked.add_metric([], self.unacked_age / 1000)
        active = GaugeMetricFamily("cityorder_oldest_active_case_age_seconds", "Age on the "
                                   "engine's clock of the oldest case not yet resolved, by level; "
                                   "0 for a level with none.", labels=["level"])
        for level, age in sorted(self.active_age.items(), key=lambda kv: int(kv[0])):
            active.add_metric([level], age / 1000)
        yield from (open_cases, overdue, grids, unacked, active)
