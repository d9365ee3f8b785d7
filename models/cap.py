"""An alert message (``city.alerts``) as an OASIS Common Alerting Protocol 1.2 message, for
receivers that read CAP (emergency platforms, some dispatch systems) and for the console's case
page. Validated in the suite against the CAP 1.2 XML Schema.

One CAP message per transition: ``identifier`` is ``alert_id:version``; the first version is an
``Alert``, later ones ``Update`` (``Cancel`` for a rejected case) referencing the first. The
case's place is a circle of 50 m around its location and a ``grid_id`` geocode; its rule, case
code (GB/T 30428.2), level, status and the rest are ``eventCode`` and ``parameter`` pairs.
docs/adapters.md lists the mapping.
"""

from __future__ import annotations

import re
from typing import Any, Final
from xml.sax.saxutils import escape

NAMESPACE: Final = "urn:oasis:names:tc:emergency:cap:1.2"
#: CAP severities of the contract's.
SEVERITY: Final = {"minor": "Minor", "major": "Moderate", "critical": "Severe"}
#: What the receiver should do, by the case's status.
RESPONSE: Final = {"open": "Execute", "acknowledged": "Execute", "dispatched": "Execute",
                   "deferred": "Monitor", "resolved": "Assess", "closed": "AllClear", "rejected": "None"}
RADIUS_KM: Final = 0.05
_FRACTION = re.compile(r"\.\d+(?=[+-]\d\d:\d\d$)")
#: Characters XML 1.0 cannot carry at all (a note may hold any JSON string): dropped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def cap_time(stamp: str) -> str:
    """A contract time as CAP writes one: no fraction of a second (CAP's pattern has none)."""
    return _FRACTION.sub("", stamp.replace("Z", "+00:00"))


def render(alert: dict[str, Any], sender: str, sender_name: str | None = None) -> bytes:
    """The CAP 1.2 XML of one ``city.alerts`` message. ``sender``: the centre's identifier, by
    CAP's advice an e-mail-like name without spaces, commas or ``<>&``."""
    version, status = alert["version"], alert["status"]
    msg_type = "Alert" if version == 1 else "Cancel" if status == "rejected" else "Update"
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{NAMESPACE}">',
           _el("identifier", f"{alert['alert_id']}:{version}"), _el("sender", sender),
           _el("sent", cap_time(alert["at"])), _el("status", "Actual"), _el("msgType", msg_type),
           _el("source", "cityorder"), _el("scope", "Restricted"),
           _el("restriction", "城市运行管理服务平台: the city's operations centre and dispatch")]
    if alert["note"]:
        out.append(_el("note", alert["note"]))
    if version > 1:
        out.append(_el("references", f"{sender},{alert['alert_id']}:1,{cap_time(alert['opened_at'])}"))
    headline = f"{alert['description'] or alert['category']} ({alert['grid_id']})"
    out += ["<info>", _el("language", "zh-CN"), _el("category", "Other"),
            _el("event", alert["description"] or alert["category"]),
            _el("responseType", RESPONSE.get(status, "None")),
            _el("urgency", "Immediate" if alert["level"] >= 2 or alert["transition"] == "overdue"
                else "Expected"),
            _el("severity", SEVERITY.get(alert["severity"], "Unknown")), _el("certainty", "Observed"),
            _pair("eventCode", "cityorder:rule_id", alert["rule_id"]),
            _pair("eventCode", "cityorder:category", alert["category"])]
    if alert["case_code"]:
        out.append(_pair("eventCode", "GB/T 30428.2", alert["case_code"]))
    out.append(_el("effective", cap_time(alert["opened_at"])))
    if alert["deadline"]:
        out.append(_el("expires", cap_time(alert["deadline"])))
    if sender_name:
        out.append(_el("senderName", sender_name))
    out += [_el("headline", headline[:160]), _el("description", _description(alert))]
    for name in ("transition", "status", "level", "grid_id", "district", "responsible_unit", "assignee",
                 "occurrences", "hotspot", "deferred_until", "actor"):
        value = alert.get(name)
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out.append(_pair("parameter", f"cityorder:{name}", text))
    for role in alert["notify"]:
        out.append(_pair("parameter", "cityorder:notify", role))
    for uri in _photos(alert):
        out.append(f"<resource>{_el('resourceDesc', 'photo')}{_el('mimeType', 'image/jpeg')}"
                   f"{_el('uri', uri)}</resource>")
    loc = alert["location"]
    place = " ".join(str(p) for p in (alert["district"], alert["address"] or alert["grid_id"]) if p)
    out += ["<area>", _el("areaDesc", place or alert["grid_id"]),
            _el("circle", f"{loc['lat']},{loc['lon']} {RADIUS_KM}"),
            _pair("geocode", "cityorder:grid_id", alert["grid_id"]), "</area>", "</info>", "</alert>\n"]
    return "\n".join(out).encode("utf-8")


def _description(alert: dict[str, Any]) -> str:
    parts = [f"{alert['transition']}: status {alert['status']}, level {alert['level']}"]
    if alert["assignee"]:
        parts.append(f"assigned to {alert['assignee']}")
    if alert["deadline"]:
        parts.append(f"deadline {alert['deadline']}")
    parts.append(f"{alert['occurrences']} occurrence(s) since {alert['first_seen']}")
    return "; ".join(parts)


def _photos(alert: dict[str, Any]) -> list[str]:
    """The feedback's photos, then the evidence's snapshots and report photos, once each."""
    seen: list[str] = []
    candidates = list(alert["photos"] or [])
    for item in alert["evidence"]:
        candidates += [item.get("snapshot_url"), *(item.get("photos") or [])]
    for uri in candidates:
        if uri and uri.startswith(("http://", "https://")) and uri not in seen:
            seen.append(uri)
    return seen[:10]


def _el(name: str, text: str) -> str:
    return f"<{name}>{escape(_NOT_XML.sub('', text))}</{name}>"


def _pair(element: str, name: str, value: str) -> str:
    return f"<{element}>{_el('valueName', name)}{_el('value', value)}</{element}>"
