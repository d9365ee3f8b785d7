"""Engine benchmark: replay camera events from raw bytes through ingest and the engine.

Targets (issue 18, engine v2): on one core, >= 60,000 events/s end to end (decode, validate,
locate, evaluate; the first engine's issue aimed at 150,000, which stays the way on) and
<= 2 KB of engine state per active subject, with >= 1M events and >= 50k
active subjects. Run on demand::

    .venv/bin/python -m bench.engine_bench                       # 1M events, 50k tracks
    .venv/bin/python -m bench.engine_bench --profile             # + cProfile of 200k events

The input is built in memory first (not timed): contract-shaped ``city.events.camera``
messages as raw JSON bytes for the demo city and the default pack. Every track is re-seen
about every ``--period`` seconds of event time, so its episode keeps running, and its label
is one a default rule matches at the track's position (which is jittered around its camera,
so ``CityMap.locate`` meets both cache hits and misses).

The timed path is ``Ingest.__call__`` for every message and ``Engine.feed_batch`` for the parts
of every ``--batch`` messages (500, about one fetch; ``--batch 0``: ``Engine.feed`` for every
part, as ``cityorder replay`` does), then ``Engine.finish``. Outputs are counted, not serialised.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import math
import os
import platform
import pstats
import random
import sys
import time
import tracemalloc
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from models.decode import BadInput, Source, decode
from models.fastdecode import camera as fast_camera
from models.timestamps import parse_timestamp_ms
from rules.citymap import LOCATE_CACHE_LIMIT, CityMap, Device
from rules.demo.city import GEOJSON_PATH
from rules.engine import Engine
from rules.ingest import Ingest
from rules.inputs import Input
from rules.pack import DEFAULT_PACK, Rule, RuleSet, Silent, load_rules
from streams.tuning import tune_gc

ROOT = Path(__file__).resolve().parent.parent
MAP = GEOJSON_PATH
PACK = DEFAULT_PACK
TOPIC = "city.events.camera"

TARGET_EVENTS_PER_S = 60_000
TARGET_BYTES_PER_SUBJECT = 2048
PROFILE_EVENTS = 200_000
BATCH = 500   # parts per feed_batch: about what one fetch of a busy partition brings
LONG_RUN_S = 120.0  # a full run longer than this is not repeated

# A Monday (workday) late afternoon: every default camera rule's schedule is open for the
# whole run (bbq from 17:00, trucks until 20:00, outdoor business until 22:00) and the
# 东大街 night market (18:00-23:00) is not, so no label changes meaning mid-run.
START = "2026-11-23T17:10:00.000+08:00"

# Rough street mix: parking dominates, then vendors, litter, posters. Only labels that some
# default rule matches at a camera are used at that camera.
LABEL_WEIGHTS: dict[str, int] = {
    "parked_car": 25, "parked_ebike": 20, "street_vendor": 10, "vendor_stall": 4,
    "garbage_pile": 8, "illegal_poster": 8, "outdoor_business": 8, "debris": 5,
    "heavy_truck": 5, "outdoor_bbq": 3, "stray_dog": 2, "abandoned_vehicle": 2,
}
# Objects that move: their reported position wanders by metres, not decimetres.
MOBILE = frozenset({"street_vendor", "stray_dog", "heavy_truck"})
SPREAD_M = 15.0       # a track's base position: uniform in this radius around its camera
SIGMA_STILL_M = 0.5   # per-sighting tracker noise of a parked / lying object
SIGMA_MOBILE_M = 3.0  # ... and of a moving one
M_PER_DEG = 111_320.0
SPOT_SAMPLES = 400    # points tried around each camera to see which labels match there


# -- the workload ---------------------------------------------------------------------------


@dataclass(slots=True)
class Workload:
    messages: list[bytes]
    keys: list[str]
    tracks_alive: int
    tracks_total: int
    first_ms: int
    last_ms: int
    labels: Counter[str]
    cameras_used: int
    locate_calls: int
    locate_hits: int  # by the same policy as CityMap.locate: exact coordinates, cleared at limit
    build_s: float

    @property
    def mean_bytes(self) -> float:
        return sum(map(len, self.messages)) / max(1, len(self.messages))


def _camera_rules(rules: RuleSet) -> list[Rule]:
    return [r for r in rules.rules if r.source == "camera" and not isinstance(r.operator, Silent)]


def _label_matches(city: CityMap, rules: list[Rule], label: str, zone_ids: Iterable[str],
                   times: tuple[int, ...]) -> bool:
    """Whether some rule matches ``label`` at a point in these zones at every one of ``times``
    (the contract's matching: schedule, scheduled zones, permitted / outside / inside)."""
    cal = city.calendar
    for t in times:
        kinds = {city.zones[z].kind for z in zone_ids
                 if (sch := city.zones[z].schedule) is None or sch.is_open(t, cal)}
        ok = False
        for r in rules:
            if r.match.labels is not None and label not in r.match.labels:
                continue
            if r.schedule is not None and not r.schedule.is_open(t, cal):
                continue
            if kinds & set(r.permitted) or kinds & set(r.outside):
                continue
            if r.inside and not kinds & set(r.inside):
                continue
            ok = True
            break
        if not ok:
            return False
    return True


def _around(rng: random.Random, cam: Device, radius_m: float) -> tuple[float, float]:
    """A uniform random point within ``radius_m`` of a camera."""
    r, a = radius_m * math.sqrt(rng.random()), rng.random() * math.tau
    m_lon = M_PER_DEG * math.cos(math.radians(cam.lat))
    return cam.lat + r * math.sin(a) / M_PER_DEG, cam.lon + r * math.cos(a) / m_lon


def camera_spots(city: CityMap, rng: random.Random) -> Iterator[tuple[Device, float, float, Any]]:
    """Points around each camera (the camera's own first, then ``SPOT_SAMPLES - 1`` within
    ``SPREAD_M``) that lie in the camera's grid: (camera, lat, lon, zone ids there)."""
    for cam in sorted(city.cameras.values(), key=lambda d: d.id):
        for j in range(SPOT_SAMPLES):
            lat, lon = (cam.lat, cam.lon) if j == 0 else _around(rng, cam, SPREAD_M)
            place = city.locate(lat, lon)
            if place is not None and place.grid_id == cam.grid_id:
                yield cam, lat, lon, place.zone_ids


def build_workload(events: int, tracks: int, seed: int, period_s: float, churn: float,
                   decimals: int, jitter_ms: int, spread: Callable[[Device], int] | None = None) -> Workload:
    """``events`` camera messages (one detection each) over ``tracks`` tracks alive at once.

    A new track's label is drawn by :data:`LABEL_WEIGHTS`, then its camera among those where
    the label matches: uniformly, or with ``spread``, uniformly among the groups it puts those
    cameras in and then within the group (the runtime benchmark: the internal partition of
    the camera's grid, so that every partition gets as many tracks)."""
    began = time.perf_counter()
    rng = random.Random(seed)
    city = CityMap.load(MAP)  # a private copy: its locate cache is spoilt by the sampling below
    rules = _camera_rules(load_rules([PACK]))
    t0 = parse_timestamp_ms(START)
    rounds = math.ceil(events / tracks)
    period_ms = period_s * 1000.0
    times = (t0, t0 + int(rounds * period_ms) + jitter_ms)

    # Where each label matches near each camera: sample points around it (in its grid).
    spots: dict[str, dict[str, list[tuple[float, float]]]] = {lb: {} for lb in LABEL_WEIGHTS}
    cams = {c.id: c for c in city.cameras.values()}
    for cam, lat, lon, zone_ids in camera_spots(city, rng):
        for lb in LABEL_WEIGHTS:
            if _label_matches(city, rules, lb, zone_ids, times):
                spots[lb].setdefault(cam.id, []).append((lat, lon))
    labels = [lb for lb in LABEL_WEIGHTS if spots[lb]]
    if not labels:
        raise SystemExit("no camera of the demo map has a label the default pack matches")
    weights = [LABEL_WEIGHTS[lb] for lb in labels]
    groups_for: dict[str, list[list[str]]] = {}
    for lb in labels:
        grouped: dict[int, list[str]] = {}
        for cam_id in sorted(spots[lb]):
            grouped.setdefault(spread(cams[cam_id]) if spread is not None else 0, []).append(cam_id)
        groups_for[lb] = [grouped[k] for k in sorted(grouped)]

    counter = 0

    def new_track() -> list[Any]:
        nonlocal counter
        counter += 1
        label = rng.choices(labels, weights)[0]
        groups = groups_for[label]
        # one group (no spread): one draw, so the workload stays what it was before spreads
        cam = cams[rng.choice(groups[0] if len(groups) == 1 else rng.choice(groups))]
        for _ in range(30):  # a fresh base point in the camera's grid where the label matches
            lat, lon = _around(rng, cam, SPREAD_M)
            place = city.locate(lat, lon)
            if place is not None and place.grid_id == cam.grid_id and \
                    _label_matches(city, rules, label, place.zone_ids, times):
                break
        else:
            lat, lon = rng.choice(spots[label][cam.id])
        m_lon = M_PER_DEG * math.cos(math.radians(cam.lat))
        sigma = SIGMA_MOBILE_M if label in MOBILE else SIGMA_STILL_M
        return [cam.id, label, lat, lon, sigma / M_PER_DEG, sigma / m_lon, f"t-{counter}"]

    alive = [new_track() for _ in range(tracks)]
    step = period_ms / tracks
    seq: Counter[str] = Counter()
    fmt = city.calendar.format
    cache: set[tuple[float, float]] = {(d.lat, d.lon) for d in (*city.cameras.values(),
                                                                 *city.sensors.values())}
    hits = 0
    messages: list[bytes] = []
    keys: list[str] = []
    label_count: Counter[str] = Counter()
    dumps, gauss, uniform, rnd = orjson.dumps, rng.gauss, rng.uniform, round
    k = 0
    while k < events:
        if k and churn:  # some tracks leave and new ones arrive, so episodes also end
            for i in rng.sample(range(tracks), int(tracks * churn)):
                alive[i] = new_track()
        order = list(range(tracks))
        rng.shuffle(order)
        for i in order:
            if k >= events:
                break
            cam_id, label, lat, lon, s_lat, s_lon, track = alive[i]
            seq[cam_id] += 1
            n = seq[cam_id]
            t = t0 + int(k * step) + rng.randrange(jitter_ms + 1)
            p_lat, p_lon = rnd(lat + gauss(0.0, s_lat), decimals), rnd(lon + gauss(0.0, s_lon), decimals)
            if (p_lat, p_lon) in cache:
                hits += 1
            else:
                if len(cache) >= LOCATE_CACHE_LIMIT:
                    cache.clear()
                cache.add((p_lat, p_lon))
            x, y = uniform(0.05, 0.7), uniform(0.05, 0.7)
            messages.append(dumps({
                "event_id": f"{cam_id}-{n:09d}", "camera_id": cam_id, "observed_at": fmt(t),
                "snapshot_url": f"https://evidence.example/{cam_id}/{n}.jpg",
                "detections": [{
                    "label": label, "track_id": track, "confidence": rnd(uniform(0.62, 0.98), 2),
                    "bbox": [rnd(x, 3), rnd(y, 3), rnd(uniform(0.02, 0.3), 3), rnd(uniform(0.02, 0.3), 3)],
                    "location": {"lat": p_lat, "lon": p_lon}}]}))
            keys.append(cam_id)
            label_count[label] += 1
            k += 1
    used = len({c for lb in labels for group in groups_for[lb] for c in group})
    return Workload(messages, keys, tracks, counter, t0, t0 + int(events * step) + jitter_ms,
                    label_count, used, events, hits, time.perf_counter() - began)


# -- the timed passes -------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    wall_s: float
    cpu_s: float
    gc_s: float = 0.0
    gc_runs: int = 0
    outputs: int = 0
    dead: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class _GcTimer:
    """Time spent in the cyclic garbage collector, from gc.callbacks."""

    def __init__(self) -> None:
        self.total = 0.0
        self.runs = 0
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._t
            self.runs += 1

    def __enter__(self) -> _GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self)


