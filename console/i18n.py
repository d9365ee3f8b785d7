"""The console's two languages: Chinese first, English on request.

The Chinese text is the message id, as gettext's msgid is the source language's text: the
templates and scripts read as the duty officers read them, and a missing translation shows
Chinese, never a key. :data:`EN` is the whole English catalogue; ``tests/console/test_i18n.py``
finds every ``_("…")`` and ``T("…")`` in the templates, scripts and this package and fails on one
it lacks, and on any Chinese text outside them.

The language is the browser's choice (a cookie, set by ``/lang``), not the user's: it must
hold on the sign-in page, before anyone is known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

LANGS = ("zh", "en")
#: A language's tag in a page's ``<html lang>`` (the console's pages, the scorecards report).
HTML_LANG = {"zh": "zh-CN", "en": "en"}
COOKIE = "cityorder_lang"

Translate = Callable[..., str]

# The vocabulary of the engine's enums, in Chinese (translated like any other text).
STATUS = {"open": "待受理", "acknowledged": "已受理", "dispatched": "已派遣", "deferred": "缓办",
          "resolved": "已处置", "closed": "已结案", "rejected": "已作废"}
SEVERITY = {"minor": "一般", "major": "较重", "critical": "严重"}
TRANSITION = {"opened": "立案", "updated": "新证据", "escalated": "升级", "cleared": "现场消失",
              "acknowledged": "受理", "dispatched": "派遣", "deferred": "缓办", "resumed": "恢复",
              "resolved": "处置", "closed": "结案", "rejected": "作废", "reopened": "返工",
              "overdue": "超期"}
ACTION = {"acknowledge": "受理", "dispatch": "派遣", "defer": "缓办", "resolve": "处置完成",
          "verify": "核查结案", "reject": "作废（误报）", "reopen": "返工", "note": "备注"}
#: What the audit trail records: the actions, and signing in and out.
AUDITED = {**ACTION, "sign_in": "登录", "sign_out": "退出"}
ROLE = {"viewer": "查看员", "operator": "值班员", "supervisor": "督查员", "admin": "管理员"}
PERIOD = {"day": "日", "week": "周", "month": "月", "quarter": "季度", "year": "年"}
RESULT = {"ok": "成功", "sent": "已发送", "denied": "被拒绝", "failed": "失败",
          "refused": "引擎拒绝"}
GROUPING = {"district": "街道", "responsible_unit": "责任单位", "grid_id": "网格",
            "category": "类别", "rule_id": "规则"}

EN: Mapping[str, str] = {
    # enums
    "待受理": "Open", "已受理": "Acknowledged", "已派遣": "Dispatched", "缓办": "Deferred",
    "已处置": "Resolved", "已结案": "Closed", "已作废": "Rejected",
    "一般": "Minor", "较重": "Major", "严重": "Critical",
    "立案": "Opened", "新证据": "New evidence", "升级": "Escalated", "现场消失": "Cleared",
    "受理": "Acknowledge", "派遣": "Dispatch", "恢复": "Resumed", "处置": "Resolve",
    "结案": "Closed", "作废": "Rejected", "返工": "Reopen", "超期": "Overdue",
    "处置完成": "Resolve", "核查结案": "Verify", "作废（误报）": "Reject (false alarm)",
    "备注": "Note",
    "查看员": "viewer", "值班员": "operator", "督查员": "supervisor", "管理员": "admin",
    "日": "Day", "周": "Week", "月": "Month", "季度": "Quarter", "年": "Year",
    "街道": "Sub-district", "网格": "Grid", "责任单位": "Responsible unit", "类别": "Category",
    "规则": "Rule",
    "成功": "ok", "已发送": "sent", "被拒绝": "denied", "失败": "failed", "引擎拒绝": "refused",
    # the scorecards' report (ledger/render.py, through the translator)
    "立案数": "Cases opened", "作废数": "Rejected", "应结案数": "Due to close", "缓办数": "Deferred",
    "结案数": "Closed", "按期结案数": "Closed on time", "超期数": "Overdue", "处置数": "Resolved",
    "返工数": "Reopened", "结案率": "Closure rate", "按期结案率": "On-time closure rate",
    "返工率": "Rework rate", "响应时长中位": "Response, median", "响应时长P90": "Response, p90",
    "处置时长中位": "Resolution, median", "处置时长P90": "Resolution, p90",
    "问题类别": "Category", "排名": "Rank", "合计": "Total", "环比 {change}": "vs previous {change}",
    "{n}秒": "{n} s", "{n}分": "{n} min", "{h}时{m:02d}分": "{h} h {m:02d} min",
    "督查考核 {period}报 {start} 至 {end}（不含），截至 {as_of}":
        "Scorecards ({period}): {start} to {end} (end excluded), as of {as_of}",
    "按期结案率（按{by}）": "On-time closure rate by {by}",
    "每日立案与结案": "Cases opened and closed each day",
    "高发问题（立案数前十）": "Most frequent problems (top ten by cases opened)",
    "按期结案率 (%)": "On-time closure rate (%)", "件数": "Cases",
    "▼ 排名后三位；括号内为环比（与上一周期相比，比率为百分点）。":
        "▼ the bottom three; in brackets, vs previous (the period before; rates in percentage "
        "points).",
    ("红色底色：排名后三位。环比：与上一周期同口径相比（比率为百分点）。"
     "比率 = 分子 ÷ 分母，分母为 0 时记为“-”。"):
        "Red rows: the bottom three. vs previous: against the period before, counted the same way "
        "(rates in percentage points). A rate is numerator ÷ denominator; \"-\" where the "
        "denominator is 0.",
    # frame
    "cityorder 指挥中心": "cityorder operations centre",
    "cityorder 城市管理指挥中心": "cityorder city-management operations centre",
    "实时看板": "Live board", "地图": "Map", "督查考核": "Scorecards", "死信": "Dead letters",
    "操作审计": "Audit trail", "退出": "Sign out",
    # sign-in
    "登录": "Sign in", "值班登录": "Duty sign-in", "用户名": "Username", "密码": "Password",
    "用户名或密码错误": "Wrong username or password",
    "登录失败次数过多，请 {s} 秒后再试": "Too many failed sign-ins: try again in {s} s",
    # board
    "搜索 案件号 / 编码 / 地址": "Search alert id / case code / address",
    "全部街道": "All sub-districts", "全部网格": "All grids",
    "全部责任单位": "All responsible units", "全部类别": "All categories",
    "全部规则": "All rules", "全部等级": "All levels", "全部状态": "All statuses",
    "{n} 级": "Level {n}", "仅超期": "Overdue only", "声音/通知": "Sound/notify",
    "新的 2 级以上或重点区域案件时提示（按用户保存）":
        "Alert on a new case of level 2 or above or in a key area (saved for you)",
    "批量受理": "Acknowledge selected", "批量受理（{n} 件）": "Acknowledge selected ({n})",
    "全选待受理": "Select all open",
    "连接中…": "Connecting…", "实时连接正常": "Live", "连接中断，正在重连…":
        "Disconnected, reconnecting…",
    "等级": "Level", "严重度": "Severity", "案件": "Case", "街道 / 网格": "Sub-district / grid",
    "状态": "Status", "已等待": "Waiting", "处置时限": "Deadline", "显示": "Shown",
    "未指定": "unassigned", "{m} 分": "{m} min", "{h} 时 {m} 分": "{h} h {m} min",
    "重点区域": "key area",
    "列出前 {k} 件，共 {n} 件；向下滚动查看更多": "The first {k} of {n}: scroll for more",
    "已提交 {n} 件，等待引擎确认": "{n} sent, waiting for the engine",
    "引擎拒绝 {action} {id}：{reason}": "The engine refused {action} {id}: {reason}",
    # map
    "网格（点击筛选看板）": "Grids (click to filter the board)", "道路": "Roads",
    "学校等重点区域": "Schools and other key areas",
    "夜市/便民摊点": "Night markets / permitted stalls", "案件：": "Cases: ",
    "高发点位": "Hotspot", "{city} 网格与案件": "{city}: grids and cases",
    "实时": "Live", "重连中…": "Reconnecting…",
    # case
    "案件号": "Alert id", "CAP 1.2 格式": "as CAP 1.2", "地址 / 位置": "Address / position", "区域": "Zones",
    "立案时间": "Opened at", "无": "none", "派遣对象": "Assignee", "缓办至": "Deferred until",
    "发现次数": "Occurrences", "{n}（{first} 至 {last}）": "{n} ({first} to {last})",
    "证据": "Evidence", "抓拍 {id}": "Snapshot {id}", "处置照片": "Photo of the fix",
    "派遣对象（责任单位或处置人员）": "Assignee (responsible unit or person)",
    "缓办至，如 2026-11-20T17:00:00+08:00（必填）":
        "Defer until, e.g. 2026-11-20T17:00:00+08:00 (required)",
    "处置后照片链接（空格分隔）": "Links to photos after the fix (space-separated)",
    "说明": "Note", "提交": "Submit", "作废原因（必填）": "Why it is rejected (required)",
    "备注内容（必填）": "The note (required)",
    "{action} 由 {actor} 提交，等待引擎确认…": "{action} sent by {actor}, waiting for the engine…",
    "{action} 已提交，等待引擎确认…": "{action} sent, waiting for the engine…",
    "引擎拒绝了 {action}：{reason}": "The engine refused {action}: {reason}",
    "处置过程": "Timeline", "控制台": "Console", "（操作时间）": " (when done)",
    "已超时 {span}": "{span} over", "剩余 {span}（工作时 {work}）":
        "{span} left ({work} working time)",
    # actions' errors
    "未知操作 {action}": "Unknown action {action}", "{role}无权{action}": "A {role} may not {action}",
    "无此案件": "No such case", "案件{status}，不能{action}": "The case is {status}: it cannot {action}",
    "请填写备注内容": "Write the note", "作废须写明原因": "A rejection needs its reason",
    "无法写入反馈主题，请稍后重试": "Could not write the feedback topic: try again shortly",
    "请选择要受理的案件（alert_ids）": "Choose the cases to acknowledge (alert_ids)",
    "一次最多受理 {n} 件": "At most {n} cases at once",
    # refusals of requests
    "请先登录": "Sign in first", "CSRF 令牌缺失或错误，请刷新页面":
        "Missing or wrong CSRF token: reload the page",
    "登录表单已过期，请刷新页面": "The sign-in form expired: reload the page",
    "请求体不是 JSON": "The request body is not JSON",
    "请求体须为 JSON 对象": "The request body must be a JSON object",
    "周期须为 {periods} 之一，分组须为 {groupings} 之一":
        "period: one of {periods}; by: one of {groupings}",
    "日期须为 YYYY-MM-DD": "date: YYYY-MM-DD",
    "操作审计仅供督查员和管理员查看": "The audit trail is for supervisors and admins",
    # punctuation and frames around data
    "{user}（{role}）": "{user} ({role})", "{name}（{kind}）": "{name} ({kind})",
    "{rule}（{category}）": "{rule} ({category})",
    "{rule}（{category}，编码 {code}）": "{rule} ({category}, code {code})",
    "、": ", ", "{head}：{text}": "{head}: {text}",
    # reports
    "周期": "Period", "日期": "Date", "分组": "Group by", "生成": "Show", "单独打开":
        "Open alone",
    "定义见 docs/assessment.md；无日期时为最新数据所在周期，截至最新处置时间。":
        "Definitions in docs/assessment.md. Without a date: the period of the newest data, "
        "up to the newest action.",
    # dead letters
    "死信：数据源发来的无法使用的消息": "Dead letters: what producers sent that cannot be used",
    "启动时读取每个分区最近 500 条，之后实时追加；原因代码见 docs/contracts.md。":
        "The last 500 of each partition at start, then live; reason codes in "
        "docs/contracts.md.",
    "当前筛选：": "Filtered: ", "全部": "all", "原因代码": "Reason code", "来源主题": "Topic",
    "条数": "Count", "暂无": "None yet", "最新（先新后旧）": "Newest first",
    "接收时间": "Received", "原因": "Reason", "键 / 事件": "Key / event", "位置": "Position",
    "内容（节选）": "Payload (start)",
    # audit
    "操作审计（最近 500 条）": "Audit trail (last 500)", "时间": "Time", "人员": "Who",
    "角色": "Role", "操作": "Action", "地址": "Address", "结果": "Result", "详情": "Detail",
}


def lang_of(cookie: str | None) -> str:
    return cookie if cookie in LANGS else "zh"


def translator(lang: str) -> Translate:
    """``_(text, **values)``: ``text`` in ``lang``, with ``{name}`` filled from ``values``."""
    def _(text: str, **values: object) -> str:
        out = EN.get(text, text) if lang == "en" else text
        return out.format(**values) if values else out
    return _


def catalogue(lang: str) -> Mapping[str, str]:
    """What the page's scripts translate with (``static/i18n.js``): nothing for Chinese."""
    return EN if lang == "en" else {}
