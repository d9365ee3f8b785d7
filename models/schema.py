"""JSON Schema of every topic, and the AsyncAPI document over them all (``models.asyncapi``),
kept in ``schemas/`` beside the code that defines them.

The files are generated, committed and checked: consumers read them without running Python,
and ``python -m models.schema --check`` (run by the tests) fails when a model changed without
its schema being regenerated, so the published contract can never silently drift.

    python -m models.schema            # (re)write schemas/<topic>.schema.json and asyncapi.yaml
    python -m models.schema --check    # exit 1 and name the stale files
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from models import asyncapi
from models.inputs import CameraEvent, Feedback, ReportEvent, SensorEvent
from models.outputs import Alert, AuditRecord, DeadLetter, WebhookDeadLetter
from models.timestamps import TIMESTAMP_RANGE

TOPIC_MODELS: Final[dict[str, tuple[type[BaseModel], str]]] = {
    "city.events.camera": (CameraEvent, "Detections from AI cameras (one analysed frame)."),
    "city.events.sensor": (SensorEvent, "IoT sensor readings."),
    "city.events.report": (ReportEvent, "Inspector and citizen reports."),
    "city.alerts.feedback": (Feedback, "What dispatch and the ops centre did to an alert."),
    "city.alerts": (Alert, "Every change of every alert; unique by (alert_id, version)."),
    "city.alerts.deadletter": (DeadLetter, "Input that could not be used, and why."),
    "city.audit": (AuditRecord, "The console's audit trail: sign-ins and actions on cases."),
    "city.webhooks.deadletter": (WebhookDeadLetter, "Alert transitions a webhook receiver never took."),
}
DEFAULT_DIR: Final = Path(__file__).resolve().parent.parent / "schemas"
ASYNCAPI_FILE: Final = "asyncapi.yaml"
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_INPUT_TIME: Final = (f"RFC 3339 with a UTC offset, in {TIMESTAMP_RANGE}, e.g. "
                      "2026-11-22T08:15:03.120+08:00; digits past the millisecond are cut off.")
_OUTPUT_TIME: Final = ("RFC 3339 in the city's UTC offset with exactly three fraction digits, e.g. "
                       "2026-11-22T08:15:03.120+08:00.")


def topic_schema(topic: str) -> dict[str, Any]:
    """The schema of one topic. Model docstrings explain the code to its maintainers, so they
    are dropped; each topic gets one sentence for its consumers instead."""
    model, description = TOPIC_MODELS[topic]
    schema = _with_time_formats(_without_model_descriptions(model.model_json_schema(mode="validation")))
    return {"$schema": _DIALECT, **schema, "title": topic, "description": description}


def render(topic: str) -> str:
    """The file's exact text: sorted keys and a trailing newline, so regeneration is stable."""
    return json.dumps(topic_schema(topic), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def published() -> dict[str, str]:
    """Every file of ``schemas/`` by name, with its exact text: each topic's JSON Schema and the
    AsyncAPI document that names them all."""
    files = {f"{topic}.schema.json": render(topic) for topic in TOPIC_MODELS}
    files[ASYNCAPI_FILE] = asyncapi.render({topic: d for topic, (_, d) in TOPIC_MODELS.items()})
    return files


def stale_files(directory: Path) -> list[Path]:
    """Files that are missing or differ from what the models generate now."""
    return [directory / name for name, text in published().items()
            if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text]


def write_all(directory: Path) -> list[Path]:
    """Write every file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in published().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _with_time_formats(node: Any) -> Any:
    """End each time field's description with its format, said once here: a field's own
    description replaces its type's in pydantic's schema."""
    if isinstance(node, dict):
        for prop in node.get("properties", {}).values():
            time = next((s for s in (prop, *prop.get("anyOf", ())) if s.get("format") == "date-time"), None)
            if time is not None:
                form = _OUTPUT_TIME if "pattern" in time else _INPUT_TIME
                prop["description"] = f"{prop.get('description', '')} {form}".strip()
        for value in node.values():
            _with_time_formats(value)
    elif isinstance(node, list):
        for item in node:
            _with_time_formats(item)
    return node


def _without_model_descriptions(node: Any) -> Any:
    """Drop the models' descriptions (their docstrings); keep the fields', each on one line."""
    if isinstance(node, dict):
        is_model = "properties" in node
        return {
            key: " ".join(value.split()) if key == "description" and isinstance(value, str)
            else _without_model_descriptions(value)
            for key, value in node.items()
            if not (is_model and key == "description")
        }
    if isinstance(node, list):
        return [_without_model_descriptions(item) for item in node]
    return node


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.schema", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a schema file is stale")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="schema directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.dir)
        for path in stale:
            print(f"stale: {path} (run: python -m models.schema)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
