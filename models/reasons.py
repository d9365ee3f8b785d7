"""Turning a pydantic ``ValidationError`` into the contract's reason code and reason text.

Only the failure path comes here, so clarity beats speed: the hot path never pays for it.
The reason names the field path and the rule broken (``detections[0].confidence: must be at
most 1``) because the dead-letter topic is read by people fixing a producer, not by code.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

# Errors that mean "a number, but not a usable coordinate" when they sit on lat/lon.
_COORDINATE_ERRORS: Final = frozenset({"finite_number", "greater_than_equal", "less_than_equal"})
# Our own error types that are reason codes of their own (models/timestamps.py).
_CODE_OF_TYPE: Final = {
    "naive_timestamp": "naive_timestamp",
    "bad_timestamp": "bad_timestamp",
    "future_timestamp": "future_timestamp",
}

_TEXT_OF_TYPE: Final[dict[str, str]] = {
    "missing": "is required",
    "string_type": "must be a string",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
    "finite_number": "must be a finite number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be greater than {gt}",
    "less_than": "must be less than {lt}",
    "string_too_long": "must be at most {max_length} characters",
    "too_long": "must have at most {max_length} items",
    "too_short": "must have at least {min_length} items",
    "literal_error": "must be one of {expected}",
    "string_pattern_mismatch": "must match {pattern}",
}


def reason_code_of(error: Mapping[str, Any]) -> str:
    """The contract's reason code for one pydantic error (a dict of ``errors()``)."""
    kind: str = error["type"]
    loc: Sequence[int | str] = error["loc"]
    code = _CODE_OF_TYPE.get(kind)
    if code is not None:
        return code
    if kind == "literal_error" and tuple(loc) == ("action",) and isinstance(error["input"], str):
        return "unknown_action"
    if (
        kind in _COORDINATE_ERRORS
        and len(loc) >= 2
        and loc[-1] in ("lat", "lon")
        and loc[-2] == "location"
    ):
        return "bad_coordinate"
    return "invalid_field"


def reason_of(error: Mapping[str, Any]) -> str:
    """``path: rule`` for one pydantic error, e.g. ``observed_at: timestamp has no UTC offset``."""
    kind: str = error["type"]
    loc: Sequence[int | str] = error["loc"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "missing" and loc and isinstance(loc[-1], int):
        # A fixed-length array (bbox) that is too short reports its first absent index.
        return f"{field_path(loc[:-1])}: has too few items"
    if kind == "string_too_short":
        text = "must not be empty" if ctx.get("min_length") == 1 else "is too short"
    elif kind in _TEXT_OF_TYPE:
        try:
            text = _TEXT_OF_TYPE[kind].format(**{k: _plain(v) for k, v in ctx.items()})
        except (KeyError, IndexError, ValueError):
            text = _lower_first(str(error["msg"]))
    else:
        # Our own PydanticCustomError messages are written for this sentence already.
        text = _lower_first(str(error["msg"]))
    path = field_path(loc)
    return f"{path}: {text}" if path else text


def field_path(loc: Sequence[int | str]) -> str:
    """``("detections", 0, "bbox", 2)`` -> ``detections[0].bbox[2]``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


def _plain(value: object) -> object:
    """``1.0`` -> ``1``: bounds read as the contract writes them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
