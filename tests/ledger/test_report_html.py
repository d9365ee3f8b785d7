"""The HTML scorecard in a real browser (Debian's chromium, driven by Playwright): one file that
asks the network for nothing, with its table and three charts drawn."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from playwright.sync_api import sync_playwright

from streams.cli import main
from tests.ledger.test_assessment import AS_OF, LOG

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_the_html_report_is_self_contained_and_draws_its_charts(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, whose set-up installs Debian's "
                    "chromium package")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in LOG))
    page_path = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--alerts", str(alerts), "--date", "2026-11-20",
                                       "--as-of", AS_OF, "--by", "district", "--format", "html",
                                       "-o", str(page_path)])
    assert result.exit_code == 0, result.output
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            assert "督查考核 月报 2026-11-01" in page.title()
            rows = page.locator("tbody tr")
            assert rows.count() == 4                                  # total + 3 districts
            assert page.locator("tbody tr.bottom").count() == 3      # three groups: all bottom
            assert "合计" in rows.nth(0).inner_text() and "未指定" in rows.nth(1).inner_text()
            assert "66.67%" in rows.nth(0).inner_text()              # 结案率 4 / 6
            svgs = page.locator("figure svg")
            assert svgs.count() == 3
            for i in range(3):
                box = svgs.nth(i).bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 100
            assert page.locator("figure svg text").count() > 10      # labels are text, not paths
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert requests == [page_path.as_uri()], requests


def test_the_report_reads_the_city_map_the_services_were_given(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --city, CITYORDER_CITY: a supervisor's scorecard is on the city's own calendar
    and time zone, not the default one, when the deployment names its map only there."""
    from rules.demo.city import GEOJSON_PATH

    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in LOG))
    geo = orjson.loads(GEOJSON_PATH.read_bytes())
    geo["city"]["time_zone"] = "Europe/London"
    london = tmp_path / "london.geojson"
    london.write_bytes(orjson.dumps(geo))
    args = ["report", "--alerts", str(alerts), "--date", "2026-11-20", "--as-of", AS_OF, "--format", "json"]
    for name in [k for k in os.environ if k.startswith("CITYORDER_")]:
        monkeypatch.delenv(name)
    default = orjson.loads(CliRunner().invoke(main, args).stdout)
    monkeypatch.setenv("CITYORDER_CITY", str(london))
    from_env = orjson.loads(CliRunner().invoke(main, args).stdout)
    assert default["period"]["start"].endswith("+08:00"), default["period"]
    assert from_env["period"]["start"] == "2026-11-01T00:00:00.000+00:00", from_env["period"]
    monkeypatch.setenv("CITYORDER_CITY", str(tmp_path / "missing.geojson"))
    missing = CliRunner().invoke(main, args)
    assert missing.exit_code == 1 and "missing.geojson" in missing.output


def test_the_report_in_english_keeps_only_the_data_in_chinese(tmp_path: Path) -> None:
    """``--lang en``: the table and the HTML (its charts included) in English; the districts'
    names are the city's data and stay as written."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in LOG))
    data = sorted({m["district"] for m in LOG if m.get("district")}, key=len, reverse=True)
    for fmt in ("table", "html"):
        result = CliRunner().invoke(main, ["report", "--alerts", str(alerts), "--date", "2026-11-20",
                                           "--as-of", AS_OF, "--by", "district", "--format", fmt,
                                           "--lang", "en"])
        assert result.exit_code == 0, result.output
        text = result.output
        assert "Scorecards (Month): 2026-11-01" in text and "On-time closure rate" in text
        assert "Total" in text and "unassigned" in text
        for name in data:
            text = text.replace(name, "")
        assert not re.findall(r"[\u4e00-\u9fff]+", text), (fmt, re.findall(r"[\u4e00-\u9fff]+", text))
