"""deploy/prometheus/ and deploy/alertmanager/ checked by Prometheus's and Alertmanager's own
tools (Debian's ``prometheus`` and ``prometheus-alertmanager``, which ``make test``'s set-up
installs when missing): the rules load, every alert's unit tests pass, and every alert has a
test that fires it and one that keeps it quiet, a runbook section, and a route."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.promtool import installed

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

#: Where each (team, severity) must go: deploy/alertmanager/alertmanager.yml's routing table.
ROUTES = {
    ("platform", "critical"): ["platform-pager"],
    ("platform", "warning"): ["platform-chat"],
    ("operations", "critical"): ["duty-desk", "supervisors"],
    ("operations", "warning"): ["supervisors"],
}


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_and_config_load() -> None:
    promtool = installed("promtool")
    for args in (("check", "rules", "deploy/prometheus/rules.yml"),
                 ("check", "config", "deploy/prometheus/prometheus.yml")):
        done = run(promtool, *args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_alerting_rules_unit_tests_pass() -> None:
    done = run(installed("promtool"), "test", "rules", "rules.test.yml", cwd=PROMETHEUS)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_unit_tests_fail_when_a_rule_changes(tmp_path: Path) -> None:
    """The unit tests pin the thresholds: loosen one and they fail."""
    rules = (PROMETHEUS / "rules.yml").read_text(encoding="utf-8")
    for old, new in (("for: 2m", "for: 10m"), ("> 4 * 3600", "> 5 * 3600"), ("> 10000", "> 100000")):
        assert old in rules
        (tmp_path / "rules.yml").write_text(rules.replace(old, new, 1), encoding="utf-8")
        shutil.copy(PROMETHEUS / "rules.test.yml", tmp_path)
        done = run(installed("promtool"), "test", "rules", "rules.test.yml", cwd=tmp_path)
        assert done.returncode != 0, f"the tests still pass with {new!r} instead of {old!r}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROMETHEUS / "rules.test.yml").read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in alerts():
        name = rule["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"{name}: no test where it fires"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: no test where it stays quiet"


def test_every_alert_has_labels_for_routing_and_a_runbook_section() -> None:
    headings = {re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
                for line in RUNBOOKS.read_text(encoding="utf-8").splitlines() if line.startswith("## ")}
    for rule in alerts():
        name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
        assert (labels["team"], labels["severity"]) in ROUTES, name
        assert {"summary", "description", "runbook_url"} <= set(notes), name
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/runbooks.md" and anchor == name.lower(), name
        assert anchor in headings, f"{name}: no section '## {name}' in docs/runbooks.md"


def test_alertmanager_config_is_valid_and_routes_each_alert() -> None:
    amtool = installed("amtool", "prometheus-alertmanager")
    done = run(amtool, "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr
    for rule in alerts():
        labels = rule["labels"]
        done = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                   f"alertname={rule['alert']}", f"team={labels['team']}", f"severity={labels['severity']}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().split(",") == ROUTES[(labels["team"], labels["severity"])], rule["alert"]
