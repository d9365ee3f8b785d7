"""cityorder's Grafana dashboards, as code: ``python deploy/grafana/build.py`` writes
``deploy/grafana/dashboards/*.json``, which Grafana provisions (``provisioning/``).

The JSON files are generated, never edited by hand: change this file and run it (``make
dashboards``). tests/deploy/test_grafana.py fails when the files and this script disagree,
checks each dashboard against Grafana's dashboard schema, and runs every query: each PromQL
target on a real Prometheus scraping a real worker, each SQL target on a real ledger database.

Only the standard library, so that it runs anywhere without installing anything. Titles are
Chinese first, English after, as on the console.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
#: Grafana's dashboard JSON model version these files are written in (Grafana 11).
SCHEMA_VERSION = 39
PROMETHEUS = {"type": "prometheus", "uid": "cityorder-prometheus"}
LEDGER = {"type": "grafana-postgresql-datasource", "uid": "cityorder-ledger"}


@dataclass
class Board:
    """One dashboard being laid out: panels fill rows of Grafana's 24-column grid."""

    uid: str
    title: str
    description: str
    tags: list[str]
    variables: list[dict[str, Any]] = field(default_factory=list)
    panels: list[dict[str, Any]] = field(default_factory=list)
    x: int = 0
    y: int = 0
    row_height: int = 0

    def add(self, kind: str, title: str, targets: list[dict[str, Any]], *, w: int = 12, h: int = 8,
            unit: str | None = None, description: str = "", options: dict[str, Any] | None = None,
            custom: dict[str, Any] | None = None, decimals: int | None = None) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        defaults: dict[str, Any] = {}
        if unit is not None:
            defaults["unit"] = unit
        if decimals is not None:
            defaults["decimals"] = decimals
        if custom is not None:
            defaults["custom"] = custom
        datasource = targets[0]["datasource"]
        self.panels.append({
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": datasource, "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "targets": [t | {"refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options or {},
        })
        self.x += w
        self.row_height = max(self.row_height, h)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": self.tags,
            "editable": False, "graphTooltip": 1, "refresh": "30s", "schemaVersion": SCHEMA_VERSION,
            "time": {"from": "now-6h", "to": "now"}, "timezone": "browser", "version": 1,
            "annotations": {"list": []}, "templating": {"list": self.variables}, "links": [],
            "panels": self.panels,
        }


def prom(expr: str, legend: str = "") -> dict[str, Any]:
    return {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend or "__auto", "range": True}


def sql(query: str, fmt: str = "table") -> dict[str, Any]:
    return {"datasource": LEDGER, "rawSql": query, "format": fmt, "rawQuery": True, "editorMode": "code"}


def prom_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value variable of a label's values, "All" by default (regex ``.*``)."""
    return {"type": "query", "name": name, "label": label, "datasource": PROMETHEUS,
            "query": query, "definition": query, "refresh": 2, "sort": 1, "multi": True,
            "includeAll": True, "allValue": ".*", "current": {"text": ["All"], "value": ["$__all"]}}


def sql_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"type": "query", "name": name, "label": label, "datasource": LEDGER, "query": query,
            "definition": query, "refresh": 1, "sort": 1, "multi": True, "includeAll": True,
            "current": {"text": ["All"], "value": ["$__all"]}}


