"""JSON Schema of every topic, kept in ``schemas/`` beside the code that defines it.

The files are generated, committed and checked: consumers read them without running Python,
and ``python -m models.schema --check`` (run by the tests) fails when a model changed without
its schema being regenerated, so the published contract can never silently drift.

    python -m models.schema            # (re)write schemas/<topic>.schema.json
    python -m models.schema --check    # exit 1 and name the stale files
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from models.inputs import CameraEvent, Feedback, ReportEvent, SensorEvent
from models.outputs import Alert, DeadLetter

TOPIC_MODELS: Final[dict[str, tuple[type[BaseModel], str]]] = {
    "city.events.camera": (CameraEvent, "Detections from AI cameras (one analysed frame)."),
    "city.events.sensor": (SensorEvent, "IoT sensor readings."),
    "city.events.report": (ReportEvent, "Inspector and citizen reports."),
    "city.alerts.feedback": (Feedback, "What dispatch and the ops centre did to an alert."),
    "city.alerts": (Alert, "Every change of every alert; unique by (alert_id, version)."),
    "city.alerts.deadletter": (DeadLetter, "Input that could not be used, and why."),
}
DEFAULT_DIR: Final = Path(__file__).resolve().parent.parent / "schemas"
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def topic_schema(topic: str) -> dict[str, Any]:
    """The schema of one topic. Model docstrings explain the code to its maintainers, so they
    are dropped; each topic gets one sentence for its consumers instead."""
    model, description = TOPIC_MODELS[topic]
    schema = _without_model_descriptions(model.model_json_schema(mode="validation"))
    return {"$schema": _DIALECT, **schema, "title": topic, "description": description}


def render(topic: str) -> str:
    """The file's exact text: sorted keys and a trailing newline, so regeneration is stable."""
    return json.dumps(topic_schema(topic), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale_files(directory: Path) -> list[Path]:
    """Schema files that are missing or differ from what the models generate now."""
    stale = []
    for topic in TOPIC_MODELS:
        path = directory / f"{topic}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(topic):
            stale.append(path)
    return stale


def write_all(directory: Path) -> list[Path]:
    """Write every topic's schema; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in TOPIC_MODELS:
        path = directory / f"{topic}.schema.json"
        path.write_text(render(topic), encoding="utf-8")
        written.append(path)
    return written


def _without_model_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        is_model = "properties" in node
        return {
            key: _without_model_descriptions(value)
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
