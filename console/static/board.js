// The live board: a snapshot from /api/board, then every change over Server-Sent Events
// (live.js, which the map follows too).
//
// A change touches one row: it is taken out of the sorted list and put back at its place
// (thousands of open cases and tens of changes a second must not rebuild the table each
// time). The whole table is built only for a snapshot or a new filter.
"use strict";
(() => {
  const body = document.body, csrf = body.dataset.csrf, role = body.dataset.role;
  const cases = new Map(), rowOf = new Map(), picked = new Set();  // picked: for bulk acknowledge
  let rows = [];                      // the cases shown, in board order
  const STATUS = {open: T("待受理"), acknowledged: T("已受理"), dispatched: T("已派遣"), deferred: T("缓办"), resolved: T("已处置")};
  const SEVERITY = {minor: T("一般"), major: T("较重"), critical: T("严重")};
  const form = document.getElementById("filters"), tbody = document.getElementById("cases");
  const live = document.getElementById("live"), notify = document.getElementById("notify");
  const all = document.getElementById("all");
  const FILTERED = ["district", "grid_id", "responsible_unit", "category", "rule_id"];
  const known = Object.fromEntries(FILTERED.map(k => [k, new Set()]));
  for (const [k, v] of new URLSearchParams(location.search)) { const el = form.elements[k]; if (el) { if (el.type === "checkbox") el.checked = v === "1"; else { option(k, v); el.value = v; } } }
  let f = filters(), newestAt = null, newestEmitted = null;

  function option(name, value) {
    if (!value || !known[name] || known[name].has(value)) return;
    known[name].add(value);
    form.elements[name].add(new Option(value, value));
  }
  function filters() {
    const out = {};
    for (const el of form.elements) if (el.name) { if (el.type === "checkbox") { if (el.checked) out[el.name] = "1"; } else if (el.value) out[el.name] = el.value; }
    return out;
  }
  form.addEventListener("input", e => {
    if (e.target === notify) return;
    f = filters();
    const query = new URLSearchParams(f).toString();
    history.replaceState(null, "", query ? "?" + query : location.pathname);
    const lang = document.getElementById("lang");      // the other language keeps the filters
    if (lang) { const u = new URL(lang.href); u.searchParams.set("next", location.pathname + location.search); lang.href = u; }
    build();
  });
  notify.addEventListener("change", async () => {
    if (notify.checked && "Notification" in window && Notification.permission === "default") Notification.requestPermission();
    const r = await fetch("/api/prefs", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({notify: notify.checked})});
    if (!r.ok) notify.checked = !notify.checked;       // not saved: show what is in force
  });
  function shown(c) {
    for (const k of [...FILTERED, "status"]) if (f[k] && c[k] !== f[k]) return false;
    if (f.level && String(c.level) !== f.level) return false;
    if (f.overdue && !c.overdue) return false;
    if (f.q) { const q = f.q.toLowerCase(); if (![c.alert_id, c.case_code, c.address, c.description].some(v => v && v.toLowerCase().includes(q))) return false; }
    return true;
  }
  const rank = {critical: 3, major: 2, minor: 1};
  function order(a, b) {
    return b.level - a.level || rank[b.severity] - rank[a.severity]
      || (a.opened_at < b.opened_at ? -1 : a.opened_at > b.opened_at ? 1 : 0)
      || (a.alert_id < b.alert_id ? -1 : a.alert_id > b.alert_id ? 1 : 0);
  }
  function place(c) {                 // where c goes in rows: binary search
    let lo = 0, hi = rows.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (order(rows[mid], c) < 0) lo = mid + 1; else hi = mid; }
    return lo;
  }
  // The system's "now": the wall clock for a live (wall-clock) engine, whose messages are
  // emitted within seconds of their `at`; for an event-clock one (cityorder dev, a
  // simulation) the newest `at` on the board, the demo day's time and not today's.
  function seen(c) { if (!newestAt || c.at > newestAt) { newestAt = c.at; newestEmitted = c.emitted_at; } }
  function systemNow() {
    if (!newestAt) return Date.now();
    const at = Date.parse(newestAt);
    return Math.abs(Date.parse(newestEmitted) - at) < 60000 ? Date.now() : at;
  }
  function age(c, now) {
    const m = Math.floor(Math.max(0, now - Date.parse(c.opened_at)) / 60000);
    return m < 60 ? T("{m} 分", {m}) : T("{h} 时 {m} 分", {h: Math.floor(m / 60), m: m % 60});
  }
  function cell(tr, text) { const td = tr.insertCell(); td.textContent = text == null ? "" : text; return td; }
  function row(c, now, fresh) {
    const tr = document.createElement("tr");
    tr.className = `level-${c.level}` + (c.overdue ? " overdue" : "") + (c.key_area ? " key" : "") + (fresh ? " fresh" : "");
    tr.dataset.alertId = c.alert_id; tr.dataset.version = c.version;
    if (fresh) setTimeout(() => tr.classList.remove("fresh"), 3000);
    if (role !== "viewer") { const box = document.createElement("input"); box.type = "checkbox"; box.className = "pick"; box.value = c.alert_id; box.disabled = c.status !== "open"; box.checked = picked.has(c.alert_id) && !box.disabled; tr.insertCell().append(box); }
    cell(tr, T("{n} 级", {n: c.level})); cell(tr, SEVERITY[c.severity] || c.severity);
    const a = document.createElement("a"); a.href = "/cases/" + encodeURIComponent(c.alert_id); a.textContent = c.description || c.rule_id;
    tr.insertCell().append(a, document.createElement("br"), c.alert_id);
    cell(tr, c.category + (c.case_code ? ` (${c.case_code})` : ""));
    cell(tr, (c.district || T("未指定")) + " / " + c.grid_id); cell(tr, c.responsible_unit || "");
    cell(tr, STATUS[c.status] || c.status); cell(tr, age(c, now)).className = "age";
    cell(tr, c.deadline ? c.deadline.slice(5, 16).replace("T", " ") : "—");
    return tr;
  }
  // Only the first `limit` rows are in the page (more as one scrolls): the top of the board
  // is what a screen shows, and a table of thousands of rows is slow to lay out at each
  // change. The rows in the page are always rows[0..k) for some k <= limit.
  const STEP = 100;
  let limit = STEP;
  function build() {                  // the whole table: a snapshot, a new filter
    rows = [...cases.values()].filter(shown).sort(order);
    for (const id of picked) { const c = cases.get(id); if (!c || c.status !== "open" || !shown(c)) picked.delete(id); }
    if (all) all.checked = false;
    rowOf.clear();
    const now = systemNow(), frag = document.createDocumentFragment();
    for (const c of rows.slice(0, limit)) { const tr = row(c, now, false); rowOf.set(c.alert_id, tr); frag.append(tr); }
    tbody.replaceChildren(frag);
    counters();
  }
  function fill() {                   // back to min(limit, rows.length) rows in the page
    const want = Math.min(limit, rows.length);
    while (rowOf.size > want) { const tr = tbody.lastElementChild; rowOf.delete(tr.dataset.alertId); tr.remove(); }
    if (rowOf.size < want) {
      const now = systemNow(), frag = document.createDocumentFragment();
      for (const c of rows.slice(rowOf.size, want)) { const tr = row(c, now, false); rowOf.set(c.alert_id, tr); frag.append(tr); }
      tbody.append(frag);
    }
  }
  function remove(id) {
    const old = cases.get(id);
    if (!old) return;
    cases.delete(id);
    const i = rows.indexOf(old);
    if (i >= 0) rows.splice(i, 1);
    const tr = rowOf.get(id);
    if (tr) { rowOf.delete(id); tr.remove(); }
  }
  function change(c) {                // one case added or changed: one row out, one row in
    const old = cases.get(c.alert_id);
    remove(c.alert_id);
    if (c.status !== "open") picked.delete(c.alert_id);
    cases.set(c.alert_id, c); seen(c);
    for (const k of FILTERED) option(k, c[k]);
    if (shown(c)) {
      const i = place(c);
      rows.splice(i, 0, c);
      if (i <= rowOf.size && i < limit) {
        const tr = row(c, systemNow(), true), next = rows[i + 1];
        rowOf.set(c.alert_id, tr);
        tbody.insertBefore(tr, next && rowOf.get(next.alert_id) || null);
      }
    }
    fill(); later();
    if (shown(c) && (!old ? c.level >= 2 || c.key_area : c.level >= 2 && old.level < c.level)) alarm(c);
  }
  addEventListener("scroll", () => {
    if (rowOf.size < rows.length && innerHeight + scrollY > document.body.scrollHeight - 600) { limit += STEP; fill(); counters(); }
  }, {passive: true});
  // The counters: their elements made once, a number written only when it changed, at most
  // four times a second however many changes come (each write lays the page out again).
  let counting = null, lastCount = 0;
  function later() {
    if (counting) return;
    counting = setTimeout(() => { counting = null; lastCount = performance.now(); counters(); }, Math.max(0, 250 - (performance.now() - lastCount)));
  }
  const counterEls = new Map(), box = document.getElementById("counters"), more = document.getElementById("more");
  function put(el, text) { if (el.textContent !== text) el.textContent = text; }
  function counters() {
    const n = {};
    for (const c of rows) { n["s:" + c.status] = (n["s:" + c.status] || 0) + 1; n["l:" + c.level] = (n["l:" + c.level] || 0) + 1; if (c.overdue) n.overdue = (n.overdue || 0) + 1; }
    const items = [[T("显示"), rows.length], ...Object.entries(STATUS).map(([s, t]) => [t, n["s:" + s] || 0]), ...[1, 2, 3].map(l => [T("{n} 级", {n: l}), n["l:" + l] || 0]), [T("超期"), n.overdue || 0]];
    for (const [t, v] of items) {
      if (!counterEls.has(t)) { const d = document.createElement("span"); d.className = "counter"; d.append(t + " "); const b = document.createElement("b"); d.append(b); box.append(d); counterEls.set(t, b); }
      put(counterEls.get(t), String(v));
    }
    put(more, rowOf.size < rows.length ? T("列出前 {k} 件，共 {n} 件；向下滚动查看更多", {k: rowOf.size, n: rows.length}) : "");
    picks();
  }
  function picks() { const bulk = document.getElementById("bulk-ack"); if (bulk) { bulk.disabled = picked.size === 0; bulk.textContent = picked.size ? T("批量受理（{n} 件）", {n: picked.size}) : T("批量受理"); } }
  setInterval(() => { const now = systemNow(); for (const c of rows.slice(0, rowOf.size)) rowOf.get(c.alert_id).querySelector(".age").textContent = age(c, now); }, 30000);
  // One sound at most every 2 s (a burst of cases, or the changes replayed after a
  // reconnect, is one alarm), one notification per case (tagged: shown again, it replaces).
  let audio = null, lastSound = 0;
  function alarm(c) {
    if (!notify.checked) return;
    if (performance.now() - lastSound > 2000) {
      lastSound = performance.now();
      try { audio ||= new AudioContext(); const o = audio.createOscillator(); o.frequency.value = 880; o.connect(audio.destination); o.start(); o.stop(audio.currentTime + 0.3); } catch (e) { /* no audio */ }
    }
    if ("Notification" in window && Notification.permission === "granted") new Notification(T("{head}：{text}", {head: T("{n} 级", {n: c.level}) + (c.key_area ? " · " + T("重点区域") : ""), text: c.description || c.rule_id}), {body: `${c.district || ""} ${c.grid_id}`, tag: c.alert_id});
  }
  // The snapshot and the stream (live.js: retried every 5 s, a 401 goes to sign-in).
  function board(snap) {
    cases.clear(); newestAt = null;
    for (const c of snap.cases) { cases.set(c.alert_id, c); seen(c); for (const k of FILTERED) option(k, c[k]); }
    build();
    // When the first frame with the board is drawn, in ms from the page's navigation: the
    // first paint the load benchmark reads (bench/console_bench.py).
    requestAnimationFrame(() => { body.dataset.painted ||= String(Math.round(performance.now())); });
  }
  function up(on) {
    live.textContent = on ? T("实时连接正常") : T("连接中断，正在重连…");
    live.className = on ? "live" : "live down"; body.dataset.live = on ? "1" : "0";
  }
  function gone(d) { remove(d.alert_id); picked.delete(d.alert_id); fill(); later(); }
  function refused(d) { const el = document.getElementById("bulk-result"); if (el) el.textContent = T("引擎拒绝 {action} {id}：{reason}", {action: T(NAMES.action[d.action] || d.action), id: d.alert_id, reason: d.reason}); }
  tbody.addEventListener("change", e => { if (e.target.classList.contains("pick")) { if (e.target.checked) picked.add(e.target.value); else picked.delete(e.target.value); } picks(); });
  // Select all: every open case the filters let through, listed or not.
  if (all) all.addEventListener("change", () => {
    for (const c of rows) if (c.status === "open") { if (all.checked) picked.add(c.alert_id); else picked.delete(c.alert_id); }
    for (const b of tbody.querySelectorAll(".pick:not(:disabled)")) b.checked = all.checked;
    picks();
  });
  const bulk = document.getElementById("bulk-ack");
  if (bulk) bulk.addEventListener("click", async () => {
    const ids = [...picked].slice(0, 500);
    const r = await fetch("/api/bulk/acknowledge", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({alert_ids: ids})});
    const out = await r.json();
    if (out.results) for (const x of out.results) if (x.status === "pending") picked.delete(x.alert_id);
    picks();
    document.getElementById("bulk-result").textContent = out.results ? T("已提交 {n} 件，等待引擎确认", {n: out.results.filter(x => x.status === "pending").length}) : out.error;
  });
  followCases({board, change, gone, refused, live: up});
})();
