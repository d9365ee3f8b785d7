// The map: open cases as markers coloured by level (hotspots ringed), live over the same
// Server-Sent Events stream as the board (live.js). The projection is the server's
// (console/mapview.py).
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
  followCases({
    board: snap => { cases.clear(); for (const c of snap.cases) cases.set(c.alert_id, c); draw(); },
    change: c => { cases.set(c.alert_id, c); draw(); },
    gone: d => { cases.delete(d.alert_id); draw(); },
    live: on => { live.textContent = on ? T("实时") : T("重连中…"); document.body.dataset.live = on ? "1" : "0"; },
  });
})();
