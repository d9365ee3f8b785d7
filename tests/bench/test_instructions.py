"""bench.instructions' parts that run outside valgrind: the counted runs must do the work
they are charged with, and every step ``--without`` names must exist (a renamed method would
otherwise be stubbed under its old name, and the stage "cost" nothing)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bench.instructions import STEPS, child, main, prepare


def test_steps_name_real_methods() -> None:
    for name, (module, cls, method, _) in STEPS.items():
        assert callable(getattr(getattr(importlib.import_module(module), cls), method)), name


def test_child_runs_do_the_work(tmp_path: Path) -> None:
    messages, parts = prepare(600, 3, tmp_path)
    assert messages == 600 and parts >= messages
    assert child("ingest", tmp_path, False, []) == 0
    assert child("ingest", tmp_path, True, []) == parts
    assert child("engine", tmp_path, False, []) == 0
    assert child("engine", tmp_path, True, []) == parts
    assert child("tracked", tmp_path, True, []) == parts
    assert child("checkpointed", tmp_path, True, []) == parts


def test_unknown_step_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--without", "evidence,nope"])
    assert e.value.code == 2
    assert "no step nope" in capsys.readouterr().err
