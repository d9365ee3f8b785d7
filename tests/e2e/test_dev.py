"""``cityorder dev`` as a newcomer runs it: it says which clock it runs, and what it gives can be
checked against ``cityorder replay`` of what it sent (``--record``, ``--alerts``, ``compare``)."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from console.board import ON_BOARD
from streams.cli import main
from streams.compare import compare_alerts, read_alerts
from streams.dev import free_port

pytestmark = pytest.mark.timeout(300)


def _signed_in_get(url: str, user: str, password: str, path: str) -> Any:
    """Sign in to the console as a browser would (cookies, the form's token) and GET ``path``."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(url + "login", timeout=10).read().decode()
    pre = re.search(r'name="pre" value="([^"]+)"', form)
    assert pre, form
    data = urllib.parse.urlencode({"username": user, "password": password, "pre": pre.group(1),
                                   "next": "/"}).encode()
    opener.open(url + "login", data=data, timeout=10).read()
    return orjson.loads(opener.open(url + path, timeout=10).read())


def test_dev_at_full_speed_equals_the_replay_of_its_recording(tmp_path: Path) -> None:
    record, alerts, replayed = tmp_path / "day.jsonl", tmp_path / "live.jsonl", tmp_path / "replayed.jsonl"
    ledger = tmp_path / "ledger.sqlite"
    out = (tmp_path / "dev.log").open("wb")
    argv = ["dev", "--speedup", "0", "--scale", "0.3", "--web-port", str(free_port(0)),
            "--console-port", str(free_port(0)),
            "--record", str(record), "--alerts", str(alerts), "--ledger", str(ledger)]
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", *argv], stdout=out,
                            stderr=subprocess.STDOUT)
    log = tmp_path / "dev.log"
    try:
        deadline = time.monotonic() + 180
        while "demo day sent" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.5)
        result = CliRunner().invoke(main, ["replay", str(record), "-o", str(replayed), "-q"])
        assert result.exit_code == 0, result.output
        want = list(read_alerts(replayed))
        assert len(want) > 100
        while not (same := compare_alerts(read_alerts(alerts), want)).same and time.monotonic() < deadline:
            time.sleep(1)
        assert same.same, same.describe()
        # The ledger dev runs holds the same cases: its report, asked while dev runs, is the
        # report of the replay's output.
        report = ["report", "--by", "district", "--period", "day", "--date", "2026-11-20",
                  "--format", "json"]
        expected = CliRunner().invoke(main, [*report, "--alerts", str(replayed)])
        assert expected.exit_code == 0, expected.output
        while (got := CliRunner().invoke(main, [*report, "--ledger", str(ledger)])).stdout \
                != expected.stdout and time.monotonic() < deadline:
            time.sleep(1)
        assert got.stdout == expected.stdout and "\"opened\"" in got.stdout
        # The console dev starts shows the demo operator exactly the replay's open cases.
        line = next(x for x in log.read_text(errors="replace").splitlines() if "  console " in x)
        url = line.split()[1]
        assert "sign in as demo / demo-operator" in line
        latest: dict[str, dict[str, Any]] = {}
        for m in want:
            if m["version"] > latest.get(m["alert_id"], {}).get("version", 0):
                latest[m["alert_id"]] = m
        # The board: the active cases and the resolved ones awaiting verification.
        open_ids = {a for a, m in latest.items() if m["status"] in ON_BOARD}
        assert open_ids
        board = _signed_in_get(url, "demo", "demo-operator", "api/board")
        while {c["alert_id"] for c in board["cases"]} != open_ids and time.monotonic() < deadline:
            time.sleep(1)
            board = _signed_in_get(url, "demo", "demo-operator", "api/board")
        assert {c["alert_id"] for c in board["cases"]} == open_ids
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
    text = log.read_text(errors="replace")
    # What a newcomer sees has no warning in it. (mode's timers warned that they were
    # "overlapping": the garbage collector's, run every 0.25 s, at its first full collection of
    # 0.37 s; and at full speed Faust's livelock check, every 1.25 s, which a busy loop slows.)
    assert "WARNING" not in text, [x for x in text.splitlines() if "WARNING" in x]
    assert "Traceback" not in text, text[text.index("Traceback") - 2000:]
    assert "clock      event: the demo day's time, not this machine's" in text
    assert f"recording  {record}" in text and "full speed" in text
    assert f"ledger     {ledger}: cityorder report --ledger {ledger}" in text
    compared = CliRunner().invoke(main, ["compare", str(alerts), str(replayed)])
    assert compared.exit_code == 0 and compared.output.startswith("same: "), compared.output
