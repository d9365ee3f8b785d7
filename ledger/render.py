"""A report (``ledger.assessment.report``) as people read it: a terminal table, CSV, JSON, or
one self-contained HTML file with inline SVG charts (no network: the centre's may have none).
"""

from __future__ import annotations

import csv
import html
import io
import logging
import unicodedata
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from ledger.assessment import FIGURES, UNSPECIFIED

NAMES = {
    "opened": "立案数", "rejected": "作废数", "due": "应结案数", "deferred": "缓办数",
    "closed": "结案数", "closed_on_time": "按期结案数", "overdue": "超期数", "resolved": "处置数",
    "reopened": "返工数", "closure_rate": "结案率", "on_time_rate": "按期结案率",
    "rework_rate": "返工率", "response_median_s": "响应时长中位", "response_p90_s": "响应时长P90",
    "resolution_median_s": "处置时长中位", "resolution_p90_s": "处置时长P90",
}
BY_NAMES = {"district": "街道", "responsible_unit": "责任单位", "grid_id": "网格",
            "category": "问题类别", "rule_id": "规则"}
PERIOD_NAMES = {"day": "日", "week": "周", "month": "月", "quarter": "季度", "year": "年"}
RATES = ("closure_rate", "on_time_rate", "rework_rate")

#: ``_(text, **values)``: the text in the reader's language, ``{names}`` filled. The report is
#: written in Chinese (the document supervisors rank people by); the console gives its own
#: translator (console.i18n, whose catalogue holds these texts' English) for an English reader.
Translate = Callable[..., str]


def chinese(text: str, **values: object) -> str:
    return text.format(**values) if values else text


def as_json(rep: dict[str, Any]) -> str:
    return orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode()


def _value(name: str, v: Any, _: Translate = chinese) -> str:
    if v is None:
        return "-"
    if name in RATES:
        return f"{v * 100:.2f}%"
    if name.endswith("_s"):
        return _span(v, _)
    return str(v)


