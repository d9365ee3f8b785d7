// The live board: a snapshot from /api/board, then every change over Server-Sent Events.
// The browser's EventSource reconnects by itself and sends Last-Event-ID; the server replays
// what was missed, or sends "reset" when it cannot, and then the board is fetched again.
"use strict";
(() => {
  const csrf = document.body.dataset.csrf, role = document.body.dataset.role;
  const cases = new Map();
  const STATUS = {open: "待受理", acknowledged: "已受理", dispatched: "已派遣", deferred: "缓办"};
  const SEVERITY = {minor: "一般", major: "较重", critical: "严重"};
  const form = document.getElementById("filters"), tbody = document.getElementById("cases");
  const live = document.getElementById("live");
  const params = new URLSearchParams(location.search);
  for (const [k, v] of params) { const el = form.elements[k]; if (el) { if (el.type === "checkbox") el.checked = v === "1"; else { ensureOption(el, v); el.value = v; } } }
  const notify = document.getElementById("notify");
  notify.checked = localStorage.getItem("cityorder.notify") === "1";
  notify.addEventListener("change", () => {
    localStorage.setItem("cityorder.notify", notify.checked ? "1" : "0");
    if (notify.checked && "Notification" in window && Notification.permission === "default") Notification.requestPermission();
  });
  let source = null, ready = false;

  function ensureOption(select, value) {
    if (select.tagName !== "SELECT" || !value || [...select.options].some(o => o.value === value)) return;
    select.add(new Option(value, value));
  }
  function filters() {
    const f = {};
    for (const el of form.elements) if (el.name) { if (el.type === "checkbox") { if (el.checked) f[el.name] = "1"; } else if (el.value) f[el.name] = el.value; }
    return f;
  }
  form.addEventListener("input", () => {
    const f = filters(), url = new URLSearchParams(f).toString();
    history.replaceState(null, "", url ? "?" + url : location.pathname);
    render();
  });
  function shown(c, f) {
    for (const k of ["district", "grid_id", "responsible_unit", "category", "rule_id", "status"]) if (f[k] && c[k] !== f[k]) return false;
    if (f.level && String(c.level) !== f.level) return false;
    if (f.overdue && !c.overdue) return false;
    if (f.q) { const q = f.q.toLowerCase(); if (![c.alert_id, c.case_code, c.address, c.description].some(v => v && v.toLowerCase().includes(q))) return false; }
    return true;
  }
  const rank = {critical: 3, major: 2, minor: 1};
  function order(a, b) { return b.level - a.level || rank[b.severity] - rank[a.severity] || (a.opened_at < b.opened_at ? -1 : a.opened_at > b.opened_at ? 1 : 0); }
  // The system's "now": the wall clock for a live (wall-clock) engine, whose messages are
  // emitted within seconds of their `at`; for an event-clock one (cityorder dev, a
  // simulation) the newest `at` on the board, the demo day's time and not today's.
  function systemNow() {
    let newest = null;
    for (const c of cases.values()) if (!newest || c.at > newest.at) newest = c;
    if (!newest) return Date.now();
    const at = Date.parse(newest.at);
    return Math.abs(Date.parse(newest.emitted_at) - at) < 60000 ? Date.now() : at;
  }
  function age(c, now) {
    const ms = Math.max(0, now - Date.parse(c.opened_at)), m = Math.floor(ms / 60000);
    return m < 60 ? m + " 分" : Math.floor(m / 60) + " 时 " + (m % 60) + " 分";
  }
  function cell(tr, text) { const td = tr.insertCell(); td.textContent = text == null ? "" : text; return td; }
  function render(fresh) {
    const f = filters(), rows = [...cases.values()].filter(c => shown(c, f)).sort(order);
    for (const name of ["district", "grid_id", "responsible_unit", "category", "rule_id"]) for (const c of cases.values()) ensureOption(form.elements[name], c[name]);
    tbody.replaceChildren();
    const now = systemNow();
    for (const c of rows) {
      const tr = tbody.insertRow();
      tr.className = `level-${c.level}` + (c.overdue ? " overdue" : "") + (c.alert_id === fresh ? " fresh" : "");
      tr.dataset.alertId = c.alert_id;
      if (role !== "viewer") { const box = document.createElement("input"); box.type = "checkbox"; box.className = "pick"; box.value = c.alert_id; box.disabled = c.status !== "open"; tr.insertCell().append(box); }
      cell(tr, c.level + " 级"); cell(tr, SEVERITY[c.severity] || c.severity);
      const a = document.createElement("a"); a.href = "/cases/" + encodeURIComponent(c.alert_id); a.textContent = c.description || c.rule_id;
      const td = tr.insertCell(); td.append(a, document.createElement("br"), c.alert_id);
      cell(tr, c.category + (c.case_code ? ` (${c.case_code})` : ""));
      cell(tr, (c.district || "未指定") + " / " + c.grid_id); cell(tr, c.responsible_unit || "");
      cell(tr, STATUS[c.status] || c.status); cell(tr, age(c, now)); cell(tr, c.deadline ? c.deadline.slice(5, 16).replace("T", " ") : "—");
    }
    const counts = {}; for (const c of rows) { counts["s:" + c.status] = (counts["s:" + c.status] || 0) + 1; counts["l:" + c.level] = (counts["l:" + c.level] || 0) + 1; }
    document.getElementById("counters").replaceChildren(...[["显示", rows.length], ...Object.entries(STATUS).map(([s, t]) => [t, counts["s:" + s] || 0]), ...[1, 2, 3].map(l => [l + " 级", counts["l:" + l] || 0]), ["超期", rows.filter(c => c.overdue).length]].map(([t, n]) => { const d = document.createElement("span"); d.className = "counter"; d.innerHTML = `${t} <b></b>`; d.querySelector("b").textContent = n; return d; }));
    const bulk = document.getElementById("bulk-ack"); if (bulk) bulk.disabled = !tbody.querySelector(".pick:checked");
  }
  function alarm(c) {
    if (!notify.checked || !(c.level >= 2 || c.severity === "critical")) return;
    try { const ctx = new AudioContext(), o = ctx.createOscillator(); o.frequency.value = 880; o.connect(ctx.destination); o.start(); o.stop(ctx.currentTime + 0.3); } catch (e) { /* no audio */ }
    if ("Notification" in window && Notification.permission === "granted") new Notification(`${c.level} 级：${c.description || c.rule_id}`, {body: `${c.district || ""} ${c.grid_id}`});
  }
  async function load() {
    const r = await fetch("/api/board", {headers: {Accept: "application/json"}});
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
    const snap = await r.json();
    cases.clear(); for (const c of snap.cases) cases.set(c.alert_id, c);
    render(); connect(snap.epoch + ":" + snap.seq);
  }
  function connect(last) {
    if (source) source.close();
    source = new EventSource("/events?last=" + encodeURIComponent(last));
    source.onopen = () => { live.textContent = "实时连接正常"; live.className = "live"; ready = true; document.body.dataset.live = "1"; };
    source.onerror = () => { live.textContent = "连接中断，正在重连…"; live.className = "live down"; document.body.dataset.live = "0"; };
    source.addEventListener("case", e => { const c = JSON.parse(e.data), isNew = !cases.has(c.alert_id); cases.set(c.alert_id, c); render(c.alert_id); if (isNew) alarm(c); });
    source.addEventListener("gone", e => { cases.delete(JSON.parse(e.data).alert_id); render(); });
    source.addEventListener("refused", e => { const d = JSON.parse(e.data); const el = document.getElementById("bulk-result"); if (el) el.textContent = `引擎拒绝 ${d.action} ${d.alert_id}: ${d.reason}`; });
    source.addEventListener("reset", () => { source.close(); load(); });
  }
  tbody.addEventListener("change", () => render());
  const all = document.getElementById("all");
  if (all) all.addEventListener("change", () => { for (const b of tbody.querySelectorAll(".pick:not(:disabled)")) b.checked = all.checked; render(); });
  const bulk = document.getElementById("bulk-ack");
  if (bulk) bulk.addEventListener("click", async () => {
    const ids = [...tbody.querySelectorAll(".pick:checked")].map(b => b.value);
    const r = await fetch("/api/bulk/acknowledge", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({alert_ids: ids})});
    const body = await r.json();
    document.getElementById("bulk-result").textContent = body.results ? `已提交 ${body.results.filter(x => x.status === "pending").length} 件，等待引擎确认` : body.error;
  });
  load();
})();
