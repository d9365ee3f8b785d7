// A case page: actions sent with the session's CSRF token; shown pending until the engine's
// next version of the case arrives on the live stream, or its refusal (a dead letter).
"use strict";
(() => {
  const csrf = document.body.dataset.csrf, el = document.getElementById("case");
  const aid = el.dataset.alertId, version = Number(el.dataset.version);
  const pending = document.getElementById("pending"), refused = document.getElementById("refused");
  const form = document.getElementById("act");
  // Only the fields the chosen action takes; the note is required for a rejection.
  const NOTE = {reject: T("作废原因（必填）"), note: T("备注内容（必填）")};
  function fields() {
    const action = form.elements.action.value;
    for (const el of form.querySelectorAll("[data-for]")) el.hidden = el.dataset.for !== action;
    form.elements.note.placeholder = NOTE[action] || T("说明");
    form.elements.note.required = action in NOTE;
    form.elements.until.required = action === "defer";
  }
  if (form) { form.elements.action.addEventListener("change", fields); fields(); }
  if (form) form.addEventListener("submit", async e => {
    e.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(form)) { const el = form.elements[k]; if (v && !(el && el.hidden)) body[k] = v; }
    const r = await fetch(`/api/cases/${encodeURIComponent(aid)}/actions`, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
    const out = await r.json();
    const name = form.elements.action.selectedOptions[0].text;
    if (r.status === 202) pending.textContent = T("{action} 已提交，等待引擎确认…", {action: name});
    else if (r.status === 201) location.reload();
    else refused.textContent = out.error;
  });
  // The countdown, on the system's clock, in natural and working time (the server's).
  const countdown = document.getElementById("countdown");
  setInterval(async () => {
    const r = await fetch(`/api/cases/${encodeURIComponent(aid)}/remaining`);
    if (r.ok) { const out = await r.json(); if (out.remaining) countdown.textContent = out.remaining; }
  }, 30000);
  // From the board's position when the page was made: nothing between is missed. A "reset"
  // (the console restarted, or the change left its log) means: make the page again.
  const source = new EventSource("/events?last=" + encodeURIComponent(el.dataset.last));
  source.addEventListener("reset", () => { source.close(); location.reload(); });
  source.addEventListener("case", e => { const c = JSON.parse(e.data); if (c.alert_id === aid && c.version > version) location.reload(); });
  source.addEventListener("gone", e => { const c = JSON.parse(e.data); if (c.alert_id === aid && c.version > version) location.reload(); });
  source.addEventListener("refused", e => { const d = JSON.parse(e.data); if (d.alert_id === aid) { pending.textContent = ""; refused.textContent = T("引擎拒绝了 {action}：{reason}", {action: T(NAMES.action[d.action] || d.action), reason: d.reason}); } });
})();
