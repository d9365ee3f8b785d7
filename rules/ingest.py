"""From raw bytes on a topic to the engine's per-grid parts, or a dead-letter reason.

Decoding and validation are the models' job; this adds what needs the city map and the
rules: which grid and zones a location is in, whether a device is registered, whether a
report's category is one anyone handles, and whether a timestamp is from the future or the
message's arrival (Kafka's timestamp, which can be -1 or absurd) is unusable. Everything that
is not used is either a reason (dead letter) or counted by value (``ignored``): nothing
disappears without a trace.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from sys import intern

from models.decode import BadInput, CameraEvent, Event, Feedback, ReportEvent, SensorEvent, Source, decode
from models.fastdecode import FastCamera
from models.fastdecode import camera as fast_camera
from models.timestamps import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, TIMESTAMP_RANGE
from models.vocabulary import CAMERA_LABELS, SENSOR_CATEGORIES
from rules.citymap import CityMap, Device, Place
from rules.inputs import CAMERA, FEEDBACK, REPORT, SENSOR, FeedbackIn, Input, Obs
from rules.pack import RuleSet

FUTURE_LIMIT_MS = 5 * 60_000

# Where a message came from: topic, arrival, key, partition, offset.
Base = tuple[str, int | None, str | None, int | None, int | None]


def _fields(base: Base) -> dict[str, object]:
    topic, arrival, key, partition, offset = base
    return {"topic": topic, "arrival": arrival, "key": key, "partition": partition,
            "offset": offset}


@dataclass(slots=True)
class Ingest:
    """Bound to one map and rule set; counts what it ignores in ``ignored``.

    Only a message that is used (parts returned) is counted there: a message found bad
    after one of its detections was ignored is a dead letter, not also an ignored label.

    >>> ingest = Ingest(city, rules, clock="event")         # doctest: +SKIP
    >>> result = ingest(Source.CAMERA, "city.events.camera", raw, key="cam-1", arrival=None)  # doctest: +SKIP
    """

    city: CityMap
    rules: RuleSet
    clock: str = "event"
    ignored: Counter[tuple[str, str]] = field(default_factory=Counter)
    categories: frozenset[str] = field(init=False)
    labels: frozenset[str] = field(init=False)
    # What the message being ingested ignored, counted once it is known to be used.
    _noted: list[tuple[str, str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.categories = CAMERA_LABELS | SENSOR_CATEGORIES | {"other"} | self.rules.categories
        # the contract's labels and the ones the packs declare (a city's own detectors)
        self.labels = CAMERA_LABELS | self.rules.labels

    def __call__(self, source: Source, topic: str, raw: bytes, *, key: str | None = None,
                 arrival: int | None = None, partition: int | None = None,
                 offset: int | None = None) -> list[Input] | BadInput:
        fast = fast_camera(raw) if source is CAMERA else None
        msg: Event | FastCamera
        if fast is not None:
            msg, t = fast
        else:
            decoded = decode(source, raw)
            if isinstance(decoded, BadInput):
                return decoded
            msg = decoded
            t = msg.at if isinstance(msg, Feedback) else msg.observed_at
        if arrival is not None and not MIN_TIMESTAMP_MS <= arrival < MAX_TIMESTAMP_MS:
            # The arrival orders input and drives a wall clock: one outside the range would
            # move a clock where no time can be written (or back before every input).
            return BadInput("bad_timestamp",
                            f"arrival: the record's timestamp ({arrival} ms since the epoch) is "
                            f"not a usable arrival: it must lie in {TIMESTAMP_RANGE}",
                            msg.event_id)
        if self.clock == "wall" and arrival is not None and t > arrival + FUTURE_LIMIT_MS:
            field_name = "at" if isinstance(msg, Feedback) else "observed_at"
            return BadInput("future_timestamp",
                            f"{field_name}: more than 5 minutes ahead of the message's arrival",
                            msg.event_id)
        base = (topic, arrival, key, partition, offset)
        noted = self._noted
        noted.clear()
        if isinstance(msg, (FastCamera, CameraEvent)):
            out = self._camera(msg, t, base)
        elif isinstance(msg, SensorEvent):
            out = self._sensor(msg, base)
        elif isinstance(msg, ReportEvent):
            out = self._report(msg, base)
        else:
            return self._feedback(msg, base, raw)
        if noted and not isinstance(out, BadInput):
            for what in noted:
                self.ignored[what] += 1
        return out

    def _place(self, where: str, lat: float, lon: float, event_id: str) -> Place | BadInput:
        """A bad coordinate is never replaced by a device's registered position: a location
        in no grid is bad input, named by the field that carried it."""
        place = self.city.locate(lat, lon)
        if place is None:
            return BadInput("outside_map", f"{where}: ({lat}, {lon}) is in no grid of the city map",
                            event_id)
        return place

    def _camera(self, msg: CameraEvent | FastCamera, t: int, base: Base) -> list[Input] | BadInput:
        cam = self.city.cameras.get(msg.camera_id)
        if cam is not None and len(msg.detections) == 1:
            one = self._one_detection(msg, cam, t, base)
            if one is not None:
                return one
        groups: dict[str, list[Obs]] = {}
        if not msg.detections:
            if cam is None:
                return BadInput("unregistered_device",
                                f"camera_id: camera {msg.camera_id} is not in the city map, so its "
                                "heartbeats cannot be placed", msg.event_id)
            self._noted.append(("heartbeat", "camera"))
        for i, d in enumerate(msg.detections):
            if d.location is not None:
                lat, lon = d.location.lat, d.location.lon
                place = self._place(f"detections[{i}].location", lat, lon, msg.event_id)
                if isinstance(place, BadInput):
                    return place
                grid_id, zone_ids = place.grid_id, place.zone_ids
            elif cam is not None:
                lat, lon, grid_id, zone_ids = cam.lat, cam.lon, cam.grid_id, cam.zone_ids
            else:
                return BadInput("unregistered_device",
                                f"detections[{i}].location: camera {msg.camera_id} is not in the "
                                "city map, so every detection needs a location", msg.event_id)
            if d.label not in self.labels:
                self._noted.append(("label", d.label))
                groups.setdefault(grid_id, [])
                continue
            # Interned: a track's id and label repeat in every frame, and evidence keeps ten.
            track = intern(d.track_id) if d.track_id is not None else None
            groups.setdefault(grid_id, []).append(Obs(
                intern(d.label), lat, lon, zone_ids, True, track, d.confidence))
        home = cam.grid_id if cam is not None else None
        if home is not None:
            groups.setdefault(home, [])
        topic, arrival, key, partition, offset = base
        camera_id = intern(msg.camera_id)
        return [Input(CAMERA, topic, msg.event_id, t, gid, camera_id,
                      gid == home, msg.snapshot_url, tuple(obs), None, arrival, key, partition,
                      offset)
                for gid, obs in (groups.items() if len(groups) == 1 else sorted(groups.items()))]

    def _one_detection(self, msg: CameraEvent | FastCamera, cam: Device, t: int, base: Base
                       ) -> list[Input] | None:
        """The common message, a registered camera's one detection of a known label in its
        own grid, built without the general case's grouping (None: not that message)."""
        d = msg.detections[0]
        if d.label not in self.labels:
            return None
        loc = d.location
        if loc is None:
            lat, lon, zone_ids = cam.lat, cam.lon, cam.zone_ids
        else:
            lat, lon = loc.lat, loc.lon
            place = self.city.locate(lat, lon)
            if place is None or place.grid_id != cam.grid_id:
                return None
            zone_ids = place.zone_ids
        track = intern(d.track_id) if d.track_id is not None else None
        obs = Obs(intern(d.label), lat, lon, zone_ids, True, track, d.confidence)
        topic, arrival, key, partition, offset = base
        return [Input(CAMERA, topic, msg.event_id, t, cam.grid_id, cam.id, True, msg.snapshot_url,
                      (obs,), None, arrival, key, partition, offset)]

    def _sensor(self, msg: SensorEvent, base: Base) -> list[Input] | BadInput:
        sensor = self.city.sensors.get(msg.sensor_id)
        if msg.location is not None:
            lat, lon = msg.location.lat, msg.location.lon
            place = self._place("location", lat, lon, msg.event_id)
            if isinstance(place, BadInput):
                return place
            grid_id, zone_ids = place.grid_id, place.zone_ids
        elif sensor is not None:
            lat, lon, grid_id, zone_ids = sensor.lat, sensor.lon, sensor.grid_id, sensor.zone_ids
        else:
            return BadInput("unregistered_device",
                            f"location: sensor {msg.sensor_id} is not in the city map, so its "
                            "readings need a location", msg.event_id)
        ignored = msg.ignored_reason
        groups: dict[str, tuple[Obs, ...]] = {}
        if ignored is not None:
            self._noted.append(ignored)
            groups[grid_id] = ()
        else:
            groups[grid_id] = (Obs(kind=msg.kind, lat=lat, lon=lon, zone_ids=zone_ids,
                                   state=msg.state, value=msg.value),)
        home = sensor.grid_id if sensor is not None else None
        if home is not None:
            groups.setdefault(home, ())
        return [Input(source=SENSOR, event_id=msg.event_id, time=msg.observed_at,
                      grid_id=gid, device_id=msg.sensor_id, alive=gid == home, obs=obs, **_fields(base))
                for gid, obs in sorted(groups.items())]

    def _report(self, msg: ReportEvent, base: Base) -> list[Input] | BadInput:
        if msg.location is not None:
            lat, lon = msg.location.lat, msg.location.lon
            place = self._place("location", lat, lon, msg.event_id)
            if isinstance(place, BadInput):
                return place
            grid_id, zone_ids, located = place.grid_id, place.zone_ids, True
        else:
            grid = self.city.grids.get(msg.grid_id or "")
            if grid is None:
                return BadInput("outside_map", f"grid_id: no grid {msg.grid_id} in the city map",
                                msg.event_id)
            lat, lon, grid_id, zone_ids, located = grid.lat, grid.lon, grid.id, (), False
        if msg.category not in self.categories:
            # Counted, and still passed on without observations: an accepted input moves the
            # engine's clock in event mode (the end of a replay counts it too).
            self._noted.append(("category", msg.category))
            return [Input(source=REPORT, event_id=msg.event_id, time=msg.observed_at,
                          grid_id=grid_id, **_fields(base))]
        obs = Obs(kind=msg.category, lat=lat, lon=lon, zone_ids=zone_ids, located=located,
                  report_source=msg.source, reporter_id=msg.reporter_id, address=msg.address,
                  photos=tuple(msg.photos) if msg.photos is not None else None)
        return [Input(source=REPORT, event_id=msg.event_id, time=msg.observed_at,
                      grid_id=grid_id, obs=(obs,), **_fields(base))]

    def _feedback(self, msg: Feedback, base: Base, raw: bytes) -> list[Input] | BadInput:
        grid_id = msg.grid_id
        if grid_id not in self.city.grids:
            return BadInput("unknown_alert",
                            f"alert_id: no alert {msg.alert_id} exists (grid {grid_id} is not in "
                            "the city map)", msg.event_id)
        fb = FeedbackIn(alert_id=msg.alert_id, action=msg.action, actor=msg.actor, note=msg.note,
                        assignee=msg.assignee,
                        photos=tuple(msg.photos) if msg.photos is not None else None,
                        until=msg.until)
        return [Input(source=FEEDBACK, event_id=msg.event_id, time=msg.at, grid_id=grid_id,
                      feedback=fb, raw=raw, **_fields(base))]
