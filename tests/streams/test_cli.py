"""The command line as a user meets it: replay, rules check, rules test, demo, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from models.outputs import Alert, DeadLetter
from rules.ruletest import run_file
from streams.cli import main
from streams.settings import COMPRESSIONS

DEFAULT_TESTS = Path(__file__).resolve().parents[2] / "rules" / "packs" / "default" / "tests"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "day.jsonl"
    code, _, err = invoke("demo", "--seed", "3", "-o", str(out), "--no-replay")   # replayed below
    assert code == 0, err
    return out


def test_default_pack_rule_tests_pass() -> None:
    files = sorted(DEFAULT_TESTS.glob("*.yaml"))
    assert files
    for f in files:
        results = run_file(f)
        assert results and all(r.ok for r in results), [(r.name, r.problems) for r in results]


def test_rules_test_reports_a_failing_test_and_exits_1(tmp_path: Path) -> None:
    text = (DEFAULT_TESTS / "default_test.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "broken_test.yaml"
    broken.write_text(text.replace("occurrences: 11", "occurrences: 12")
                      .replace("rules: [..]", f"rules: [{DEFAULT_TESTS.parent}]")
                      .replace("city: ../../../demo/city.geojson",
                               f"city: {DEFAULT_TESTS.parents[2] / 'demo' / 'city.geojson'}"),
                      encoding="utf-8")
    code, out, _ = invoke("rules", "test", str(broken))
    assert code == 1
    assert "FAIL" in out and "occurrences: expected 12, got 11" in out
    assert out.strip().endswith("18 passed, 1 failed")


def test_replay_writes_alerts_and_dead_letters_that_match_the_contract(demo_day: Path,
                                                                        tmp_path: Path) -> None:
    alerts, dead = tmp_path / "a.jsonl", tmp_path / "d.jsonl"
    code, _, err = invoke("replay", str(demo_day), "-o", str(alerts), "--deadletters", str(dead))
    assert code == 0
    assert "alerts by rule:" in err and "dead letters by reason:" in err
    messages = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert len(messages) > 100
    for m in messages:
        Alert.model_validate(m)
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert letters
    for d in letters:
        DeadLetter.model_validate(d)
    versions: dict[str, int] = {}
    for m in messages:   # versions count from 1 per alert, one per transition
        assert m["version"] == versions.get(m["alert_id"], 0) + 1
        versions[m["alert_id"]] = m["version"]
    transitions = {m["transition"] for m in messages}
    assert {"opened", "acknowledged", "dispatched", "resolved", "closed", "escalated"} <= transitions


def test_replay_is_reproducible_but_for_emitted_at(demo_day: Path, tmp_path: Path) -> None:
    runs = []
    for n in (1, 2):
        out = tmp_path / f"run{n}.jsonl"
        assert invoke("replay", str(demo_day), "-q", "-o", str(out))[0] == 0
        runs.append([{k: v for k, v in orjson.loads(line).items() if k != "emitted_at"}
                     for line in out.read_bytes().splitlines()])
    assert runs[0] == runs[1]


def test_wall_clock_replay_of_the_demo_day_gives_alerts(demo_day: Path, tmp_path: Path) -> None:
    out = tmp_path / "wall.jsonl"
    code, _, err = invoke("replay", str(demo_day), "--clock", "wall", "-q", "-o", str(out))
    assert code == 0, err
    assert any(orjson.loads(line)["transition"] == "opened" for line in out.read_bytes().splitlines())


def test_a_malformed_replay_line_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tick": "2026-11-20T08:00:00+08:00"}\n{"topic": "city.events.camera"}\n')
    code, _, err = invoke("replay", str(bad))
    assert code == 1
    assert err.strip() == (f"Error: {bad}:2: a message line needs one of 'value', 'raw', 'raw_b64'")


def test_a_rule_with_a_typo_is_one_line_naming_file_line_and_key(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_text("policies:\n  p:\n    levels:\n      - {level: 1, after: 0s, notify: [x]}\n"
                    "rules:\n  - id: r1\n    category: street_vendor\n    severity: major\n"
                    "    source: camera\n    match: {labels: [street_vendor]}\n"
                    "    persist: {duration: 10m, gap: 2m}\n    polcy: p\n")
    code, _, err = invoke("rules", "check", "--rules", str(pack))
    assert code == 1
    assert err.startswith(f"Error: {pack}:12: rule r1: polcy:")
    assert "policy" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_rules_check_accepts_the_default_pack_and_demo_city() -> None:
    code, out, err = invoke("rules", "check")
    assert code == 0, err
    assert out.startswith("ok: 28 rules, 50 grids")
    assert "warning" not in err


def test_help_explains_every_command() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for cmd in ("replay", "rules", "demo", "dev"):
        assert cmd in out
    # It points to the manuals, and each page it names is there.
    assert "docs/README.md" in out
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("contracts.md", "rules.md", "assessment.md"):
        assert page in out and (docs / page).is_file()
    from importlib.metadata import version
    code, out, _ = invoke("--version")
    assert code == 0 and out == f"cityorder {version('cityorder')}\n"
    code, out, _ = invoke("replay", "--help")
    assert "--deadletters" in out and "--until" in out and "--clock" in out
    code, out, _ = invoke("worker", "--help")
    assert "CITYORDER_COMPRESSION" in out and "lz4|zstd|gzip|snappy|none" in out
    assert tuple(out.split("--compression [", 1)[1].split("]", 1)[0].split("|")) == COMPRESSIONS


def test_rules_check_refuses_bad_work_hours_and_levels_the_working_day_breaks(tmp_path: Path) -> None:
    """One line each, naming what is valid (issue 14): a map's ``work_hours``, and a policy
    whose ``wh``/``wd`` levels stop increasing with the map's working day."""
    from rules.demo.city import GEOJSON_PATH

    geo = orjson.loads(GEOJSON_PATH.read_bytes())
    geo["city"]["work_hours"] = ["14:00-12:00"]
    bad_map = tmp_path / "bad.geojson"
    bad_map.write_bytes(orjson.dumps(geo))
    code, _, err = invoke("rules", "check", "--city", str(bad_map))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "city.work_hours" in err and "ends before it starts" in err and "08:30-12:00" in err

    geo["city"]["work_hours"] = ["09:00-10:00"]            # a working day of one hour
    short = tmp_path / "short.geojson"
    short.write_bytes(orjson.dumps(geo))
    pack = tmp_path / "pack.yaml"
    pack.write_text("policies:\n  p:\n    levels:\n      - {level: 1, after: 0s, notify: [x]}\n"
                    "      - {level: 2, after: 4wh, notify: [y]}\n"
                    "      - {level: 3, after: 1wd, notify: [z]}\n"
                    "rules:\n  - id: r1\n    category: street_vendor\n    severity: major\n"
                    "    source: camera\n    match: {labels: [street_vendor]}\n"
                    "    persist: {duration: 10m, gap: 2m}\n    policy: p\n", encoding="utf-8")
    code, _, err = invoke("rules", "check", "--rules", str(pack))
    assert code == 0, err                                # 1wd = 7wh with the demo city's day
    code, _, err = invoke("rules", "check", "--rules", str(pack), "--city", str(short))
    assert code == 1
    assert err.strip() == ("Error: policy p: level 3's after 1wd is not later than level 2's 4wh "
                           "with the map's working day of 1h: after must strictly increase")


