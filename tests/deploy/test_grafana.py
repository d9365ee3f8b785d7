"""The Grafana dashboards as files: what deploy/grafana/build.py writes, valid against Grafana's
own dashboard schema (tests/deploy/schemas/README.md says where it comes from). Their queries
run on a real Prometheus and a real ledger database in tests/e2e/test_dashboards.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "grafana" / "build.py"
SCHEMA = Path(__file__).parent / "schemas" / "grafana-dashboard.schema.json"


def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(board: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator().iter_errors(board)]


def test_the_files_are_what_build_py_writes() -> None:
    module = build()
    written = sorted(p.stem for p in module.OUT.glob("*.json"))
    assert written == sorted(module.DASHBOARDS), "a dashboard file without a builder, or one missing"
    for name in module.DASHBOARDS:
        assert (module.OUT / f"{name}.json").read_text(encoding="utf-8") == module.render(name), \
            f"{name}.json differs from build.py: run `make dashboards`"


@pytest.mark.parametrize("name", ["city-operations", "assessment", "pipeline"])
def test_each_dashboard_is_valid_for_grafana(name: str) -> None:
    board = json.loads((build().OUT / f"{name}.json").read_text(encoding="utf-8"))
    assert not errors(board)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert all(p["title"] and p["targets"] for p in board["panels"])
    for panel in board["panels"]:   # no two panels on the same cells of the 24-column grid
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for other in board["panels"]:
            h = other["gridPos"]
            if other is not panel:
                apart = (g["x"] + g["w"] <= h["x"] or h["x"] + h["w"] <= g["x"] or
                         g["y"] + g["h"] <= h["y"] or h["y"] + h["h"] <= g["y"])
                assert apart, (panel["title"], other["title"])


def test_the_schema_refuses_what_grafana_would() -> None:
    """The check bites: a misspelt key, a panel without a type, a variable of no known type."""
    board = build().city_operations()
    assert not errors(board)
    assert errors(board | {"panel": []})
    assert errors(board | {"panels": [{k: v for k, v in board["panels"][0].items() if k != "type"}]})
    variable = board["templating"]["list"][0] | {"type": "dropdown"}
    assert errors(board | {"templating": {"list": [variable]}})
