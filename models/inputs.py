"""The four input topics as frozen, strict pydantic models.

Only what makes a message unusable is rejected here. What the contract calls *ignored and
counted by value* (an unknown camera label, sensor kind or sensor state) is accepted, because
dropping it would break "nothing is dropped silently": the caller must see it to count it,
and reads ``ignored_reason`` to know that it should.
"""

import math
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from models.common import (
    STRICT_FROZEN,
    Address,
    AlertId,
    Fraction,
    GridId,
    Id,
    Location,
    Photos,
    Text,
)
from models.timestamps import Timestamp
from models.vocabulary import CAMERA_LABELS, SENSOR_STATE_KINDS, SENSOR_VALUE_KINDS

IgnoredReason = tuple[str, str]
"""(what was not understood, its value), e.g. ``("sensor_kind", "humidity")``: the contract
says such input is ignored *and counted by value*, so the caller needs both halves."""

ReportSource = Literal["inspector", "hotline", "app", "supervisor"]
FeedbackAction = Literal[
    "acknowledge", "dispatch", "resolve", "verify", "reject", "reopen", "defer"
]


class Detection(BaseModel):
    """One object a camera saw in one frame. Invalid here invalidates the whole message."""

    model_config = STRICT_FROZEN

    label: str
    track_id: Id | None = None
    confidence: Fraction
    bbox: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    location: Location | None = None

    @property
    def ignored_reason(self) -> IgnoredReason | None:
        """``("camera_label", label)`` for a label outside the contract's 13, else None."""
        return None if self.label in CAMERA_LABELS else ("camera_label", self.label)


class CameraEvent(BaseModel):
    """A frame's detections; an empty list is a heartbeat that still proves the camera alive."""

    model_config = STRICT_FROZEN

    event_id: Id
    camera_id: Id
    observed_at: Timestamp
    snapshot_url: str | None = None
    detections: Annotated[tuple[Detection, ...], Field(max_length=256)]


def _kind_is(kinds: list[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"kind": {"enum": kinds}}, "required": ["kind"]}, "then": then}


# What the validators below enforce, stated for consumers that only read the schema.
_SENSOR_SCHEMA_RULES: Final = {
    "allOf": [
        _kind_is(
            sorted(SENSOR_STATE_KINDS),
            {"properties": {"state": {"type": "string"}}, "required": ["state"]},
        ),
        *(
            _kind_is(
                [kind],
                {
                    "properties": {
                        "value": {"type": "number", "minimum": low}
                        | ({} if high is None else {"maximum": high})
                    },
                    "required": ["value"],
                },
            )
            for kind, (low, high) in sorted(SENSOR_VALUE_KINDS.items())
        ),
    ]
}


class SensorEvent(BaseModel):
    """One IoT reading.

    ``state`` is kept only for state kinds and ``value`` (as a float) only for value kinds; the
    other one is optional and dropped to None so that rules never read a field the kind does not
    define. For an unknown kind both are kept when they have the right JSON type, for logging.
    """

    model_config = ConfigDict(**STRICT_FROZEN, json_schema_extra=_SENSOR_SCHEMA_RULES)

    event_id: Id
    sensor_id: Id
    kind: str
    observed_at: Timestamp
    state: str | None = Field(default=None, validate_default=True)
    value: float | None = Field(default=None, validate_default=True)
    location: Location | None = None

    @field_validator("state", mode="plain", json_schema_input_type=Any)
    @classmethod
    def _state_for_kind(cls, state: object, info: ValidationInfo) -> str | None:
        """A state kind needs a string state; whether it is a known one is the caller's count."""
        kind = info.data.get("kind")
        if kind in SENSOR_STATE_KINDS:
            if type(state) is not str:
                raise PydanticCustomError(
                    "state_required", "must be a string for kind {kind}", {"kind": kind}
                )
            return state
        if kind in SENSOR_VALUE_KINDS:
            return None
        return state if type(state) is str else None

    @field_validator("value", mode="plain", json_schema_input_type=Any)
    @classmethod
    def _value_for_kind(cls, value: object, info: ValidationInfo) -> float | None:
        """A value kind needs a finite number in its range; bool is not a number."""
        kind = info.data.get("kind")
        bounds = SENSOR_VALUE_KINDS.get(kind) if type(kind) is str else None
        number = _finite_float(value)
        if bounds is None:
            return None if kind in SENSOR_STATE_KINDS else number
        if number is None:
            raise PydanticCustomError(
                "value_required", "must be a finite number for kind {kind}", {"kind": kind}
            )
        low, high = bounds
        if number < low:
            raise PydanticCustomError(
                "value_range",
                "must be at least {bound} for kind {kind}",
                {"bound": low, "kind": kind},
            )
        if high is not None and number > high:
            raise PydanticCustomError(
                "value_range",
                "must be at most {bound} for kind {kind}",
                {"bound": high, "kind": kind},
            )
        return number

    @property
    def ignored_reason(self) -> IgnoredReason | None:
        """``("sensor_kind", kind)`` or ``("sensor_state", state)`` when the reading is to be
        ignored and counted by value; None when the rules should see it."""
        states = SENSOR_STATE_KINDS.get(self.kind)
        if states is not None:
            return None if self.state in states else ("sensor_state", self.state or "")
        if self.kind in SENSOR_VALUE_KINDS:
            return None
        return ("sensor_kind", self.kind)