TYPO_PACK = ("policies:\n  p:\n    levels:\n      - {level: 1, after: 0s, notify: [x]}\n"
             "rules:\n  - id: r1\n    category: street_vendor\n    severity: major\n"
             "    source: camera\n    match: {labels: [street_vendorr]}\n"
             "    persist: {duration: 10m, gap: 2m}\n    policy: p\n")


def test_rules_check_warns_once_about_a_label_no_detector_sends(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_text(TYPO_PACK, encoding="utf-8")
    code, out, err = invoke("rules", "check", "--rules", str(pack))
    assert code == 0
    assert err.splitlines() == [
        f"warning: {pack}:6: rule r1: match.labels: 'street_vendorr' is not a camera label any "
        "detector sends; did you mean 'street_vendor'? If the city's detectors send it, declare "
        "it with the pack-level labels: [street_vendorr]"]
    assert out.strip().endswith(", 1 warnings")
    pack.write_text("labels: [street_vendorr]\n" + TYPO_PACK, encoding="utf-8")
    code, out, err = invoke("rules", "check", "--rules", str(pack))
    assert (code, err) == (0, "")


def test_a_worker_or_replay_starting_with_a_typo_warns(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Worker, dev and replay load through _load; the worker's start-up is that call."""
    from rules.demo.city import GEOJSON_PATH
    from streams.cli import _load

    pack = tmp_path / "pack.yaml"
    pack.write_text(TYPO_PACK, encoding="utf-8")
    _, rules = _load(GEOJSON_PATH, (pack,))
    assert rules.rules[0].id == "r1"
    assert capsys.readouterr().err.startswith(
        f"warning: {pack}:6: rule r1: match.labels: 'street_vendorr' is not a camera label")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    code, _, err = invoke("replay", str(empty), "--rules", str(pack), "-q")
    assert code == 0
    assert err.startswith(f"warning: {pack}:6: rule r1: match.labels: 'street_vendorr'")


def test_rules_check_refuses_an_empty_rule_file(tmp_path: Path) -> None:
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "a.yaml").write_text(TYPO_PACK, encoding="utf-8")
    (tmp_path / "pack" / "b.yaml").write_text("# to do\n", encoding="utf-8")
    code, _, err = invoke("rules", "check", "--rules", str(tmp_path / "pack"))
    assert code == 1
    assert err.strip() == (f"Error: {tmp_path / 'pack' / 'b.yaml'}: the file is empty (or only "
                           "comments): a rule file holds rules, policies or pack-level keys such "
                           "as reorder_window; write them, or delete the file")


def test_rules_check_refuses_a_map_without_city_or_with_an_open_ring(tmp_path: Path) -> None:
    from rules.demo.city import GEOJSON_PATH

    demo = orjson.loads(GEOJSON_PATH.read_bytes())
    no_city = tmp_path / "no_city.geojson"
    no_city.write_bytes(orjson.dumps({k: v for k, v in demo.items() if k != "city"}))
    code, _, err = invoke("rules", "check", "--city", str(no_city))
    assert code == 1
    assert err.strip() == (f'Error: {no_city}: city: the foreign member is missing: add "city": '
                           '{"name": ..., "time_zone": "Asia/Shanghai", "calendar": {...}} beside '
                           '"features" (RULES.md)')
    demo["features"][0]["geometry"]["coordinates"][0].pop()
    open_ring = tmp_path / "open_ring.geojson"
    open_ring.write_bytes(orjson.dumps(demo))
    code, _, err = invoke("rules", "check", "--city", str(open_ring))
    assert code == 1
    assert err.startswith(f"Error: {open_ring}: feature 0 (id 'JY-0101'): geometry: ring 1 is not "
                          "closed: its last position [")
    assert err.strip().endswith("(RFC 7946)") and len(err.strip().splitlines()) == 1


# -- issue 13: poison lines, partitions, the summary ------------------------------------------

STREETLIGHT_9999 = {"topic": "city.events.sensor", "key": "sl-0001", "value": {
    "event_id": "sl-9999", "sensor_id": "sl-0001", "kind": "streetlight",
    "observed_at": "9999-12-31T20:00:00.000+00:00", "state": "off"}}
MANHOLE_YEAR_1 = {"topic": "city.events.sensor", "key": "mh-0001", "value": {
    "event_id": "mh-1", "sensor_id": "mh-0001", "kind": "manhole_cover",
    "observed_at": "0001-01-01T00:00:00.000+23:59", "state": "open"}}


def _manhole(event_id: str, at: str, state: str = "open") -> dict[str, object]:
    return {"topic": "city.events.sensor", "key": "mh-0001", "value": {
        "event_id": event_id, "sensor_id": "mh-0001", "kind": "manhole_cover",
        "observed_at": at, "state": state}}


def _write(path: Path, lines: list[object]) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n"
                              for line in lines))
    return path


