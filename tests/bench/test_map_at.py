"""The latency benchmark's city clock (bench.runtime_bench.map_at): the day and night runs
depend on it, so a wrong offset or a weekend left as a rest day would measure the other
workload under the wrong name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.runtime_bench import AT_HOURS, MAP, map_at
from rules.citymap import CityMap


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("utc", ["2026-12-05T17:40:00", "2026-12-07T03:05:00", "2026-10-01T23:59:00",
                                 "2026-06-15T10:00:00", "2026-06-15T22:30:00"])
@pytest.mark.parametrize("at", sorted(AT_HOURS))
def test_the_city_reads_the_hour_on_a_working_day(tmp_path: Path, utc: str, at: str) -> None:
    now = _ms(utc)
    path, said = map_at(at, now, tmp_path)
    cal = CityMap.load(path).calendar
    local = datetime.fromtimestamp(now / 1000, cal.tz)
    assert local.hour == AT_HOURS[at]
    assert local.minute == datetime.fromisoformat(utc).minute
    assert cal.is_workday(local.date()), said
    assert f"{local:%H:%M}" in said


def test_a_holiday_stops_being_one_and_the_rest_is_the_demo_map(tmp_path: Path) -> None:
    # 2026-10-01 is a holiday on the demo map (国庆); by day there it is 10:xx on the 1st.
    path, _ = map_at("day", _ms("2026-10-01T02:00:00"), tmp_path)
    demo, moved = CityMap.load(MAP), CityMap.load(path)
    assert moved.calendar.holidays == demo.calendar.holidays - {datetime(2026, 10, 1).date()}
    assert list(moved.grids) == list(demo.grids) and list(moved.zones) == list(demo.zones)


def test_now_is_the_demo_map_itself(tmp_path: Path) -> None:
    assert map_at("now", _ms("2026-12-05T17:40:00"), tmp_path)[0] == MAP
