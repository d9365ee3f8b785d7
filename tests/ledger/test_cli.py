"""``cityorder ledger import``, ``cases`` and ``show`` as a user meets them."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from ledger.store import LedgerStore
from streams.cli import main
from tests.ledger.test_store import lifecycle
from tests.pg import Postgres


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_import_is_idempotent_and_cases_and_show_read_it_back(tmp_path: Path) -> None:
    messages = lifecycle(tmp_path)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    db = str(tmp_path / "ledger.sqlite")
    code, out, err = invoke("ledger", "import", str(alerts), "--ledger", db)
    assert code == 0, err
    assert f"{len(messages):,} transitions added, 0 already there, 0 conflicts" in out
    code, out, _ = invoke("ledger", "import", str(alerts), "--ledger", db)
    assert code == 0 and f"0 transitions added, {len(messages):,} already there" in out

    code, out, err = invoke("ledger", "cases", "--ledger", db, "--status", "closed")
    closed = [m for m in messages if m["status"] == "closed"][-1]
    assert code == 0 and closed["alert_id"] in out and out.splitlines()[0].startswith("alert_id")
    assert "1 case(s)" in err
    code, out, _ = invoke("ledger", "cases", "--ledger", db, "--status", "active", "--json")
    active = {orjson.loads(line)["alert_id"] for line in out.splitlines()}
    final = {}
    for m in messages:
        final[m["alert_id"]] = m
    assert active == {a for a, m in final.items()
                      if m["status"] in ("open", "acknowledged", "dispatched", "deferred")}

    code, out, _ = invoke("ledger", "show", closed["alert_id"], "--ledger", db)
    history = [m for m in messages if m["alert_id"] == closed["alert_id"]]
    assert code == 0 and "reopened  1x" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("    v")] == [
        f"v{m['version']}" for m in history]
    code, out, _ = invoke("ledger", "show", closed["alert_id"], "--ledger", db, "--json")
    assert [orjson.loads(line) for line in out.splitlines()] == history


def test_import_names_each_unreadable_line_and_exits_1(tmp_path: Path) -> None:
    messages = lifecycle(tmp_path)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(orjson.dumps(messages[0]) + b"\nnot json\n"
                       + orjson.dumps({**messages[1], "level": 0}) + b"\n")
    code, out, err = invoke("ledger", "import", str(alerts), "--ledger", str(tmp_path / "l.sqlite"))
    assert code == 1
    assert "1 transitions added" in out and "2 unreadable lines" in out
    assert "line 2: not_json:" in err and "line 3: bad_shape: level:" in err


def test_show_of_an_unknown_case_and_a_bad_database_say_so(tmp_path: Path) -> None:
    db = str(tmp_path / "l.sqlite")
    LedgerStore(db).close()   # a ledger, written by nobody yet
    code, _, err = invoke("ledger", "show", "a-X-0", "--ledger", db)
    assert code == 1 and "no case a-X-0 in the ledger" in err
    code, _, err = invoke("ledger", "cases", "--ledger", "postgresql://u:pw@127.0.0.1:1/x")
    assert code == 1 and "cannot open the ledger database" in err and "pw" not in err


def test_what_only_reads_the_ledger_refuses_one_that_was_never_written(
        tmp_path: Path, postgres: Postgres) -> None:
    """A mistyped --ledger (or none, and no ledger in the state directory) must not create an
    empty database and report zeros: supervisors rank people by those figures."""
    missing = tmp_path / "typo" / "ledger.sqlite"
    empty_pg = postgres.database("never_written")
    for where in (str(missing), empty_pg):
        for command in (["report", "--date", "2026-11-20"], ["ledger", "cases"],
                        ["ledger", "show", "a-X-0"]):
            code, out, err = invoke(*command, "--ledger", where)
            assert code == 1 and out == "", (command, where, out)
            assert "no ledger at" in err and "nothing was ever written there" in err, err
    assert not missing.parent.exists()

    # Once something has written it, the same commands read it.
    messages = lifecycle(tmp_path)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    for where in (str(missing), empty_pg):
        assert invoke("ledger", "import", str(alerts), "--ledger", where)[0] == 0
        code, out, err = invoke("report", "--date", messages[0]["opened_at"][:10], "--ledger", where)
        assert code == 0 and "合计" in out, err
