"""The committed JSON Schemas are what the models generate; the check can tell when they are not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.schema import DEFAULT_DIR, TOPIC_MODELS, main, render, stale_files, write_all
from models.timestamps import TIMESTAMP_RANGE
from models.vocabulary import REASON_CODES
from streams.settings import AUDIT_TOPIC, INPUT_TOPICS, OUTPUT_TOPICS, WEBHOOK_DEADLETTER_TOPIC

#: Every topic other systems read or write: all but cityorder's own internal one.
TOPICS = [*INPUT_TOPICS, *OUTPUT_TOPICS, AUDIT_TOPIC, WEBHOOK_DEADLETTER_TOPIC]


def test_committed_schemas_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "models.schema", "--check"],
        capture_output=True,
        text=True,
        cwd=DEFAULT_DIR.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_there_is_a_schema_for_every_topic() -> None:
    assert list(TOPIC_MODELS) == TOPICS
    assert sorted(p.name for p in DEFAULT_DIR.glob("*.schema.json")) == sorted(  # and asyncapi.yaml
        f"{topic}.schema.json" for topic in TOPICS
    )


def test_check_names_missing_and_changed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stale_files(tmp_path) == [tmp_path / f"{topic}.schema.json" for topic in TOPICS] + \
        [tmp_path / "asyncapi.yaml"]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    write_all(tmp_path)
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    changed = tmp_path / "city.alerts.schema.json"
    changed.write_text(changed.read_text(encoding="utf-8").replace('"version"', '"revision"'))
    capsys.readouterr()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"stale: {changed} (run: python -m models.schema)\n")


def test_rendering_is_stable_with_a_trailing_newline() -> None:
    for topic in TOPICS:
        text = render(topic)
        assert text == render(topic)
        assert text.endswith("}\n")
        assert json.loads(text)["title"] == topic


def _schema(topic: str) -> dict:
    return json.loads(render(topic))


def test_input_timestamps_are_date_time_strings_that_name_their_range() -> None:
    for topic, field in [
        ("city.events.camera", "observed_at"),
        ("city.events.sensor", "observed_at"),
        ("city.events.report", "observed_at"),
        ("city.alerts.feedback", "at"),
    ]:
        prop = _schema(topic)["properties"][field]
        assert (prop["type"], prop["format"]) == ("string", "date-time")
        assert TIMESTAMP_RANGE in prop["description"] and "offset" in prop["description"]
    until = _schema("city.alerts.feedback")["properties"]["until"]["anyOf"][0]
    assert until == {"type": "string", "format": "date-time",
                     "description": f"RFC 3339 with a UTC offset, in {TIMESTAMP_RANGE}"}


def test_deadletter_schema_lists_every_reason_code() -> None:
    codes = _schema("city.alerts.deadletter")["properties"]["reason_code"]["enum"]
    assert set(codes) == REASON_CODES
    assert {"bad_timestamp", "future_timestamp", "internal_error"} <= set(codes)


def test_output_times_carry_milliseconds_pattern() -> None:
    prop = _schema("city.alerts")["properties"]["emitted_at"]
    assert prop["format"] == "date-time"
    assert prop["pattern"].startswith("^[0-9]{4}-")


def test_schema_states_the_bounds() -> None:
    camera = _schema("city.events.camera")
    assert camera["properties"]["detections"]["maxItems"] == 256
    confidence = camera["$defs"]["Detection"]["properties"]["confidence"]
    assert "0 to 1" in confidence.pop("description")
    assert confidence == {
        "maximum": 1,
        "minimum": 0,
        "title": "Confidence",
        "type": "number",
    }
    assert camera["$defs"]["Location"]["properties"]["lat"]["maximum"] == 90
    feedback = _schema("city.alerts.feedback")
    assert feedback["then"]["required"] == ["until"]
    assert feedback["properties"]["action"]["enum"] == [
        "acknowledge",
        "dispatch",
        "resolve",
        "verify",
        "reject",
        "reopen",
        "defer",
    ]
    assert _schema("city.events.report")["anyOf"][1]["required"] == ["grid_id"]
    assert "description" not in camera["$defs"]["Detection"]  # docstrings are for maintainers


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_every_field_has_a_description_for_integrators(topic: str) -> None:
    """Every property, nested ones too, says what it is in one line (units, WGS 84, the time
    format, what each enum value means)."""
    schema = json.loads(render(topic))
    models = [schema, *schema.get("$defs", {}).values()]
    for model in models:
        for name, prop in model.get("properties", {}).items():
            text = prop.get("description", "")
            assert len(text) >= 10, f"{model.get('title')}.{name} has no description"
            assert "\n" not in text and "  " not in text, f"{model.get('title')}.{name}: {text!r}"