def _finite_float(value: object) -> float | None:
    """A JSON number as a float, or None for anything else (``true``, ``"0.9"``, ±inf)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


class ReportEvent(BaseModel):
    """An inspector's or citizen's report.

    ``category`` is any non-empty string: whether it is known depends on the loaded rules, so
    the caller decides. A hotline ticket may only know its grid, hence ``location`` *or*
    ``grid_id``; when both are given the location is the more precise and wins.
    """

    model_config = ConfigDict(
        **STRICT_FROZEN,
        json_schema_extra={
            "anyOf": [
                {"required": ["location"], "properties": {"location": {"type": "object"}}},
                {"required": ["grid_id"], "properties": {"grid_id": {"type": "string"}}},
            ]
        },
    )

    event_id: Id
    source: ReportSource
    reporter_id: Id | None = None
    category: Annotated[str, StringConstraints(min_length=1)]
    observed_at: Timestamp
    location: Location | None = None
    grid_id: GridId | None = Field(default=None, validate_default=True)
    address: Address | None = None
    description: Text | None = None
    photos: Photos | None = None

    @field_validator("grid_id", mode="after")
    @classmethod
    def _somewhere(cls, grid_id: str | None, info: ValidationInfo) -> str | None:
        """A report placed nowhere could only be dropped; reject it at the edge instead."""
        if grid_id is None and "location" in info.data and info.data["location"] is None:
            raise PydanticCustomError("place_required", "required when location is absent")
        return grid_id


class Feedback(BaseModel):
    """What dispatch or the ops centre did to an alert; its ``alert_id`` names the grid."""

    model_config = ConfigDict(
        **STRICT_FROZEN,
        json_schema_extra={
            "if": {"properties": {"action": {"const": "defer"}}, "required": ["action"]},
            "then": {"required": ["until"], "properties": {"until": {"type": "string"}}},
        },
    )

    event_id: Id
    alert_id: AlertId
    action: FeedbackAction
    actor: Id
    at: Timestamp
    note: Text | None = None
    assignee: Id | None = None
    photos: Photos | None = None
    until: Timestamp | None = Field(default=None, validate_default=True)

    @field_validator("until", mode="after")
    @classmethod
    def _defer_needs_future_until(cls, until: int | None, info: ValidationInfo) -> int | None:
        """A deferral without an end, or ending before it starts, would stop the clock forever."""
        if info.data.get("action") != "defer":
            return until
        if until is None:
            raise PydanticCustomError("until_required", "required for action defer")
        at = info.data.get("at")
        if at is not None and until <= at:
            raise PydanticCustomError("until_not_later", "must be later than at")
        return until

    @property
    def grid_id(self) -> str:
        """The grid embedded in ``alert_id`` (``a-GRID-<20 hex>``): the feedback's partition."""
        return self.alert_id[2:-21]
