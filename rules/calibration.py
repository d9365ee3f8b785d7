"""Where on the ground a camera's pixel is: a per-camera homography fitted at map load from
reference points (a pixel and the WGS 84 position it shows), so camera platforms that send
pixel boxes (DeepStream, Frigate) can be placed in grids and zones like any detection.

A homography maps one plane to another, here the image to the ground plane, which holds for a
fixed camera looking at flat ground: roads, squares, pavements. It is fitted in local metres
(east and north of the reference points' centre, an equirectangular projection that is exact
to centimetres over a camera's view) by the normalised direct linear transform (Hartley &
Zisserman, *Multiple View Geometry*, algorithm 4.2), from four or more points, no three of them
on one line. An object stands where the bottom centre of its box touches the ground.

Pure: no I/O; ``rules.citymap`` reads the points from the map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

#: Metres per degree of latitude on the mean Earth sphere (radius 6,371,008.8 m).
M_PER_DEG = 6_371_008.8 * math.pi / 180
#: The largest root-mean-square distance, in metres, between a reference point's position and
#: where the fitted homography puts its pixel: beyond it the points disagree (a typo, lat and lon
#: swapped, a point not on the ground) and the map is refused rather than placing objects wrong.
MAX_RMS_ERROR_M = 3.0


class CalibrationError(ValueError):
    """Reference points that cannot calibrate a camera; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """One camera's image (``width`` × ``height`` pixels) and its homography to the ground."""

    width: int
    height: int
    matrix: tuple[float, ...]          # 3×3, row-major: pixel (u, v, 1) → metres (x, y, w)
    origin: tuple[float, float]        # (lat, lon) of the local metric frame's origin
    rms_error_m: float                 # of the reference points, as fitted

    def ground(self, u: float, v: float) -> tuple[float, float] | None:
        """The (lat, lon) a pixel shows, or None for a pixel at or above the horizon (no
        ground point: the sky, or the far side of the homography's vanishing line)."""
        h = self.matrix
        w = h[6] * u + h[7] * v + h[8]
        if w <= 1e-12:
            return None
        x = (h[0] * u + h[1] * v + h[2]) / w
        y = (h[3] * u + h[4] * v + h[5]) / w
        lat0, lon0 = self.origin
        return lat0 + y / M_PER_DEG, lon0 + x / (M_PER_DEG * math.cos(math.radians(lat0)))

    def foot(self, left: float, top: float, right: float, bottom: float) -> tuple[float, float] | None:
        """Where an object whose box is (left, top, right, bottom) pixels stands."""
        return self.ground((left + right) / 2, bottom)

    def box(self, left: float, top: float, right: float, bottom: float) -> tuple[float, float, float, float]:
        """The box as the contract's ``bbox``: [x, y, w, h] as fractions of the frame, clipped
        to it (a tracker's box may run past the edge)."""
        x0, x1 = sorted((min(max(left, 0.0), self.width), min(max(right, 0.0), self.width)))
        y0, y1 = sorted((min(max(top, 0.0), self.height), min(max(bottom, 0.0), self.height)))
        return x0 / self.width, y0 / self.height, (x1 - x0) / self.width, (y1 - y0) / self.height


def fit(width: int, height: int, points: Sequence[tuple[float, float, float, float]]) -> Calibration:
    """A calibration from ``(u, v, lat, lon)`` reference points: pixel and the position it shows."""
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise CalibrationError(f"image: expected [width, height] in pixels, got [{width}, {height}]")
    if len(points) < 4:
        raise CalibrationError(f"points: {len(points)} given, a homography needs at least 4 "
                               "(pixels whose ground positions you know, spread over the image)")
    pts = np.asarray(points, dtype=float)
    if not np.isfinite(pts).all():
        raise CalibrationError("points: every pixel and position must be a finite number")
    for i, (u, v, lat, lon) in enumerate(points):
        if not (0 <= u <= width and 0 <= v <= height):
            raise CalibrationError(f"points[{i}]: pixel ({u}, {v}) is outside the {width}×{height} image")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CalibrationError(f"points[{i}]: ({lat}, {lon}) is not a WGS 84 position")
    lat0, lon0 = float(pts[:, 2].mean()), float(pts[:, 3].mean())
    ground = np.column_stack(((pts[:, 3] - lon0) * M_PER_DEG * math.cos(math.radians(lat0)),
                              (pts[:, 2] - lat0) * M_PER_DEG))
    pixels = pts[:, :2]
    if len(points) == 4:     # with more, some three may be on a line: the fit below tells
        for what, xy in (("pixels", pixels), ("positions", ground)):
            line = _three_on_a_line(xy)
            if line is not None:
                raise CalibrationError(f"points: the {what} of points{list(line)} lie on one line, "
                                       "which leaves the view undetermined: spread them over the image")
    h = _dlt(pixels, ground)
    centre = np.append(pixels.mean(axis=0), 1.0)
    if float(h[2] @ centre) < 0:      # the sign that puts the points in front of the camera
        h = -h
    cal = Calibration(width, height, tuple(float(x) for x in h.ravel()), (lat0, lon0), 0.0)
    errors = []
    for u, v, lat, lon in points:
        at = cal.ground(u, v)
        if at is None:
            raise CalibrationError(f"points: pixel ({u}, {v}) falls beyond the horizon of the fitted "
                                   "view: check that every point is on the ground and the pixels "
                                   "and positions are paired right")
        errors.append(math.hypot((at[1] - lon) * M_PER_DEG * math.cos(math.radians(lat0)),
                                 (at[0] - lat) * M_PER_DEG))
    rms = math.sqrt(sum(e * e for e in errors) / len(errors))
    if rms > MAX_RMS_ERROR_M:
        worst = max(range(len(errors)), key=errors.__getitem__)
        raise CalibrationError(f"points: they do not fit one ground plane (error {rms:.1f} m RMS, "
                               f"worst points[{worst}] at {errors[worst]:.1f} m; at most "
                               f"{MAX_RMS_ERROR_M} m): a typo, lat and lon swapped, or a point "
                               "not on the ground?")
    return Calibration(width, height, cal.matrix, cal.origin, rms)


def _three_on_a_line(xy: np.ndarray) -> tuple[int, int, int] | None:
    """Three of the points on one line (to within a thousandth of their spread), if any."""
    scale = float(np.ptp(xy, axis=0).max()) or 1.0
    for i, j, k in combinations(range(len(xy)), 3):
        a, b, c = xy[i], xy[j], xy[k]
        if abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) < 1e-3 * scale * scale:
            return i, j, k
    return None


def _normaliser(xy: np.ndarray) -> np.ndarray:
    """Hartley's conditioning: centre on the origin, mean distance sqrt(2)."""
    centre = xy.mean(axis=0)
    mean = float(np.sqrt(((xy - centre) ** 2).sum(axis=1)).mean()) or 1.0
    s = math.sqrt(2) / mean
    return np.array([[s, 0, -s * centre[0]], [0, s, -s * centre[1]], [0, 0, 1]])


def _dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    ts, td = _normaliser(src), _normaliser(dst)
    s = (ts @ np.column_stack((src, np.ones(len(src)))).T).T
    d = (td @ np.column_stack((dst, np.ones(len(dst)))).T).T
    rows = []
    for (x, y, _), (u, v, _) in zip(s, d, strict=True):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, sv, vt = np.linalg.svd(np.asarray(rows))
    if sv[7] < 1e-9 * sv[0]:
        raise CalibrationError("points: they leave the view undetermined (too many on one line): "
                               "spread them over the image")
    h = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
    return h / np.abs(h).max()
