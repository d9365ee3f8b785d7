// The open cases, live: the board's snapshot (/api/board), then the Server-Sent Events stream
// from where the snapshot ends. The board and the map both follow it, through this one
// function, so both recover the same way. The browser's EventSource reconnects by itself after
// a dropped connection and sends Last-Event-ID (the server replays what was missed, or sends
// "reset"); after an HTTP error (a 401 when the session ended, a 5xx) it gives up, and so does
// a snapshot that cannot be fetched: both are tried again every 5 s, and a 401 goes to sign-in.
"use strict";
window.followCases = function (on) {
  // on.board(snapshot), on.change(case), on.gone({alert_id}), on.live(up: boolean); optional
  // on.refused(refusal)
  let source = null;
  async function load() {
    let r;
    try { r = await fetch("/api/board", {headers: {Accept: "application/json"}}); } catch (e) { r = null; }
    if (r && r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
    if (!r || !r.ok) { setTimeout(load, 5000); return; }
    const snap = await r.json();
    on.board(snap);
    connect(snap.epoch + ":" + snap.seq);
  }
  function connect(last) {
    if (source) source.close();
    source = new EventSource("/events?last=" + encodeURIComponent(last));
    source.onopen = () => on.live(true);
    source.onerror = () => {
      on.live(false);
      if (source.readyState === EventSource.CLOSED) setTimeout(load, 5000);
    };
    source.addEventListener("case", e => on.change(JSON.parse(e.data)));
    source.addEventListener("gone", e => on.gone(JSON.parse(e.data)));
    if (on.refused) source.addEventListener("refused", e => on.refused(JSON.parse(e.data)));
    source.addEventListener("reset", () => { source.close(); load(); });
  }
  load();
};