def _replay(tmp_path: Path, lines: list[object], *args: str) -> tuple[int, list[dict], list[dict], str]:
    events = _write(tmp_path / "in.jsonl", lines)
    out, dead = tmp_path / "a.jsonl", tmp_path / "d.jsonl"
    code, _, err = invoke("replay", str(events), "-o", str(out), "--deadletters", str(dead), *args)
    read = lambda p: [orjson.loads(x) for x in p.read_bytes().splitlines()] if p.exists() else []  # noqa: E731
    return code, read(out), read(dead), err


@pytest.mark.parametrize("poison", [STREETLIGHT_9999, MANHOLE_YEAR_1])
def test_replay_survives_a_time_out_of_range_as_first_input_and_after(tmp_path: Path,
                                                                      poison: dict) -> None:
    """Each crashed cityorder replay with OverflowError: date value out of range."""
    for lines in ([poison, _manhole("mh-2", "2026-11-20T20:00:00+08:00")],
                  [_manhole("mh-2", "2026-11-20T20:00:00+08:00"), poison]):
        code, alerts, dead, err = _replay(tmp_path, lines)
        assert code == 0, err
        assert [d["reason_code"] for d in dead] == [
            "future_timestamp" if poison is STREETLIGHT_9999 else "bad_timestamp"]
        assert "2100-01-01T00:00:00Z" in dead[0]["reason"]
        assert [a["transition"] for a in alerts][:1] == ["opened"]
        for d in dead:
            DeadLetter.model_validate(d)


