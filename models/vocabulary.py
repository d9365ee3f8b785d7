"""The closed word lists of CONTRACTS.md, and its topic names, in one place.

Rules, metrics and the models all check membership against these sets, so a label added to the
contract is added here once. They are frozensets because the hot path only ever asks ``in``.
"""

from typing import Final, Literal, get_args

#: The contract's topics (unprefixed: a deployment may prefix them, streams.settings).
CAMERA_TOPIC: Final = "city.events.camera"
SENSOR_TOPIC: Final = "city.events.sensor"
REPORT_TOPIC: Final = "city.events.report"
FEEDBACK_TOPIC: Final = "city.alerts.feedback"
ALERTS_TOPIC: Final = "city.alerts"
DEADLETTER_TOPIC: Final = "city.alerts.deadletter"
#: The input topics, in the contract's source order.
INPUT_TOPICS: Final = (CAMERA_TOPIC, SENSOR_TOPIC, REPORT_TOPIC, FEEDBACK_TOPIC)
#: The output topics.
OUTPUT_TOPICS: Final = (ALERTS_TOPIC, DEADLETTER_TOPIC)

CAMERA_LABELS: Final = frozenset(
    {
        "street_vendor",
        "vendor_stall",
        "outdoor_business",
        "parked_car",
        "parked_ebike",
        "heavy_truck",
        "abandoned_vehicle",
        "garbage_pile",
        "debris",
        "illegal_poster",
        "outdoor_bbq",
        "stray_dog",
        "hanging_laundry",
    }
)

SENSOR_STATE_KINDS: Final[dict[str, frozenset[str]]] = {
    "parking_occupancy": frozenset({"occupied", "free"}),
    "manhole_cover": frozenset({"ok", "tilted", "open"}),
    "streetlight": frozenset({"on", "off", "fault"}),
}

# Inclusive (low, high) bounds of each value kind; None is unbounded.
SENSOR_VALUE_KINDS: Final[dict[str, tuple[float, float | None]]] = {
    "noise": (0, None),
    "bin_fill": (0, 1),
    "water_level": (0, None),
}

SENSOR_CATEGORIES: Final = frozenset(
    {
        "streetlight_out",
        "manhole_open",
        "camera_offline",
        "sensor_offline",
        "noise_nuisance",
        "bin_overflow",
        "waterlogging",
        "parking_overstay",
    }
)

REPORT_SOURCES: Final = frozenset({"inspector", "hotline", "app", "supervisor"})

FEEDBACK_ACTIONS: Final = frozenset(
    {"acknowledge", "dispatch", "resolve", "verify", "reject", "reopen", "defer"}
)

ReasonCode = Literal[
    "bad_encoding",
    "bad_json",
    "too_large",
    "invalid_field",
    "naive_timestamp",
    "bad_coordinate",
    "unregistered_device",
    "outside_map",
    "future_timestamp",
    "bad_timestamp",
    "unknown_alert",
    "unknown_action",
    "illegal_transition",
    "internal_error",
]
REASON_CODES: Final = frozenset(get_args(ReasonCode))

MAX_MESSAGE_BYTES: Final = 1_048_576
"""Input larger than 1 MiB is bad input (``too_large``) before any parsing is spent on it."""
