"""Every query of every Grafana dashboard returns data from the real thing: a real Prometheus
(Debian's) scraping a real worker and a real ledger while the worker runs the demo day on the
embedded broker, with deploy/prometheus/rules.yml loaded (the dashboards read its recording
rules); and every SQL target runs on the ledger's real PostgreSQL filled by that run. A panel
whose query returns nothing, or only NaN, fails. The 督查考核 dashboard's figures are also
compared with ``cityorder report`` over the same cases: the two must agree.

No Grafana server is installable here, so Grafana's own macro and variable expansion is
stood in for by :func:`promql` and :func:`sql` (what Grafana sends for "All" and a time range).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.assessment import period_containing
from ledger.store import LedgerStore
from models.timestamps import parse_timestamp_ms
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from streams.settings import Settings
from tests.demo_day import day_lines
from tests.e2e.test_worker import produce
from tests.e2e.workers import LedgerProc, Worker, read_topic
from tests.pg import Postgres
from tests.promtool import Prometheus
from tests.scrape import undocumented

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DAY = date(2026, 11, 20)
#: What Grafana puts for its interval macros; 10 minutes covers the whole run.
MACROS = {"$__rate_interval": "10m", "$__range": "10m", "$__interval": "15s"}

pytestmark = pytest.mark.timeout(300)


def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def targets(board: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], t) for panel in board["panels"] for t in panel["targets"]
            if t["datasource"]["type"] == kind]


def promql(expr: str) -> str:
    """A target as Grafana sends it with every variable on "All" (its ``allValue``, ``.*``)."""
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    return re.sub(r"\$[a-z_]+", ".*", expr)


def sql(query: str, values: dict[str, list[str]], start_ms: int, t_ms: int) -> str:
    """A SQL target as Grafana's PostgreSQL data source expands it: a multi-value variable on
    "All" becomes its quoted values; the range macros its bounds in epoch seconds (exact to the
    millisecond here, where Grafana's are whole seconds)."""
    query = query.replace("$__unixEpochFrom()", f"{start_ms / 1000:.3f}")
    query = query.replace("$__unixEpochTo()", f"{t_ms / 1000:.3f}")
    query = query.replace("$tz", "Asia/Shanghai")
    for name, vals in values.items():
        query = query.replace(f"${name}", ", ".join("'" + v.replace("'", "''") + "'" for v in vals))
    assert "$" not in query, query
    return query


def finite(samples: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(s["value"][1])) for s in samples)


def test_every_dashboard_query_returns_data(settings: Settings, tmp_path: Path) -> None:
    day = day_lines()
    pg = Postgres().start()
    worker = Worker(settings, tmp_path / "worker.log", clock="event", session_timeout_ms=3000)
    ledger = LedgerProc(settings, pg.url, tmp_path / "ledger.log")
    prometheus = Prometheus({"cityorder": [f"127.0.0.1:{worker.port}"],
                             "ledger": [f"127.0.0.1:{ledger.port}"]}, [RULES])
    try:
        worker.wait_ready()
        produce(settings, day)
        alerts = read_topic(settings, "city.alerts", done=lambda a: len(a) > 1000, timeout=120, quiet_s=3)
        store = LedgerStore(pg.url, migrate_now=False)
        deadline = time.monotonic() + 60
        while store.counts()["transitions"] < len({(a["alert_id"], a["version"]) for a in alerts}):
            assert time.monotonic() < deadline, f"ledger behind: {store.counts()}\n{ledger.tail()}"
            time.sleep(0.3)
        time.sleep(4)      # a few scrapes and rule evaluations after the last change
        status = ledger.get("/metrics")
        assert status is not None
        for text in (worker.metrics(), status[1]):
            assert not undocumented(text), "metrics missing from docs/monitoring.md"
        empty = []
        for name, board in boards().items():
            for variable in board["templating"]["list"]:
                if variable.get("datasource", {}).get("type") == "prometheus":
                    metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()
                    values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
                    assert values, f"{name}: variable {variable['name']} has no values"
            for title, target in targets(board, "prometheus"):
                if not finite(prometheus.query(promql(target["expr"]))):
                    empty.append(f"{name} / {title}: {promql(target['expr'])}")
        assert not empty, "queries with no data:\n" + "\n".join(empty) + "\n" + prometheus.tail()
        check_sql(boards(), pg.url, alerts, tmp_path)
    finally:
        prometheus.stop()
        ledger.stop()
        worker.stop()
        pg.stop()


def check_sql(dashboards: dict[str, dict[str, Any]], url: str, alerts: list[dict[str, Any]],
              tmp_path: Path) -> None:
    """Every SQL target returns rows; the by-district scorecard equals ``cityorder report``'s."""
    board = dashboards["assessment"]
    start_ms = period_containing("day", DAY, CityMap.load(DEMO_CITY).calendar).start
    t_ms = max(parse_timestamp_ms(a["at"]) for a in alerts)
    with psycopg.connect(url) as conn:
        values = {}
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                values[variable["name"]] = [row[0] for row in conn.execute(variable["query"])]
                assert values[variable["name"]], variable["name"]
        results = {}
        for title, target in targets(board, "grafana-postgresql-datasource"):
            cur = conn.execute(sql(target["rawSql"], values, start_ms, t_ms))
            rows = cur.fetchall()
            assert rows, title
            results[title] = ([c.name for c in cur.description or ()], rows)
    columns, rows = results["各街道 / By district"]
    dashboard = {r[0]: dict(zip(columns, r, strict=True)) for r in rows}
    report = _report(url, t_ms, tmp_path)
    assert set(dashboard) == {g["key"] for g in report}
    for g in report:
        row = dashboard[g["key"]]
        assert row["立案数"] == g["opened"], g["key"]
        for column, key in (("结案率", "closure_rate"), ("按期结案率", "on_time_rate"),
                            ("返工率", "rework_rate")):
            got = None if row[column] is None else float(row[column])
            assert got == g[key], (g["key"], column, got, g[key])


def _report(url: str, t_ms: int, tmp_path: Path) -> list[dict[str, Any]]:
    as_of = datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="milliseconds")
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "streams.cli", "report", "--ledger", url, "--period", "day",
                           "--date", DAY.isoformat(), "--as-of", as_of, "--by", "district",
                           "--format", "json", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    return list(data["groups"])
