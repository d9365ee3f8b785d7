"""Rule unit tests in YAML, the way ``promtool test rules`` tests Prometheus rules.

A test file names the packs and map under test, then lists tests: input lines exactly as in a
replay file (so a test can be cut from a recording), and the alert transitions expected, in
order. Each expected item compares only the keys it gives, so a test says what it means
(``{rule_id: x, transition: opened, at: ...}``) and survives unrelated fields changing::

    rules: [..]                  # packs, relative to this file (default: the default pack)
    city: ../../demo/city.geojson  # default: the demo city
    tests:
      - name: a vendor on the main road for 10 minutes opens an alert
        input:
          - {topic: city.events.camera, key: cam-01, value: {...}}
          - {tick: "2026-11-20T18:20:05.000+08:00"}
        until: "2026-11-20T19:00:00+08:00"     # optional: run the clock this far at the end
        expect:
          - {rule_id: street-vending.main-road, transition: opened, level: 1}
        expect_deadletters: []                  # optional

A test runs on one engine (``partitions: N`` at the top of the file splits the grids as a
worker with N partitions does): a test pins down what a rule does with a story, and with
several partitions each grid's clock would depend on which other grids share its partition,
by a hash the analyst does not see, and ``expect`` would list grids in partition order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from models.timestamps import parse_timestamp_ms
from rules.citymap import CityMap, MapError
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.pack import DEFAULT_PACK, PackError, load_rules
from rules.replay import Replay, ReplayFileError


class RuleTestError(ValueError):
    """The test file itself is wrong (not a failing test)."""


@dataclass(slots=True)
class Result:
    name: str
    line: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    actual: list[dict[str, Any]] = field(default_factory=list)


class _LineLoader(yaml.SafeLoader):
    """Keeps each mapping's line so a failure points at its test."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def run_file(path: Path) -> list[Result]:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except (OSError, yaml.YAMLError) as e:
        raise RuleTestError(f"{path}: cannot read the test file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise RuleTestError(f"{path}:1: a rule test file is a mapping with a 'tests' list")
    base = path.parent
    rule_paths = [base / p for p in doc.get("rules", [])] or [DEFAULT_PACK]
    city_path = base / doc["city"] if "city" in doc else DEMO_CITY
    try:
        rules = load_rules(rule_paths)
        city = CityMap.load(city_path)
    except (PackError, MapError, OSError) as e:
        raise RuleTestError(f"{path}: {e}") from None
    clock = doc.get("clock", "event")
    partitions = doc.get("partitions", 1)
    if type(partitions) is not int or partitions < 1:
        raise RuleTestError(f"{path}: partitions: expected a whole number of at least 1, "
                            f"got {partitions!r}")
    return [_run_test(path, test, city, rules, clock, partitions) for test in doc["tests"]]


def _run_test(path: Path, test: Any, city: CityMap, rules: Any, clock: str,
              partitions: int = 1) -> Result:
    if not isinstance(test, dict) or "name" not in test or "input" not in test or "expect" not in test:
        line = test.get("__line__", 0) if isinstance(test, dict) else 0
        raise RuleTestError(f"{path}:{line}: each test needs 'name', 'input' and 'expect'")
    line = test["__line__"]
    alerts: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    replay = Replay(city, rules, clock=clock, source=str(path), on_alert=alerts.append,
                    on_dead=dead.append, partitions=partitions)
    for item in test["input"]:
        item_line = item.get("__line__", line) if isinstance(item, dict) else line
        try:
            replay.line(orjson.dumps(_strip_lines(item)), item_line)
        except ReplayFileError as e:
            raise RuleTestError(str(e)) from None
    until = test.get("until")
    try:
        replay.finish(parse_timestamp_ms(until) if until is not None else None)
    except ValueError as e:
        raise RuleTestError(f"{path}:{line}: until: {e}") from None
    problems = _compare("alert", _strip_lines(test["expect"]), alerts)
    if "expect_deadletters" in test:
        problems += _compare("dead letter", _strip_lines(test["expect_deadletters"]), dead)
    return Result(str(test["name"]), line, not problems, problems, alerts)


def _compare(what: str, expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for i, exp in enumerate(expected):
        if i >= len(actual):
            problems.append(f"{what} {i + 1}: expected {_show(exp)}, got nothing")
            continue
        diff = _diff(exp, actual[i])
        if diff:
            problems.append(f"{what} {i + 1}: {diff}")
    for j in range(len(expected), len(actual)):
        got = actual[j]
        brief = {k: got[k] for k in ("alert_id", "rule_id", "transition", "at", "reason_code")
                 if k in got}
        problems.append(f"{what} {j + 1}: not expected, got {_show(brief)}")
    return problems


def _diff(expected: Any, actual: Any, path: str = "") -> str | None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k, v in expected.items():
            if k not in actual:
                return f"{path}{k}: missing"
            d = _diff(v, actual[k], f"{path}{k}.")
            if d:
                return d
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return (f"{path.rstrip('.') or 'value'}: expected {len(expected)} items, got "
                    f"{len(actual)}: {_show(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            d = _diff(e, a, f"{path.rstrip('.')}[{i}].")
            if d:
                return d
        return None
    if isinstance(expected, str) and isinstance(actual, str) and expected != actual:
        try:  # the same instant written with another offset is the same time
            if parse_timestamp_ms(expected) == parse_timestamp_ms(actual):
                return None
        except ValueError:
            pass
    if expected != actual:
        return f"{path.rstrip('.') or 'value'}: expected {_show(expected)}, got {_show(actual)}"
    return None


def _show(value: Any) -> str:
    return orjson.dumps(value).decode()
