"""``cityorder compare``: live alerts against their replay."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from streams.cli import main
from streams.compare import compare_alerts


def alert(aid: str, version: int, **fields: object) -> dict[str, object]:
    return {"alert_id": aid, "version": version, "transition": "opened", "status": "open",
            "emitted_at": f"2026-12-04T10:00:0{version}.000+08:00", **fields}


def write(path: Path, messages: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def test_equal_but_for_emitted_at_and_repeats() -> None:
    want = [alert("a-1", 1), alert("a-1", 2, transition="acknowledged")]
    got = [alert("a-1", 1, emitted_at="x"), alert("a-1", 1, emitted_at="y"),
           alert("a-1", 2, transition="acknowledged")]
    result = compare_alerts(got, want)
    assert result.same
    assert result.describe() == "same: 2 versions, equal on every field but emitted_at"


def test_every_kind_of_difference_is_told() -> None:
    want = [alert("a-1", 1), alert("a-1", 2), alert("a-2", 1, level=1)]
    got = [alert("a-1", 1), alert("a-1", 1, status="closed"), alert("a-2", 1, level=2), alert("a-3", 1)]
    result = compare_alerts(got, want)
    assert not result.same
    assert result.missing == [("a-1", 2)] and result.extra == [("a-3", 1)]
    assert result.conflicts == [("a-1", 1)]
    assert result.differ == [(("a-2", 1), [("level", 1, 2)])]
    text = result.describe()
    assert "1 missing from live, e.g. a-1 v2" in text and "1 only in live, e.g. a-3 v1" in text
    assert "a-2 v1: level 1 expected, 2 live" in text


def test_cli_exit_codes(tmp_path: Path) -> None:
    live = write(tmp_path / "live.jsonl", [alert("a-1", 1)])
    same = write(tmp_path / "same.jsonl", [alert("a-1", 1, emitted_at="z")])
    other = write(tmp_path / "other.jsonl", [alert("a-1", 1, level=3)])
    runner = CliRunner()
    ok = runner.invoke(main, ["compare", str(live), str(same)])
    assert ok.exit_code == 0 and "same: 1 versions" in ok.output
    bad = runner.invoke(main, ["compare", str(live), str(other)])
    assert bad.exit_code == 1 and "a-1 v1: level 3 expected, None live" in bad.output
    (tmp_path / "junk.jsonl").write_text('{"alert_id": "a", "version": 1}\nnot json\n')
    junk = runner.invoke(main, ["compare", str(tmp_path / "junk.jsonl"), str(same)])
    assert junk.exit_code == 1 and "junk.jsonl:2: not JSON" in junk.output
