"""Pixel to ground: the homography fitted from reference points puts every other pixel where a
real pinhole camera over flat ground would see it, and bad reference points are refused with a
message that says what to fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.calibration import M_PER_DEG, CalibrationError, fit
from tests import pinhole
from tests.pinhole import PIXELS, H, W, camera, ground_of

LAT0, LON0 = 30.3921, 104.5462


def position(east: float, north: float) -> tuple[float, float]:
    return pinhole.position(LAT0, LON0, east, north)


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot((a[1] - b[1]) * M_PER_DEG * math.cos(math.radians(LAT0)), (a[0] - b[0]) * M_PER_DEG)


def references(m: np.ndarray, pixels: list[tuple[float, float]] = PIXELS[:4]) -> list[tuple[float, ...]]:
    """(u, v, lat, lon) of each pixel: what a surveyor would measure on the ground it shows."""
    return [(u, v, *position(*ground_of(m, u, v))) for u, v in pixels]


@settings(max_examples=60, deadline=None)
@given(height=st.floats(4, 15), pitch=st.floats(20, 50), yaw=st.floats(-180, 180),
       focal=st.floats(900, 2500))
def test_four_points_place_every_other_pixel_where_the_camera_sees_it(
        height: float, pitch: float, yaw: float, focal: float) -> None:
    m = camera(height, pitch, yaw, focal)
    cal = fit(W, H, references(m))
    assert cal.rms_error_m < 1e-3
    rng = np.random.default_rng(7)
    for u, v in rng.uniform((0, 600), (W, H), size=(20, 2)):
        at = cal.ground(u, v)
        assert at is not None
        assert metres_between(at, position(*ground_of(m, u, v))) < 0.01


def test_more_points_with_pixel_noise_fit_by_least_squares() -> None:
    m = camera(8, 30, 20, 1400)
    pixels = [*PIXELS, (1200, 900), (600, 850)]
    rng = np.random.default_rng(3)
    refs = [(u + rng.normal(0, 1), v + rng.normal(0, 1), lat, lon)
            for u, v, lat, lon in references(m, pixels)]
    cal = fit(W, H, refs)
    assert 0 < cal.rms_error_m < 0.5
    at = cal.ground(1000, 750)
    assert at is not None and metres_between(at, position(*ground_of(m, 1000, 750))) < 0.5


def test_an_object_stands_at_its_box_bottom_centre_and_its_box_becomes_fractions() -> None:
    m = camera(8, 30, 0, 1400)
    cal = fit(W, H, references(m))
    at = cal.foot(960, 600, 1040, 720)
    assert at is not None and metres_between(at, position(*ground_of(m, 1000, 720))) < 0.01
    assert cal.box(960, 540, 1152, 810) == (0.5, 0.5, 0.1, 0.25)
    assert cal.box(-10, 1000, 100, 1200) == (0.0, 1000 / H, 100 / W, 80 / H)   # clipped to the frame


def test_the_sky_is_no_ground_position() -> None:
    m = camera(8, 10, 0, 1400)     # a shallow view: the horizon is in the picture, 247 px from the top
    cal = fit(W, H, references(m))
    assert cal.ground(W / 2, 0) is None
    assert cal.ground(W / 2, 1000) is not None


def rotated(refs: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """Each pixel paired with the next point's position: a table pasted one row off."""
    return [(*refs[i][:2], *refs[(i + 1) % len(refs)][2:]) for i in range(len(refs))]


@pytest.mark.parametrize(("change", "message"), [
    (lambda refs: refs[:3], "3 given, a homography needs at least 4"),
    (lambda refs: [(u, v, lon, lat) for u, v, lat, lon in refs], "not a WGS 84 position"),
    # Four points fit some view exactly whatever they are; a fifth lets the map check them.
    (lambda refs: [*refs[:4], (*refs[4][:2], refs[4][2] + 0.00005, refs[4][3])],
     "do not fit one ground plane"),
    (rotated, "do not fit one ground plane|beyond the horizon"),
    (lambda refs: [(100, 100, *refs[0][2:]), (200, 200, *refs[1][2:]), (300, 300, *refs[2][2:]),
                   (400, 100, *refs[3][2:])], "lie on one line"),
    (lambda refs: [(5000, 10, *refs[0][2:]), *refs[1:]], "outside the 1920×1080 image"),
    (lambda refs: [(math.nan, 10, *refs[0][2:]), *refs[1:]], "finite"),
])
def test_bad_reference_points_are_refused_with_what_to_fix(change: object, message: str) -> None:
    refs = references(camera(8, 30, 0, 1400), PIXELS)
    assert fit(W, H, refs).rms_error_m < 1e-3
    with pytest.raises(CalibrationError, match=message):
        fit(W, H, change(refs))  # type: ignore[operator]
