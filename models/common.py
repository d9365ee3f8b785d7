"""Constrained building blocks shared by every topic's model.

The contract states its bounds once (ids, grid ids, coordinates, text lengths); each is one
named type here so that an input field and an output field can never disagree about it. All
constraints are pydantic-core constraints, checked in Rust, so they cost nothing in Python.
"""

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

GRID_ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
ALERT_ID_PATTERN: Final = r"^a-[A-Za-z0-9._-]{1,64}-[0-9a-f]{20}$"

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""``event_id``, ``camera_id``, ``sensor_id``, track, reporter, actor and assignee ids."""

GridId = Annotated[str, StringConstraints(pattern=GRID_ID_PATTERN)]
AlertId = Annotated[str, StringConstraints(pattern=ALERT_ID_PATTERN)]

Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A confidence or a bbox coordinate: a share of something, 0..1 inclusive."""

Address = Annotated[str, StringConstraints(max_length=512)]
Text = Annotated[str, StringConstraints(max_length=4000)]
"""A free-text ``description`` or ``note``."""

Photos = Annotated[tuple[str, ...], Field(max_length=16)]
"""Photo URLs; at most 16 so one report cannot bloat every alert that cites it."""

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]

STRICT_FROZEN: Final = ConfigDict(strict=True, frozen=True, extra="ignore", use_attribute_docstrings=True)
"""Every topic model's config: no lax coercion, immutable once validated, extras ignored. A
field's docstring is its description in the published JSON Schema (``schemas/``), written for
the integrators who read it: units, coordinate system, time format, what each value means."""


class Location(BaseModel):
    """A WGS 84 point. Out of range or non-finite is ``bad_coordinate``, never clamped."""

    model_config = STRICT_FROZEN

    lat: Latitude
    """Latitude in decimal degrees, WGS 84 (GPS; not GCJ-02 or BD-09), -90 to 90."""
    lon: Longitude
    """Longitude in decimal degrees, WGS 84, -180 to 180."""
