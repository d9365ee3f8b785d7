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
    """What was seen: one of the contract's 13 labels (street_vendor, vendor_stall,
    outdoor_business, parked_car, parked_ebike, heavy_truck, abandoned_vehicle, garbage_pile,
    debris, illegal_poster, outdoor_bbq, stray_dog, hanging_laundry) or one a loaded rule pack
    declares. Any other label is ignored and counted; the rest of the message is still used."""
    track_id: Id | None = None
    """The tracker's id of one object across frames (1 to 128 characters). With it, one object
    is one subject; without it, the subject is the label in the rule's zone."""
    confidence: Fraction
    """The detector's confidence, 0 to 1. Rules may require a minimum."""
    bbox: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    """The box in the frame as [x, y, w, h], each a fraction 0 to 1 of the frame's width or
    height, from the top left corner."""
    location: Location | None = None
    """Where the object is (WGS 84). Default: the camera's registered position. Required for a
    camera that is not in the city map."""

    @property
    def ignored_reason(self) -> IgnoredReason | None:
        """``("camera_label", label)`` for a label outside the contract's 13, else None."""
        return None if self.label in CAMERA_LABELS else ("camera_label", self.label)


class CameraEvent(BaseModel):
    """A frame's detections; an empty list is a heartbeat that still proves the camera alive."""

    model_config = STRICT_FROZEN

    event_id: Id
    """Unique per message (1 to 128 characters): a message sent twice is recognised by it."""
    camera_id: Id
    """The camera. If the city map registers it, its position, grid and zones are known."""
    observed_at: Timestamp
    """When the frame was taken, on the camera's clock."""
    snapshot_url: str | None = None
    """A link to the frame, copied into the alert's evidence."""
    detections: Annotated[tuple[Detection, ...], Field(max_length=256)]
    """What the frame shows, at most 256. An empty array is a heartbeat: it proves the camera
    alive (what `silent` rules watch)."""


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
    """Unique per reading (1 to 128 characters)."""
    sensor_id: Id
    """The sensor. If the city map registers it, its position and grid are known."""
    kind: str
    """What it measures. State kinds: parking_occupancy (occupied, free), manhole_cover (ok,
    tilted, open), streetlight (on, off, fault). Value kinds: noise (dB, >= 0), bin_fill
    (fraction 0 to 1, 0.9 = 90 % full), water_level (cm, >= 0). Another kind is ignored and
    counted."""
    observed_at: Timestamp
    """When the reading was taken."""
    state: str | None = Field(default=None, validate_default=True)
    """Required, as a string, for a state kind; ignored for a value kind. An unknown state of
    a known kind is ignored and counted."""
    value: float | None = Field(default=None, validate_default=True)
    """Required for a value kind: a finite number in the kind's range, in its unit; ignored
    for a state kind."""
    location: Location | None = None
    """Where the sensor is (WGS 84). Required for a sensor not in the city map; if given, used
    even for a registered one."""

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
    """Unique per report, e.g. the work-order number (1 to 128 characters)."""
    source: ReportSource
    """Who reports: inspector (巡查员), hotline (12345 市民热线), app (随手拍) or supervisor (督查)."""
    reporter_id: Id | None = None
    """Who reported."""
    category: Annotated[str, StringConstraints(min_length=1)]
    """What is reported: a camera label, a sensor-derived category (streetlight_out,
    manhole_open, camera_offline, sensor_offline, noise_nuisance, bin_overflow, waterlogging,
    parking_overstay), other, or a category a loaded rule pack names. Others are ignored and
    counted."""
    observed_at: Timestamp
    """When it was seen or reported."""
    location: Location | None = None
    """Where (WGS 84). One of location and grid_id is required; location wins if both are
    given."""
    grid_id: GridId | None = Field(default=None, validate_default=True)
    """The grid (万米单元网格), for a ticket that knows only its grid. The report then sits at the
    grid's representative point, in no zone. A grid not in the map is outside_map."""
    address: Address | None = None
    """Free-text address, e.g. 东大街 12 号 (at most 512 characters)."""
    description: Text | None = None
    """Free text (at most 4,000 characters)."""
    photos: Photos | None = None
    """Photo URLs, at most 16."""

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
    """Unique per action: a resend with the same id is a duplicate, ignored, not rejected."""
    alert_id: AlertId
    """The alert acted on: a- + grid id + - + 20 lowercase hex digits, as in city.alerts. Also
    the record's key."""
    action: FeedbackAction
    """acknowledge (受理), dispatch (派遣), resolve (处置), verify (核查结案), reject (作废), reopen
    (返工) or defer (缓办). Which applies in which status: docs/contracts.md section 4.2."""
    actor: Id
    """Who acted, e.g. duty-officer-7; copied into the transition message."""
    at: Timestamp
    """When the person acted, on the clock of the system that applies it."""
    note: Text | None = None
    """e.g. 已派单 (at most 4,000 characters); copied into the transition message."""
    assignee: Id | None = None
    """With dispatch: the team or person assigned. Ignored with other actions."""
    photos: Photos | None = None
    """Photo URLs (at most 16), e.g. of the handled site for verification; copied into the
    transition message."""
    until: Timestamp | None = Field(default=None, validate_default=True)
    """With defer, required: when the deferral ends, later than at. Ignored with other
    actions."""

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