def test_replay_renders_an_alert_opened_at_the_last_instant(tmp_path: Path) -> None:
    last = "2099-12-31T23:59:59.999Z"
    code, alerts, dead, err = _replay(tmp_path, [_manhole("mh-last", last)], "--until", last)
    assert code == 0, err
    assert dead == [] and alerts[0]["opened_at"] == "2100-01-01T07:59:59.999+08:00"
    for a in alerts:
        Alert.model_validate(a)


def test_replay_refuses_until_and_ticks_out_of_range_in_one_line(tmp_path: Path) -> None:
    events = _write(tmp_path / "in.jsonl", [_manhole("mh-1", "2026-11-20T20:00:00+08:00")])
    code, _, err = invoke("replay", str(events), "--until", "9999-12-31T00:00:00Z")
    assert code == 2 and "--until" in err and "2100" in err
    events = _write(tmp_path / "t.jsonl", [{"tick": "9999-12-31T20:00:00.000+00:00"}])
    code, _, err = invoke("replay", str(events))
    assert code == 1
    assert err.strip() == (f"Error: {events}:1: 'tick': must be before 2100-01-01T00:00:00Z "
                           "(times must lie in [1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z))")


def test_replay_goes_on_after_a_lone_surrogate(tmp_path: Path) -> None:
    lines: list[object] = [b'{"topic": "city.events.camera", "key": null, "raw": "\\ud800"}',
                           _manhole("mh-2", "2026-11-20T20:00:00+08:00")]
    code, alerts, dead, err = _replay(tmp_path, lines)
    assert code == 0, err
    assert [d["reason_code"] for d in dead] == ["bad_encoding"] and alerts


def test_summary_adds_up_and_escapes_control_characters(tmp_path: Path) -> None:
    label = "evil\u202e\x00label\x1b[2J\x85"
    lines: list[object] = [
        {"topic": "city.events.camera", "key": "cam-0001", "value": {
            "event_id": "c-1", "camera_id": "cam-0001", "observed_at": "2026-11-20T20:00:00+08:00",
            "detections": [{"label": label, "confidence": 0.9}]}},
        _manhole("mh-1", "2026-11-20T20:00:01+08:00"),
        _manhole("mh-1", "2026-11-20T20:00:01+08:00"),
        {"tick": "2026-11-20T20:10:00+08:00"},
        _manhole("mh-3", "2026-11-20T20:00:02+08:00", "ok"),
        {"topic": "city.events.report", "key": None, "raw": "{"},
    ]
    code, _, _, err = _replay(tmp_path, lines)
    assert code == 0
    assert "6 lines (1 ticks)" in err
    assert "5 messages: 1 accepted, 1 ignored, 1 late, 1 duplicates, 1 dead letters" in err
    assert "label=evil\\u202e\\x00label\\x1b[2J\\x85" in err
    for bad in ("\u202e", "\x00", "\x1b", "\x85"):
        assert bad not in err


def test_replay_partitions_late_input_like_a_worker(tmp_path: Path) -> None:
    """cam-0001's heartbeat at 10:10 (grid JY-0501, partition 0), then mh-0001 open at 10:00
    (JY-0402, partition 3): late for one engine, not for a worker's four."""
    lines: list[object] = [
        {"topic": "city.events.camera", "key": "cam-0001", "value": {
            "event_id": "hb-1", "camera_id": "cam-0001", "observed_at": "2026-11-20T10:10:00+08:00",
            "detections": []}},
        _manhole("mh-1", "2026-11-20T10:00:00+08:00")]
    code, alerts, _, err = _replay(tmp_path, lines)
    assert code == 0 and "on 4 partitions" in err
    assert [a["transition"] for a in alerts][:1] == ["opened"] and "0 late" in err
    code, alerts, _, err = _replay(tmp_path, lines, "--partitions", "1")
    assert code == 0 and alerts == [] and "1 late" in err
    code, _, _, err = _replay(tmp_path, lines, "--partitions", "0")
    assert code == 2


def test_replay_help_names_partitions() -> None:
    code, out, _ = invoke("replay", "--help")
    assert code == 0 and "--partitions" in out and "default: 4" in out


