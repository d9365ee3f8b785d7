"""The command line as a user meets it: replay, rules check, rules test, demo, errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from models.outputs import Alert, DeadLetter
from rules.ruletest import run_file
from streams.cli import main

DEFAULT_TESTS = Path(__file__).resolve().parents[2] / "rules" / "packs" / "default" / "tests"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "day.jsonl"
    code, _, err = invoke("demo", "--seed", "3", "-o", str(out))
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
    assert out.strip().endswith("10 passed, 1 failed")


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
    assert out.startswith("ok: 22 rules, 50 grids")
    assert "warning" not in err


def test_help_explains_every_command() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for cmd in ("replay", "rules", "demo"):
        assert cmd in out
    code, out, _ = invoke("replay", "--help")
    assert "--deadletters" in out and "--until" in out and "--clock" in out


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
