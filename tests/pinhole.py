"""A pinhole camera over flat ground, to make calibration reference points as a surveyor would
measure them, and a demo city map whose camera is calibrated with them (the adapters' tests)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import orjson

from rules.calibration import M_PER_DEG
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH

W, H = 1920, 1080
#: Reference pixels spread over the lower part of a 1920×1080 frame, where the ground is.
PIXELS = [(200.0, 1000.0), (1750.0, 980.0), (1500.0, 650.0), (380.0, 700.0), (960.0, 820.0)]


def camera(height_m: float, pitch_deg: float, yaw_deg: float, focal: float) -> np.ndarray:
    """Ground (east, north, 1) in metres → pixel (u, v, w): a pinhole camera at the origin,
    ``height_m`` above the ground, looking ``pitch_deg`` below the horizon towards ``yaw_deg``
    (clockwise from north)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), -math.sin(pitch)])
    right = np.array([math.cos(yaw), -math.sin(yaw), 0.0])
    down = np.cross(forward, right)
    rotation = np.vstack((right, down, forward))      # world → camera axes (x right, y down, z ahead)
    t = -rotation @ np.array([0.0, 0.0, height_m])
    k = np.array([[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]])
    return k @ np.column_stack((rotation[:, 0], rotation[:, 1], t))


def ground_of(m: np.ndarray, u: float, v: float) -> tuple[float, float]:
    """The (east, north) metres a pixel shows."""
    east, north, w = np.linalg.inv(m) @ np.array([u, v, 1.0])
    return east / w, north / w


def position(lat0: float, lon0: float, east: float, north: float) -> tuple[float, float]:
    """(lat, lon) of a point ``east`` and ``north`` metres from (lat0, lon0)."""
    return lat0 + north / M_PER_DEG, lon0 + east / (M_PER_DEG * math.cos(math.radians(lat0)))


def calibrated_geojson(camera_id: str = "cam-0012", m: np.ndarray | None = None) -> dict[str, Any]:
    """The demo city's map with ``camera_id`` (the recorded samples' camera) calibrated for a
    camera ``m`` at its registered position (8 m up, 30° down, looking north by default)."""
    m = camera(8, 30, 0, 1400) if m is None else m
    geo: dict[str, Any] = copy.deepcopy(orjson.loads(GEOJSON_PATH.read_bytes()))
    (feature,) = [f for f in geo["features"] if f["properties"].get("id") == camera_id]
    lon0, lat0 = feature["geometry"]["coordinates"]
    points = []
    for u, v in PIXELS:
        lat, lon = position(lat0, lon0, *ground_of(m, u, v))
        points.append({"pixel": [u, v], "position": [float(lon), float(lat)]})
    feature["properties"] = {**feature["properties"], "calibration": {"image": [W, H], "points": points}}
    return geo


def calibrated_city(camera_id: str = "cam-0012", m: np.ndarray | None = None) -> tuple[CityMap, np.ndarray]:
    """:func:`calibrated_geojson` loaded, and the camera it was calibrated for."""
    m = camera(8, 30, 0, 1400) if m is None else m
    return CityMap.from_geojson(calibrated_geojson(camera_id, m), "<calibrated demo city>"), m