def _fresh() -> tuple[CityMap, RuleSet]:
    return CityMap.load(MAP), load_rules([PACK])


def pass_decode(w: Workload) -> Run:
    """Decoding as ingest does it: msgspec's fast path, pydantic where it declines. (Timing
    pydantic alone, as this pass once did, made "ingest alone" the difference of two
    different decoders: 1.92 µs where ingest beyond decoding costs ~3.5.)"""
    msgs, src = w.messages, Source.CAMERA
    gc.collect()
    with _GcTimer() as gct:
        c0, t0 = time.process_time(), time.perf_counter()
        for raw in msgs:
            if fast_camera(raw) is None:
                decode(src, raw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Run(wall, cpu, gct.total, gct.runs)


def pass_ingest(w: Workload) -> Run:
    city, rules = _fresh()
    ingest = Ingest(city, rules, clock="event")
    msgs, keys, src = w.messages, w.keys, Source.CAMERA
    dead = 0
    gc.collect()
    with _GcTimer() as gct:
        c0, t0 = time.process_time(), time.perf_counter()
        for i, raw in enumerate(msgs):
            result = ingest(src, TOPIC, raw, key=keys[i], arrival=None, partition=0, offset=i)
            if isinstance(result, BadInput):
                dead += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Run(wall, cpu, gct.total, gct.runs, dead=dead)


def feed_all(ingest: Ingest, engine: Engine, msgs: list[bytes], keys: list[str],
             batch: int = BATCH) -> tuple[int, int]:
    """The timed path: ingest every message, and give the engine the parts of ``batch``
    messages at a time (``Engine.feed_batch``, as a worker does with what one fetch brings),
    or each part alone (``batch`` 0: ``Engine.feed``, as ``cityorder replay`` does)."""
    src = Source.CAMERA
    outputs = dead = 0
    parts: list[Input] = []
    for i, raw in enumerate(msgs):
        result = ingest(src, TOPIC, raw, key=keys[i], arrival=None, partition=0, offset=i)
        if isinstance(result, BadInput):
            dead += 1
        elif batch:
            parts += result
        else:
            for part in result:
                outputs += len(engine.feed(part))
        if batch and (len(parts) >= batch or i == len(msgs) - 1):
            outputs += len(engine.feed_batch(parts))
            parts = []
    return outputs, dead


@contextlib.contextmanager
def _tuned_gc() -> Iterator[None]:
    """The collector settings every cityorder command runs with (streams.tuning), restored
    after. The profile needs them as much as the timed pass: a collection is charged to
    whichever function happens to allocate, so under the interpreter's defaults a profile
    shows the collector's work spread over innocent functions."""
    thresholds = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def pass_full(w: Workload, batch: int = BATCH) -> Run:
    city, rules = _fresh()
    ingest = Ingest(city, rules, clock="event")
    engine = Engine(city, rules, clock="event")
    with _tuned_gc(), _GcTimer() as gct:
        c0, t0 = time.process_time(), time.perf_counter()
        outputs, dead = feed_all(ingest, engine, w.messages, w.keys, batch)
        outputs += len(engine.finish())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    subjects, running = subject_stats(engine)
    st = engine.stats
    # Only figures leave: a kept engine would make the next run's collector walk its state too.
    extra = {"subjects": subjects, "running": running, "transitions": dict(st.transitions),
             "evicted": st.evicted, "late": sum(st.late.values())}
    return Run(wall, cpu, gct.total, gct.runs, outputs, dead, extra)


def median_run(fn: Callable[[], Run], runs: int, label: str) -> tuple[Run, list[Run]]:
    done: list[Run] = []
    for i in range(runs):
        r = fn()
        done.append(r)
        print(f"  {label} run {i + 1}/{runs}: {r.wall_s:.2f} s wall, {r.cpu_s:.2f} s cpu", flush=True)
        if r.wall_s > LONG_RUN_S:
            break
    ordered = sorted(done, key=lambda r: r.wall_s)
    return ordered[(len(ordered) - 1) // 2], done


# -- memory -----------------------------------------------------------------------------------


def subject_stats(engine: Engine) -> tuple[int, int]:
    """(subjects, subjects whose operator episode is running)."""
    running = sum(1 for g in engine.grids.values() for s in g.each_subject() if s.state.running)
    return engine.subject_count(), running


_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
         types.CodeType)


def _walk(roots: Iterable[object], seen: set[int], sizes: Counter[str] | None) -> int:
    """Sum sys.getsizeof over everything reachable from ``roots`` not yet in ``seen``."""
    total = 0
    stack = list(roots)
    getsizeof, referents = sys.getsizeof, gc.get_referents
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen:
            continue
        seen.add(i)
        if isinstance(o, _SKIP):
            continue
        size = getsizeof(o)
        total += size
        if sizes is not None:
            sizes[type(o).__name__] += size
        stack.extend(referents(o))
    return total


def state_breakdown(engine: Engine) -> tuple[dict[str, int], Counter[str], Counter[str]]:
    """Engine state by where it hangs and by object type (shared objects counted once, at the
    first place they are reached; the map, the rules and the rule index are not state)."""
    seen: set[int] = set()
    _walk([engine.city, engine.rules, engine.by_kind, engine.any_kind, engine.watchers, engine.logic,
           engine.ttl, engine.camera_rule_ids, engine.scheduled_zones, engine.cal, engine.fmt,
           *Source], seen, None)
    grids = list(engine.grids.values())
    roots: list[tuple[str, list[object]]] = [
        ("subjects: Subject + op state + evidence", [g.subjects for g in grids]),
        ("alerts, cases, hot list", [(g.alerts, g.cases, g.hot) for g in grids]),
        ("LRU of camera subjects", [g.lru for g in grids]),
        ("timer heap", [engine.timers]),
        ("reorder heap (pending input)", [engine.pending]),
        # one root: the dict of a group's ids does not reach them (CPython does not traverse
        # str keys), its expiry lists do
        ("`seen` de-duplication memory", [engine.seen, engine.expiring, engine.expiring_at]),
        ("rest (stats, grid objects, ...)", [engine]),
    ]
    by_root: dict[str, int] = {}
    subj_types: Counter[str] = Counter()
    all_types: Counter[str] = Counter()
    for name, objs in roots:
        sizes: Counter[str] = Counter()
        by_root[name] = _walk(objs, seen, sizes)
        all_types.update(sizes)
        if name.startswith("subjects"):
            subj_types = sizes
    return by_root, subj_types, all_types


@dataclass(slots=True)
class Memory:
    events: int
    traced_bytes: int
    locate_cache_bytes: int
    subjects: int
    running: int
    by_root: dict[str, int]
    subj_types: Counter[str]
    all_types: Counter[str]
    walked_bytes: int
    seen_entries: int
    timer_entries: int
    pending_entries: int
    locate_calls: int
    locate_misses: int


def pass_memory(w: Workload, events: int) -> Memory:
    """tracemalloc: traced bytes after feeding ``events`` messages minus before (engine and
    ingest built, input already in memory), with the map's locate cache released first."""
    city, rules = _fresh()
    ingest = Ingest(city, rules, clock="event")
    engine = Engine(city, rules, clock="event")
    misses = 0
    original = city._locate

    def counting(lat: float, lon: float) -> Any:
        nonlocal misses
        misses += 1
        return original(lat, lon)

    city._locate = counting  # type: ignore[method-assign]  # counts cache misses (untimed pass)
    msgs, keys = w.messages[:events], w.keys[:events]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    feed_all(ingest, engine, msgs, keys)
    engine.out = []
    gc.collect()
    with_cache = tracemalloc.get_traced_memory()[0]
    city._cache.clear()
    city._cells.clear()
    ingest.ignored.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    subjects, running = subject_stats(engine)
    by_root, subj_types, all_types = state_breakdown(engine)
    return Memory(events, after - before, with_cache - after, subjects, running, by_root, subj_types,
                  all_types, sum(by_root.values()), engine.sizes().dedup_ids, len(engine.timers),
                  len(engine.pending), events, misses)


# -- profile ----------------------------------------------------------------------------------


def profile(w: Workload, events: int, top: int = 25) -> str:
    city, rules = _fresh()
    ingest = Ingest(city, rules, clock="event")
    engine = Engine(city, rules, clock="event")
    prof = cProfile.Profile()
    with _tuned_gc():
        prof.enable()
        feed_all(ingest, engine, w.messages[:events], w.keys[:events])
        engine.finish()
        prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return buf.getvalue()


# -- report -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _kb(n: float) -> str:
    return f"{n / 1024:,.0f} KB" if n < 10 * 1024 * 1024 else f"{n / 1024 / 1024:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.engine_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="camera messages (default 1M)")
    ap.add_argument("--subjects", type=int, default=50_000, help="tracks alive at once (default 50k)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help=f"cProfile {PROFILE_EVENTS:,} events")
    ap.add_argument("--batch", type=int, default=BATCH,
                    help=f"parts per Engine.feed_batch (default {BATCH}); 0: Engine.feed one by one")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per pass; the median is reported")
    ap.add_argument("--period", type=float, default=30.0,
                    help="seconds of event time between two sightings of a track, on average")
    ap.add_argument("--churn", type=float, default=0.01,
                    help="share of tracks replaced by new ones every period (episodes end)")
    ap.add_argument("--decimals", type=int, default=5,
                    help="decimals of reported lat/lon (5 ~ 1 m); decides the locate cache hit rate")
    ap.add_argument("--jitter-ms", type=int, default=1000, help="event-time disorder, within 5 s")
    ap.add_argument("--mem-events", type=int, default=None,
                    help="messages in the tracemalloc pass (default: 12 sightings per track)")
    ap.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    ap.add_argument("--gc-threshold", default=None, metavar="G0,G1,G2",
                    help="gc.set_threshold for every pass (default: the interpreter's)")
    ap.add_argument("--skip-breakdown", action="store_true", help="only the full path and memory")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.gc_threshold:
        gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))

    print(f"building {args.events:,} camera messages over {args.subjects:,} tracks ...", flush=True)
    w = build_workload(args.events, args.subjects, args.seed, args.period, args.churn, args.decimals,
                       args.jitter_ms)
    n = len(w.messages)
    hit = w.locate_hits / max(1, w.locate_calls)
    span_s = (w.last_ms - w.first_ms) / 1000
    print(f"  built in {w.build_s:.1f} s: mean {w.mean_bytes:.0f} B/message, {w.tracks_total:,} "
          f"distinct tracks, {w.cameras_used} cameras, {span_s / 60:.1f} min of event time", flush=True)
    print(f"  example: {w.messages[0].decode()}", flush=True)

    full, full_runs = median_run(lambda: pass_full(w, args.batch), args.runs, "full")
    subjects, running = full.extra["subjects"], full.extra["running"]
    transitions, evicted, late = full.extra["transitions"], full.extra["evicted"], full.extra["late"]
    dec = ing = None
    if not args.skip_breakdown:
        dec, _ = median_run(lambda: pass_decode(w), args.runs, "decode")
        ing, _ = median_run(lambda: pass_ingest(w), args.runs, "decode+ingest")
    mem_events = min(n, args.mem_events or args.subjects * 12)
    print(f"  memory pass (tracemalloc) over {mem_events:,} messages ...", flush=True)
    mem = pass_memory(w, mem_events)
    prof = profile(w, min(n, PROFILE_EVENTS)) if args.profile else None

    eps = n / full.wall_s
    us = lambda r: r.wall_s / n * 1e6  # noqa: E731
    per_subject = mem.traced_bytes / max(1, mem.subjects)
    per_running = mem.traced_bytes / max(1, mem.running)
    rline = "=" * 96
    print()
    print(rline)
    print("cityorder engine benchmark")
    print(rline)
    aff = sorted(os.sched_getaffinity(0))
    print(f"machine     : {_cpu_model()}, nproc {os.cpu_count()}, affinity {aff}, "
          f"load avg {os.getloadavg()[0]:.2f} at end")
    print(f"python      : {platform.python_implementation()} {platform.python_version()} "
          f"({sys.executable}); single-threaded, cpu/wall {full.cpu_s / full.wall_s:.2f}, "
          f"gc thresholds {gc.get_threshold()}")
    print(f"input       : {n:,} camera messages from bytes (1 detection each, mean "
          f"{w.mean_bytes:.0f} B), {args.subjects:,} tracks alive at once ({w.tracks_total:,} "
          f"distinct, churn {args.churn:.0%}/period),")
    print(f"              re-seen every ~{args.period:g} s, {span_s / 60:.1f} min of event time "
          f"from {START}, seed {args.seed}")
    print(f"locate      : {hit:.1%} cache hits / {1 - hit:.1%} misses (lat/lon at {args.decimals} "
          f"decimals, tracks within {SPREAD_M:g} m of their camera, noise {SIGMA_STILL_M:g} m "
          f"still / {SIGMA_MOBILE_M:g} m mobile)")
    print(f"labels      : {', '.join(f'{k} {v / n:.0%}' for k, v in w.labels.most_common())}")
    print(f"engine      : {subjects:,} subjects at end ({running:,} with a running episode), "
          f"{full.outputs:,} outputs, {full.dead} dead letters, {late} late, {evicted} evicted")
    print(f"transitions : {', '.join(f'{k} {v:,}' for k, v in sorted(transitions.items()))}")
    print("-" * 96)
    runs_txt = ", ".join(f"{r.wall_s:.2f}" for r in full_runs)
    how = f"median of {len(full_runs)}" if len(full_runs) > 1 else "1 run"
    print(f"{'pass':34} {'µs/event':>10} {'events/s':>12}   notes")
    if dec is not None and ing is not None:
        print(f"{'decode only (as ingest decodes)':34} {us(dec):10.2f} {n / dec.wall_s:12,.0f}   "
              f"median of {args.runs}")
        print(f"{'decode + ingest (locate, parts)':34} {us(ing):10.2f} {n / ing.wall_s:12,.0f}   "
              f"ingest alone {us(ing) - us(dec):.2f} µs")
    print(f"{'full: ingest + engine.feed/finish':34} {us(full):10.2f} {eps:12,.0f}   {how} "
          f"(runs {runs_txt} s)")
    if ing is not None:
        print(f"{'  of which engine':34} {us(full) - us(ing):10.2f} {'':12}   full − (decode+ingest)")
    print(f"{'  of which cyclic GC':34} {full.gc_s / n * 1e6:10.2f} {'':12}   "
          f"{full.gc_runs:,} collections, {full.gc_s:.2f} s")
    print("-" * 96)
    print(f"memory (tracemalloc, separate pass of {mem.events:,} messages, no finish): engine state "
          f"{_kb(mem.traced_bytes)}")
    print(f"  (map's locate cache, released before measuring, not engine state: "
          f"{_kb(mem.locate_cache_bytes)}; {mem.locate_calls - mem.locate_misses:,} hits / "
          f"{mem.locate_misses:,} misses in this pass)")
    print(f"  subjects {mem.subjects:,} ({mem.running:,} running) -> {per_subject:,.0f} B/subject, "
          f"{per_running:,.0f} B/running subject")
    print(f"  entries: seen {mem.seen_entries:,}, timers {mem.timer_entries:,}, "
          f"pending {mem.pending_entries:,}")
    print(f"  by where it hangs (sys.getsizeof walk, total {_kb(mem.walked_bytes)}):")
    for name, size in sorted(mem.by_root.items(), key=lambda kv: -kv[1]):
        print(f"    {name:40} {_kb(size):>10}  {size / max(1, mem.subjects):7,.0f} B/subject")
    print("  subjects' share by object type:")
    for name, size in mem.subj_types.most_common(10):
        print(f"    {name:40} {_kb(size):>10}  {size / max(1, mem.subjects):7,.0f} B/subject")
    print("-" * 96)
    ok_eps = eps >= TARGET_EVENTS_PER_S
    ok_mem = per_subject <= TARGET_BYTES_PER_SUBJECT
    print(f"{'target':44} {'measured':>14} {'verdict':>8}")
    print(f"{'>= 60,000 events/s end to end, one core':44} {eps:14,.0f} "
          f"{'PASS' if ok_eps else 'SHORT':>8}"
          + ("" if ok_eps else f"  ({1 - eps / TARGET_EVENTS_PER_S:.0%} below; "
             f"{TARGET_EVENTS_PER_S / eps:.2f}x needed)"))
    print(f"{'<= 2 KB engine state per active subject':44} {per_subject:12,.0f} B "
          f"{'PASS' if ok_mem else 'SHORT':>8}"
          + ("" if ok_mem else f"  ({per_subject / TARGET_BYTES_PER_SUBJECT:.1f}x the target)"))
    print(f"{'>= 1M events, >= 50k active subjects':44} {f'{n:,} / {subjects:,}':>14} "
          f"{'PASS' if n >= 1_000_000 and subjects >= 50_000 and mem.subjects >= 50_000 else 'SHORT':>8}")
    print(rline)
    if prof is not None:
        print(f"\ncProfile of the full path, {min(n, PROFILE_EVENTS):,} events, top 25 by tottime:")
        print(prof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