TIMESERIES = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
STACKED = TIMESERIES | {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 60}
LEGEND_TABLE = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}
STAT = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value", "graphMode": "area", "textMode": "auto"}
BARS = {"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}


def city_operations() -> dict[str, Any]:
    b = Board("cityorder-operations", "城市运行 / City operations",
              "Cases the engine holds now, how fast they open and close, and how long they wait: "
              "for duty officers and supervisors. Figures come from the workers' metrics "
              "(docs/monitoring.md).", ["cityorder", "operations"])
    b.variables = [
        prom_variable("district", "街道 / District", "label_values(cityorder_open_cases, district)"),
        prom_variable("category", "类别 / Category", "label_values(cityorder_open_cases, category)"),
    ]
    where = 'district=~"$district", category=~"$category"'
    b.add("stat", "在办案件 / Open cases", [prom(f"sum(cityorder_open_cases{{{where}}})")], w=6, h=5,
          description="Cases not closed or rejected (resolved ones wait for verification).",
          options=STAT)
    b.add("stat", "超期 / Overdue", [prom(f"sum(cityorder_overdue_cases{{{where}}})")], w=6, h=5,
          description="Open cases past their deadline.", options=STAT)
    b.add("stat", "最久未受理 / Oldest unacknowledged",
          [prom("max(cityorder_oldest_unacknowledged_age_seconds)")], w=6, h=5, unit="s",
          description="Age of the oldest case nobody has acknowledged, on the engine's clock.",
          options=STAT)
    b.add("stat", "三级案件最久 / Oldest level-3 case",
          [prom('max(cityorder_oldest_active_case_age_seconds{level="3"})')], w=6, h=5, unit="s",
          description="Age of the oldest case at level 3 not yet resolved.", options=STAT)
    b.add("bargauge", "在办案件（按街道）/ Open cases by district",
          [prom(f"sum by (district) (cityorder:open_cases:sum_by_district_category{{{where}}})",
                "{{district}}")], options=BARS)
    b.add("bargauge", "在办案件（按类别）/ Open cases by category",
          [prom(f"sum by (category) (cityorder:open_cases:sum_by_district_category{{{where}}})",
                "{{category}}")], options=BARS)
    b.add("timeseries", "在办案件（按级别、状态）/ Open cases by level and status",
          [prom(f"sum by (level, status) (cityorder_open_cases{{{where}}})", "L{{level}} {{status}}")],
          custom=STACKED, options=LEGEND_TABLE)
    b.add("timeseries", "立案与结案（每分钟）/ Opened and closed per minute",
          [prom('60 * sum(cityorder:alert_transitions:rate5m{transition="opened", category=~"$category"})',
                "立案 opened"),
           prom('60 * sum(cityorder:alert_transitions:rate5m{transition="closed", category=~"$category"})',
                "结案 closed"),
           prom('60 * sum(cityorder:alert_transitions:rate5m{transition="escalated", '
                'category=~"$category"})', "升级 escalated")],
          custom=TIMESERIES, unit="short", options=LEGEND_TABLE)
    b.add("timeseries", "超期案件（按街道）/ Overdue by district",
          [prom(f"sum by (district) (cityorder_overdue_cases{{{where}}})", "{{district}}")],
          custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("table", "热点网格 / Hotspot grids (most open cases)",
          [prom('topk(10, sum by (grid_id, district) (cityorder_grid_open_cases{district=~"$district"}))',
                "{{grid_id}}") | {"format": "table", "instant": True, "range": False}],
          description="The ten grids with the most open cases.",
          options={"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]})
    b.add("timeseries", "平均受理时长 / Mean time to acknowledge (1 h)",
          [prom('cityorder:case_acknowledge_seconds:mean1h{category=~"$category"}', "{{category}}")],
          unit="s", custom=TIMESERIES, options=LEGEND_TABLE,
          description="From opening to acknowledgement, over the cases acknowledged in the last hour.")
    b.add("timeseries", "平均处置时长 / Mean time to resolve (1 h)",
          [prom('cityorder:case_resolve_seconds:mean1h{category=~"$category"}', "{{category}}")],
          unit="s", custom=TIMESERIES, options=LEGEND_TABLE,
          description="From opening to resolution, over the cases resolved in the last hour.")
    b.add("timeseries", "受理时长 P90 / Time to acknowledge, 90th percentile",
          [prom("histogram_quantile(0.9, sum by (le, category) "
                '(rate(cityorder_case_acknowledge_seconds_bucket{category=~"$category"}[$__range])))',
                "{{category}}")], unit="s", custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("bargauge", "立案最多的规则 / Top rules by cases opened",
          [prom('topk(10, sum by (rule_id) (increase(cityorder_alert_transitions_total'
                '{transition="opened", category=~"$category"}[$__range])))', "{{rule_id}}")
           | {"instant": True, "range": False}], options=BARS,
          description="Cases opened in the dashboard's time range, by rule.")
    return b.json()


# -- 督查考核 from the ledger -------------------------------------------------------------------

#: The cohort of docs/assessment.md as of T, for the dashboard's range: cases opened in the
#: range, their state now (the ledger's cases table holds each case's latest message, so T is
#: the range's end only when that is now; for a past period use `cityorder report`).
COHORT = """WITH c AS (
  SELECT district, responsible_unit, opened_at,
         status <> 'rejected' AND ((deadline IS NOT NULL AND deadline <= $__unixEpochTo() * 1000)
                                   OR status = 'closed') AS due,
         ever_deferred, status = 'closed' AS is_closed, on_time IS TRUE AS on_time,
         reopen_count > 0 AS reopened, first_resolved_at IS NOT NULL AS resolved
  FROM cases
  WHERE opened_seen AND opened_at >= $__unixEpochFrom() * 1000 AND opened_at <= $__unixEpochTo() * 1000
    AND district IN ($district) AND responsible_unit IN ($unit)
)"""

#: The figures of docs/assessment.md section 3, rates rounded half up to 4 places.
FIGURES = """count(*) AS "立案数",
  count(*) FILTER (WHERE due AND NOT ever_deferred AND is_closed) AS "结案数",
  count(*) FILTER (WHERE due) AS "应结案数",
  count(*) FILTER (WHERE due AND ever_deferred) AS "缓办数",
  ROUND(count(*) FILTER (WHERE due AND NOT ever_deferred AND is_closed)::numeric
        / NULLIF(count(*) FILTER (WHERE due AND NOT ever_deferred), 0), 4) AS "结案率",
  ROUND(count(*) FILTER (WHERE due AND NOT ever_deferred AND is_closed AND on_time)::numeric
        / NULLIF(count(*) FILTER (WHERE due AND NOT ever_deferred), 0), 4) AS "按期结案率",
  ROUND(count(*) FILTER (WHERE reopened)::numeric / NULLIF(count(*) FILTER (WHERE resolved), 0), 4)
    AS "返工率\""""


def scorecard(by: str, label: str) -> str:
    return f"""{COHORT}
SELECT {by} AS "{label}", {FIGURES}
FROM c GROUP BY {by} ORDER BY "按期结案率" ASC NULLS FIRST, {by}"""


def assessment() -> dict[str, Any]:
    b = Board("cityorder-assessment", "督查考核 / Assessment",
              "The scorecards of docs/assessment.md for the cases opened in the dashboard's time "
              "range, as they stand now, from the ledger's database. Ranked lowest 按期结案率 "
              "first. `cityorder report` gives the same figures for a calendar period as of any T.",
              ["cityorder", "assessment"])
    b.variables = [
        sql_variable("district", "街道 / District",
                     "SELECT DISTINCT district FROM cases WHERE district IS NOT NULL ORDER BY 1"),
        sql_variable("unit", "责任单位 / Responsible unit",
                     "SELECT DISTINCT responsible_unit FROM cases WHERE responsible_unit IS NOT NULL "
                     "ORDER BY 1"),
    ]
    b.add("stat", "立案数 / Cases opened", [sql(f'{COHORT}\nSELECT count(*) AS "立案数" FROM c')],
          w=6, h=5, options=STAT)
    for title, key in (("结案率 / Closure rate", "结案率"),
                       ("按期结案率 / On-time closure rate", "按期结案率"),
                       ("返工率 / Rework rate", "返工率")):
        b.add("stat", title, [sql(f'{COHORT}\nSELECT {FIGURES} FROM c')], w=6, h=5, unit="percentunit",
              decimals=2, options=STAT | {"reduceOptions": {"calcs": ["lastNotNull"], "values": False,
                                                            "fields": f"/^{key}$/"}})
    b.add("table", "各街道 / By district", [sql(scorecard("district", "街道"))], w=24, h=9,
          description="One row per 街道; the bottom three by 按期结案率 first.")
    b.add("table", "各责任单位 / By responsible unit", [sql(scorecard("responsible_unit", "责任单位"))],
          w=24, h=9, description="One row per responsible unit (城管中队...).")
    b.add("timeseries", "按日趋势 / Trend by day (cases opened that day)",
          [sql(f"""{COHORT}
SELECT (date_trunc('day', to_timestamp(opened_at / 1000.0) AT TIME ZONE '$tz') AT TIME ZONE '$tz') AS time,
  {FIGURES}
FROM c GROUP BY 1 ORDER BY 1""", "time_series")], w=24, h=9, unit="short",
          custom=TIMESERIES | {"showPoints": "always"}, options=LEGEND_TABLE,
          description="Each day's cohort (cases opened that local day) as it stands now.")
    b.variables.append({"type": "constant", "name": "tz", "label": "时区 / Time zone", "hide": 2,
                        "query": "Asia/Shanghai",
                        "current": {"text": "Asia/Shanghai", "value": "Asia/Shanghai"}})
    return b.json()


# -- the pipeline ---------------------------------------------------------------------------------

def pipeline() -> dict[str, Any]:
    b = Board("cityorder-pipeline", "数据管道 / Pipeline",
              "Events in, dead letters, lag, latency, checkpoints, garbage collection, "
              "rebalances and readiness of the workers and the ledger: for platform engineers "
              "(docs/runbooks.md).", ["cityorder", "pipeline"])
    b.variables = [prom_variable("instance", "实例 / Worker",
                                 'label_values(cityorder_build_info{component="worker"}, instance)')]
    w = 'instance=~"$instance"'
    b.add("timeseries", "输入（按主题）/ Events in by topic",
          [prom(f"sum by (topic) (rate(cityorder_input_records_total{{{w}}}[$__rate_interval]))",
                "{{topic}}")], unit="reqps", custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("timeseries", "死信（按原因）/ Dead letters by reason",
          [prom(f"sum by (reason_code, topic) (rate(cityorder_deadletters_total{{{w}}}[$__rate_interval]))",
                "{{reason_code}} {{topic}}")], unit="reqps", custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("timeseries", "积压（条）/ Ingest lag, records",
          [prom(f"sum by (topic) (cityorder_ingest_lag_records{{{w}}})", "{{topic}}")],
          custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("timeseries", "积压（秒）/ Ingest lag, seconds",
          [prom(f"max by (topic) (cityorder_ingest_lag_seconds{{{w}}})", "{{topic}}"),
           prom("max(cityorder_ledger_lag_seconds)", "ledger")], unit="s", custom=TIMESERIES,
          options=LEGEND_TABLE)
    latency = []
    for q, p in (("0.5", "p50"), ("0.99", "p99")):
        for stage, metric in (("ingest", "cityorder_ingest_delay_seconds"),
                              ("evaluate", "cityorder_evaluate_delay_seconds")):
            latency.append(prom(f"histogram_quantile({q}, sum by (le) "
                                f"(rate({metric}_bucket{{{w}}}[$__rate_interval])))", f"{stage} {p}"))
    b.add("timeseries", "告警延迟 / Alert latency percentiles", latency, unit="s", custom=TIMESERIES,
          options=LEGEND_TABLE, description="Input to alert in two stages: broker to internal topic "
          "(ingest), internal topic to engine (evaluate).")
    b.add("timeseries", "引擎时钟滞后 / Engine clock behind wall clock",
          [prom(f"time() - max by (partition) (cityorder_engine_clock_timestamp_seconds{{{w}}})",
                "partition {{partition}}"),
           prom(f"max by (partition) (cityorder_engine_clock_timestamp_seconds{{{w}}} "
                f"- cityorder_engine_progress_timestamp_seconds{{{w}}})",
                "progress behind clock {{partition}}")],
          unit="s", custom=TIMESERIES, options=LEGEND_TABLE,
          description="On the wall clock both stay near zero; on the event clock (replays) the "
          "first is how far the replayed day is in the past.")
    b.add("timeseries", "检查点 / Checkpoints",
          [prom("histogram_quantile(0.99, sum by (le, instance) "
                f"(rate(cityorder_checkpoint_seconds_bucket{{{w}}}[$__rate_interval])))", "p99 {{instance}}"),
           prom(f"time() - cityorder_checkpoint_last_success_timestamp_seconds{{{w}}}", "age {{instance}}"),
           prom(f"increase(cityorder_checkpoint_failures_total{{{w}}}[$__range])", "failures {{instance}}")],
          unit="s", custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("timeseries", "垃圾回收停顿 / GC pauses",
          [prom("histogram_quantile(0.99, sum by (le, kind) "
                f"(rate(cityorder_gc_pause_seconds_bucket{{{w}}}[$__rate_interval])))", "p99 {{kind}}")],
          unit="s", custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("timeseries", "再均衡与分区 / Rebalances and partitions",
          [prom(f"increase(cityorder_rebalances_total{{{w}}}[$__range])", "rebalances {{instance}}"),
           prom(f"cityorder_partitions_owned{{{w}}}", "partitions {{instance}}")],
          custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("state-timeline", "就绪 / Readiness",
          [prom(f"cityorder_ready{{{w}}}", "{{instance}}"),
           prom("cityorder_ledger_ready", "ledger {{instance}}")], options={"showValue": "never"},
          description="1: ready (state recovered, broker reached, checkpoints written).")
    b.add("timeseries", "进程 CPU / Process CPU",
          [prom(f'rate(process_cpu_seconds_total{{{w}}}[$__rate_interval])', "{{instance}}")],
          unit="percentunit", custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("timeseries", "进程内存 / Resident memory",
          [prom(f"process_resident_memory_bytes{{{w}}}", "{{instance}}")], unit="bytes",
          custom=TIMESERIES, options=LEGEND_TABLE)
    b.add("table", "版本 / Versions", [prom("cityorder_build_info", "{{instance}}")
                                       | {"format": "table", "instant": True, "range": False}],
          w=24, h=5, options={"showHeader": True})
    return b.json()


DASHBOARDS = {"city-operations": city_operations, "assessment": assessment, "pipeline": pipeline}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), ensure_ascii=False, indent=2) + "\n"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        path = OUT / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
