"""``cityorder dev`` as a newcomer runs it: it says which clock it runs, and what it gives can be
checked against ``cityorder replay`` of what it sent (``--record``, ``--alerts``, ``compare``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.compare import compare_alerts, read_alerts
from streams.dev import free_port

pytestmark = pytest.mark.timeout(300)


def test_dev_at_full_speed_equals_the_replay_of_its_recording(tmp_path: Path) -> None:
    record, alerts, replayed = tmp_path / "day.jsonl", tmp_path / "live.jsonl", tmp_path / "replayed.jsonl"
    ledger = tmp_path / "ledger.sqlite"
    out = (tmp_path / "dev.log").open("wb")
    argv = ["dev", "--speedup", "0", "--scale", "0.3", "--web-port", str(free_port(0)),
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
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
    text = log.read_text(errors="replace")
    assert "clock      event: the demo day's time, not this machine's" in text
    assert f"recording  {record}" in text and "full speed" in text
    assert f"ledger     {ledger}: cityorder report --ledger {ledger}" in text
    compared = CliRunner().invoke(main, ["compare", str(alerts), str(replayed)])
    assert compared.exit_code == 0 and compared.output.startswith("same: "), compared.output