WEBHOOKS_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "webhooks.example.yml"


@pytest.mark.parametrize("args", [("worker",), ("console",), ("adapt", "deepstream", "ds-topic"),
                                  ("adapt", "frigate"), ("adapt", "open311"),
                                  ("webhooks", "run", str(WEBHOOKS_EXAMPLE))])
def test_a_service_without_a_city_map_refuses_to_start_and_says_what_to_set(
        args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """No production default from the demo package: a real city must not run on the demo map
    because CITYORDER_CITY was forgotten."""
    for name in [k for k in os.environ if k.startswith("CITYORDER_")]:
        monkeypatch.delenv(name)
    for name in ("DISPATCH_JIANCHENG_SECRET", "EMERGENCY_CAP_SECRET", "UTILITIES_SECRET"):
        monkeypatch.setenv(name, "0" * 64)      # the example receivers' signing secrets
    code, _, err = invoke(*args)
    assert code == 1, err
    assert "no city map: set CITYORDER_CITY (or --city)" in err and "docs/rules.md" in err


@pytest.mark.parametrize("command", [["tail"], ["feedback", "a-X-1-0123456789abcdef0123",
                                                 "acknowledge", "--actor", "duty7"]])
def test_what_a_user_sees_of_unreachable_brokers_is_the_one_line(command: list[str]) -> None:
    """As a terminal shows it (a process of its own, logging as the command sets it up):
    aiokafka's own line for each failed connection no longer comes first, and the clock that
    feedback reads first says it in the same words as every other command."""
    from streams.dev import free_port

    nowhere = f"127.0.0.1:{free_port(0)}"
    done = subprocess.run([sys.executable, "-m", "streams.cli", *command, "--brokers", nowhere],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("CITYORDER_")})
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: cannot reach the brokers kafka://{nowhere}: KafkaConnectionError: Unable to "
        f"bootstrap from [('127.0.0.1', {nowhere.split(':')[1]}, <AddressFamily.AF_INET: 2>)] "
        "(--brokers, or CITYORDER_BROKERS)"], done.stderr


def test_commands_that_cannot_reach_the_brokers_say_so_in_one_line(tmp_path: Path) -> None:
    """No traceback: one error line naming the brokers and where to set them, exit 1."""
    from streams.dev import free_port

    nowhere = f"127.0.0.1:{free_port(0)}"
    receivers = tmp_path / "receivers.yml"
    receivers.write_text("sender: cityorder-test\nreceivers:\n  - name: r1\n    url: "
                         "http://127.0.0.1:9/x\n    secret_env: CITYORDER_TEST_SECRET\n")
    os.environ["CITYORDER_TEST_SECRET"] = "0" * 32
    try:
        for command in (["tail"], ["simulate", "--day", "2026-11-20", "--scale", "0.01"],
                        ["webhooks", "resend", str(receivers), "--receiver", "r1"]):
            result = CliRunner().invoke(main, [*command, "--brokers", nowhere])
            assert result.exit_code == 1, (command, result.output, result.exception)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            assert f"Error: cannot reach the brokers kafka://{nowhere}: " in result.stderr, result.output
            assert "(--brokers, or CITYORDER_BROKERS)" in result.stderr
            assert "Traceback" not in result.output
    finally:
        del os.environ["CITYORDER_TEST_SECRET"]


def test_an_output_file_in_a_missing_directory_is_refused_before_any_work(
        tmp_path: Path, demo_day: Path) -> None:
    """Checked as the option is read (exit 2, the option named), not with a traceback after
    the replay has run."""
    missing = tmp_path / "no" / "such" / "dir" / "out.jsonl"
    for command in (["replay", str(demo_day), "-o", str(missing)],
                    ["replay", str(demo_day), "-o", str(tmp_path / "a.jsonl"), "--deadletters", str(missing)],
                    ["report", "--alerts", str(demo_day), "--date", "2026-11-20", "-o", str(missing)],
                    ["simulate", "--day", "2026-11-20", "--record", str(missing)]):
        code, out, err = invoke(*command)
        assert code == 2 and out == "", (command, out, err)
        assert f"{missing}: there is no directory {missing.parent}" in err, err
    assert not (tmp_path / "no").exists() and not (tmp_path / "a.jsonl").exists()
    code, _, err = invoke("report", "--alerts", str(demo_day), "--date", "2026-11-20", "-o", str(tmp_path))
    assert code == 2 and "is a directory" in err
