// The map: open cases as markers coloured by level (hotspots ringed), live over the same
// Server-Sent Events stream as the board. The projection is the server's (console/mapview.py).
"use strict";
(() => {
  const svg = document.getElementById("map"), layer = document.getElementById("markers");
  const live = document.getElementById("live");
  const d = svg.dataset, mx0 = +d.mx0, my0 = +d.my0, k = +d.k, pad = +d.pad;
  // Web Mercator as a fraction of the world, as console/mapview.py's mercator().
  function project(lon, lat) {
    const phi = Math.max(-85.05112878, Math.min(85.05112878, lat)) * Math.PI / 180;
    const mx = (lon + 180) / 360, my = (1 - Math.asinh(Math.tan(phi)) / Math.PI) / 2;
    return [(mx - mx0) * k + pad, (my - my0) * k + pad];
  }
  const NS = "http://www.w3.org/2000/svg", cases = new Map();
  let source = null;
  function draw() {
    layer.replaceChildren();
    for (const c of cases.values()) {
      if (!c.location) continue;
      const a = document.createElementNS(NS, "a");
      a.setAttribute("href", "/cases/" + encodeURIComponent(c.alert_id));
      const dot = document.createElementNS(NS, "circle");
      const [x, y] = project(c.location.lon, c.location.lat);
      dot.setAttribute("cx", x);
      dot.setAttribute("cy", y);
      dot.setAttribute("r", c.hotspot ? 9 : 6);
      dot.setAttribute("class", `marker l${Math.min(c.level, 3)}` + (c.hotspot ? " hot" : ""));
      dot.dataset.alertId = c.alert_id;
      const title = document.createElementNS(NS, "title");
      title.textContent = `${T("{n} 级", {n: c.level})} ${c.description || c.rule_id} · ${c.grid_id}`;
      dot.append(title); a.append(dot); layer.append(a);
    }
  }
  async function load() {
    const r = await fetch("/api/board", {headers: {Accept: "application/json"}});
    if (r.status === 401) { location.href = "/login?next=/map"; return; }
    const snap = await r.json();
    cases.clear(); for (const c of snap.cases) cases.set(c.alert_id, c);
    draw();
    if (source) source.close();
    source = new EventSource("/events?last=" + encodeURIComponent(snap.epoch + ":" + snap.seq));
    source.onopen = () => { live.textContent = T("实时"); document.body.dataset.live = "1"; };
    source.onerror = () => { live.textContent = T("重连中…"); document.body.dataset.live = "0"; };
    source.addEventListener("case", e => { const c = JSON.parse(e.data); cases.set(c.alert_id, c); draw(); });
    source.addEventListener("gone", e => { cases.delete(JSON.parse(e.data).alert_id); draw(); });
    source.addEventListener("reset", () => load());
  }
  load();
})();
