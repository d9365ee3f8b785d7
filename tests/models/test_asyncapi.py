"""``schemas/asyncapi.yaml``: a valid AsyncAPI 3.0.0 document (by the AsyncAPI Initiative's own
JSON Schema, tests/models/schemas/README.md), naming every topic, whose every example is a
message the topic's JSON Schema and its model both accept."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from models.asyncapi import TOPICS
from models.schema import DEFAULT_DIR, TOPIC_MODELS

OFFICIAL = Path(__file__).parent / "schemas" / "asyncapi-3.0.0.schema.json"


def document() -> dict[str, Any]:
    return dict(yaml.safe_load((DEFAULT_DIR / "asyncapi.yaml").read_text(encoding="utf-8")))


def errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def test_the_document_is_valid_asyncapi_3() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert not errors(doc)


def test_the_official_schema_refuses_what_asyncapi_3_does() -> None:
    """The check bites: 2.x's publish, an operation without its channel, a channel of no object."""
    doc = document()
    operation = next(iter(doc["operations"]))
    for broken in (lambda d: d["operations"][operation].update(action="publish"),
                   lambda d: d["operations"][operation].pop("channel"),
                   lambda d: d["channels"].update(bad=7)):
        changed = copy.deepcopy(doc)
        broken(changed)
        assert errors(changed)


def test_every_topic_has_a_channel_an_operation_and_examples() -> None:
    doc = document()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(TOPIC_MODELS)
    used = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in doc["operations"].values()}
    assert used == set(doc["channels"])
    actions = {doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"]: op["action"]
               for op in doc["operations"].values()}
    assert {t for t, a in actions.items() if a == "receive"} == {
        "city.events.camera", "city.events.sensor", "city.events.report", "city.alerts.feedback"}
    for message in doc["components"]["messages"].values():
        assert message["examples"], message["name"]
        ref = message["payload"]["schema"]["$ref"]
        assert (DEFAULT_DIR / ref).is_file(), ref


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_every_example_is_accepted_by_the_schema_and_the_model(topic: Any) -> None:
    schema = json.loads((DEFAULT_DIR / f"{topic.name}.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    model, _ = TOPIC_MODELS[topic.name]
    doc = document()
    (message,) = [m for m in doc["components"]["messages"].values() if m["title"] == topic.name]
    assert [e["payload"] for e in message["examples"]] == [payload for _, payload in topic.examples]
    for name, payload in topic.examples:
        assert not list(validator.iter_errors(payload)), name
        model.model_validate_json(orjson.dumps(payload))
