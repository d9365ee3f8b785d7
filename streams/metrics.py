"""The worker's Prometheus metrics, all named ``cityorder_*``, served at ``/metrics``.

Counters the hot path bumps itself are plain prometheus-client metrics. What the engine and
ingest already count for their own reasons (late, redelivered and duplicate input, ignored
input by kind, evicted subjects) is read from them at scrape time by :class:`EngineCollector`
rather than counted twice, so the figures on a dashboard are the same numbers ``cityorder
replay`` prints. A worker has its own registry, so two runtimes in one process (tests) never
clash.

Labels are bounded: late and redelivered input by source (``camera``, ``sensor``, ``report``,
``feedback``), duplicates by topic, never by device id, which a real city has by the hundred
thousand (and an attacker by the million). Which devices send late input is in the engine's
bounded per-device count (``rules.engine.Stats``), which ``cityorder replay`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rules.ingest import Ingest
    from streams.partitioned import PartitionEvaluator

CONTENT_TYPE = "text/plain; version=0.0.4"
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The registry and every metric a worker exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.input_records = Counter("cityorder_input_records", "Source records consumed by ingest.",
                                     ["topic"], registry=r)
        self.deadletters = Counter("cityorder_deadletters", "Messages written to the dead-letter topic.",
                                   ["reason_code"], registry=r)
        self.transitions = Counter("cityorder_alert_transitions", "Alert messages written to city.alerts.",
                                   ["transition", "severity"], registry=r)
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
        self.ingest_batch = Histogram("cityorder_ingest_batch_seconds", "Time to decode, locate and "
                                      "write one fetched batch.", buckets=_BATCH_BUCKETS, registry=r)
        self.gc_pause = Histogram("cityorder_gc_pause_seconds", "Pauses of the cyclic garbage "
                                  "collector (streams.tuning.WorkerCollector): young four times a "
                                  "second, full every 10 min.", ["kind"],
                                  buckets=_BATCH_BUCKETS, registry=r)
        self.evaluate_batch = Histogram("cityorder_evaluate_batch_seconds", "Time to apply one internal "
                                        "record: engine and output (and taking a checkpoint's cut "
                                        "when one is due).",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.ingest_delay = Histogram("cityorder_ingest_delay_seconds", "Age of the newest input "
                                      "in a written batch when its internal records are acknowledged: "
                                      "broker to internal topic.", buckets=_DELAY_BUCKETS, registry=r)
        self.evaluate_delay = Histogram("cityorder_evaluate_delay_seconds", "Age of an internal record "
                                        "when the evaluator applies it: internal topic to engine.",
                                        buckets=_DELAY_BUCKETS, registry=r)
        self.checkpoint = Histogram("cityorder_checkpoint_seconds", "Time to checkpoint a partition, "
                                    "in the background: serialise its cut, wait for the one before "
                                    "and for its output, write the state.", buckets=_BATCH_BUCKETS,
                                    registry=r)
        self.ready = Gauge("cityorder_ready", "1 when the worker has recovered its state and reaches "
                           "the brokers.", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class EngineCollector(Collector):
    """Reads the engines' and ingest's own counters at scrape time."""

    def __init__(self, evaluators: Callable[[], Iterable[PartitionEvaluator]],
                 ingest: Callable[[], Ingest | None]) -> None:
        self.evaluators = evaluators
        self.ingest = ingest

    def collect(self) -> Iterator[Metric]:
        late = CounterMetricFamily("cityorder_late_inputs", "New input older than allowed_lateness, "
                                   "counted and not applied, by source.", labels=["partition", "source"])
        redelivered = CounterMetricFamily("cityorder_redelivered_inputs", "Source records read again "
                                          "(same topic, partition and offset: ingest re-reads after "
                                          "a crash or rebalance) and ignored, by source.",
                                          labels=["partition", "source"])
        dup = CounterMetricFamily("cityorder_duplicate_inputs", "Another record with the event id of "
                                  "one already applied or counted, ignored, by topic.",
                                  labels=["partition", "topic"])
        evicted = CounterMetricFamily("cityorder_evicted_subjects", "Unregistered subjects evicted by "
                                      "the per-grid cap.", labels=["partition"])
        clock = GaugeMetricFamily("cityorder_engine_clock_timestamp_seconds", "A partition engine's "
                                  "clock (newest arrival or tick).", labels=["partition"])
        progress = GaugeMetricFamily("cityorder_engine_progress_timestamp_seconds", "Up to where a "
                                     "partition engine has applied everything.", labels=["partition"])
        held = GaugeMetricFamily("cityorder_held_inputs", "Inputs a partition holds until every source "
                                 "partition's ingest has written past their arrival (another worker's "
                                 "ingest is behind, or has not reported yet).", labels=["partition"])
        state = GaugeMetricFamily("cityorder_engine_state", "What a partition engine holds, by kind "
                                  "(subjects, alerts_active, alerts_ended, dedup_ids, timers, "
                                  "reorder, held_feedback): to tell a growing population from a "
                                  "leak.", labels=["partition", "kind"])
        for ev in self.evaluators():
            p = str(ev.partition)
            stats = ev.engine.stats
            sizes = ev.engine.sizes()
            for f in fields(sizes):
                state.add_metric([p, f.name], getattr(sizes, f.name))
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
        yield from (late, redelivered, dup, evicted, clock, progress, held, state)
        ignored = CounterMetricFamily("cityorder_ignored_inputs", "Input ignored by ingest and counted "
                                      "(unknown label, kind, state or category; heartbeat).",
                                      labels=["kind", "value"])
        ingest = self.ingest()
        if ingest is not None:
            for (kind, value), n in ingest.ignored.items():
                ignored.add_metric([kind, value], n)
        yield ignored