def _span(seconds: int, _: Translate = chinese) -> str:
    if seconds < 60:
        return _("{n}秒", n=seconds)
    minutes = seconds // 60
    if minutes < 60:
        return _("{n}分", n=minutes)
    return _("{h}时{m:02d}分", h=minutes // 60, m=minutes % 60)


def _change(name: str, v: Any, before: Any, _: Translate = chinese) -> str:
    """环比: the change from the period before (rates in percentage points)."""
    if v is None or before is None:
        return ""
    if name in RATES:
        d = (v - before) * 100
        return f"{d:+.2f}pt" if d else "±0"
    d = v - before
    if name.endswith("_s"):
        return f"{'+' if d > 0 else '-' if d < 0 else '±'}{_span(abs(d), _)}" if d else "±0"
    return f"{d:+d}" if d else "±0"


def _key(key: str | None, _: Translate = chinese) -> str:
    return _(UNSPECIFIED) if key is None else key


def _rows(rep: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(figures, the same group's figures in the period before) for the total and each group."""
    prev = rep.get("previous") or {}
    before = {g["key"]: g for g in prev.get("groups", [])}
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(rep["total"], prev.get("total"))]
    out += [(g, before.get(g["key"])) for g in rep["groups"]]
    return out


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _title(rep: dict[str, Any], _: Translate = chinese) -> str:
    p = rep["period"]
    return _("督查考核 {period}报 {start} 至 {end}（不含），截至 {as_of}",
             period=_(PERIOD_NAMES[p["kind"]]), start=p["start"][:10], end=p["end"][:10],
             as_of=rep["as_of"][:19].replace("T", " "))


def as_table(rep: dict[str, Any], _: Translate = chinese) -> str:
    by = rep["by"]
    head = [_("排名"), _(BY_NAMES[by]) if by else "", *(_(NAMES[f]) for f in FIGURES)]
    lines: list[list[str]] = []
    for fig, before in _rows(rep):
        is_total = fig is rep["total"]
        rank = "" if is_total else ("-" if fig.get("rank") is None else str(fig["rank"]))
        mark = "▼" if fig.get("bottom") else ""
        cells = [rank + mark, _("合计") if is_total else _key(fig["key"], _)]
        for f in FIGURES:
            change = _change(f, fig[f], before[f] if before else None, _)
            cells.append(_value(f, fig[f], _) + (f" ({change})" if change else ""))
        lines.append(cells)
    widths = [max(_width(r[i]) for r in [head, *lines]) for i in range(len(head))]
    out = [_title(rep, _), ""]
    for r in [head, *lines]:
        out.append("  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip())
    out.append("")
    out.append(_("▼ 排名后三位；括号内为环比（与上一周期相比，比率为百分点）。"))
    return "\n".join(out)


def as_csv(rep: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["period", "start", "end", "as_of", "by", "key", "rank", "bottom", *FIGURES,
                *(f"previous_{f}" for f in FIGURES)])
    p = rep["period"]
    for fig, before in _rows(rep):
        is_total = fig is rep["total"]
        w.writerow([p["kind"], p["start"], p["end"], rep["as_of"], rep["by"] or "",
                    "(total)" if is_total else ("" if fig["key"] is None else fig["key"]),
                    "" if is_total or fig.get("rank") is None else fig["rank"],
                    "" if is_total else str(fig["bottom"]).lower(),
                    *("" if fig[f] is None else fig[f] for f in FIGURES),
                    *("" if before is None or before[f] is None else before[f] for f in FIGURES)])
    return buf.getvalue()


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC",
       sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; } td.key, th.key { text-align: left; }
tr.bottom td { background: #fff1f0; } tr.total td { font-weight: bold; background: #f6f8fa; }
.chg { color: #57606a; font-size: 11px; display: block; }
.note { color: #57606a; font-size: 12px; }
figure { margin: 12px 0; } svg { max-width: 100%; height: auto; }
"""


def as_html(rep: dict[str, Any], trend: list[tuple[date, int, int]],
            categories: list[tuple[str, int]], _: Translate = chinese, lang: str = "zh-CN") -> str:
    """One file: the figures table, 按期结案率 by group, the daily trend, the top categories;
    in Chinese, or through ``_`` in the reader's ``lang``."""
    by = rep["by"]
    head = "".join(f"<th>{html.escape(_(NAMES[f]))}</th>" for f in FIGURES)
    body = []
    for fig, before in _rows(rep):
        is_total = fig is rep["total"]
        cls = "total" if is_total else ("bottom" if fig.get("bottom") else "")
        rank = "" if is_total else ("-" if fig.get("rank") is None else str(fig["rank"]))
        cells = []
        for f in FIGURES:
            change = _change(f, fig[f], before[f] if before else None, _)
            chg = (f'<span class="chg">{html.escape(_("环比 {change}", change=change))}</span>'
                   if change else "")
            cells.append(f"<td>{html.escape(_value(f, fig[f], _))}{chg}</td>")
        name = _("合计") if is_total else _key(fig["key"], _)
        body.append(f'<tr class="{cls}"><td>{rank}</td><td class="key">{html.escape(name)}</td>'
                    f'{"".join(cells)}</tr>')
    charts = []
    if by and rep["groups"]:
        charts.append((_("按期结案率（按{by}）", by=_(BY_NAMES[by])), _bar_chart(rep["groups"], _)))
    charts.append((_("每日立案与结案"), _trend_chart(trend, _)))
    if categories:
        charts.append((_("高发问题（立案数前十）"), _category_chart(categories, _)))
    figures_html = "".join(f"<h2>{html.escape(t)}</h2><figure>{svg}</figure>" for t, svg in charts)
    title = html.escape(_title(rep, _))
    return (
        f"<!DOCTYPE html>\n<html lang=\"{html.escape(lang)}\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f"<table><thead><tr><th>{html.escape(_('排名'))}</th><th class=\"key\">"
        f"{html.escape(_(BY_NAMES[by]) if by else '')}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        f"<p class=\"note\">{html.escape(_(NOTE))}</p>"
        f"{figures_html}</body></html>\n")


NOTE = ("红色底色：排名后三位。环比：与上一周期同口径相比（比率为百分点）。"
        "比率 = 分子 ÷ 分母，分母为 0 时记为“-”。")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text stays text in the SVG, drawn by the browser with its own Chinese fonts; matplotlib
    # only measures it (with a font that may lack the glyphs: that warning is noise here).
    matplotlib.rcParams.update({"svg.fonttype": "none", "font.family": "sans-serif",
                                "font.sans-serif": ["Noto Sans CJK SC", "Source Han Sans SC",
                                                    "Microsoft YaHei", "PingFang SC",
                                                    "DejaVu Sans"]})
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return plt


def _svg(fig: Any) -> str:
    import warnings

    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _bar_chart(groups: list[dict[str, Any]], _: Translate) -> str:
    plt = _pyplot()
    shown = [g for g in groups if g["on_time_rate"] is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(shown) + 2), 3.6))
    colors = ["#cf222e" if g["bottom"] else "#0969da" for g in shown]
    ax.bar([_key(g["key"], _) for g in shown], [g["on_time_rate"] * 100 for g in shown], color=colors)
    ax.set_ylabel(_("按期结案率 (%)"))
    ax.set_ylim(0, 100)
    ax.tick_params(axis="x", labelrotation=30)
    return _svg(fig)


def _trend_chart(trend: list[tuple[date, int, int]], _: Translate) -> str:
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    days = [d.strftime("%m-%d") for d, _o, _c in trend]
    ax.plot(days, [o for _d, o, _c in trend], marker="o", label=_("立案"))
    ax.plot(days, [c for _d, _o, c in trend], marker="s", label=_("结案"))
    ax.legend()
    ax.set_ylabel(_("件数"))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # counts: no 0.2 of a case
    if len(days) > 10:
        ax.set_xticks(days[:: max(1, len(days) // 10)])
    return _svg(fig)


def _category_chart(categories: list[tuple[str, int]], _: Translate) -> str:
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(categories) + 1))
    names = [c for c, _n in categories][::-1]
    ax.barh(names, [n for _c, n in categories][::-1], color="#8250df")
    ax.set_xlabel(_("立案数"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(fig)
