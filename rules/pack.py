"""Rule packs (RULES.md): YAML files compiled into frozen rule objects, checked whole.

Analysts write these files, so every mistake must come back as one line that names the
file, the line, the rule and the key, and says what would be valid; and nothing may pass
silently (an unknown key is an error, not an ignored typo). Shape and types are checked
by pydantic models of the YAML; what spans several keys (one operator per rule, keys
that belong to another source, level numbering) is checked by the compiler below, which
then builds the engine's plain dataclasses. Line numbers come from PyYAML's node marks.

Example::

    rules = load_rules(["rules/packs/default"])
    warnings = check_against_map(rules, CityMap.load("rules/demo/jianyang.geojson"))
    warnings += check_vocabulary(rules)       # labels and categories no source sends
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from models.vocabulary import CAMERA_LABELS, SENSOR_CATEGORIES
from rules.citymap import CityMap
from rules.durations import Span, format_duration, parse_distance, parse_duration, parse_span
from rules.schedule import DAY_MS, CityCalendar, Schedule, ScheduleError
from rules.worktime import day_length_ms

DEFAULT_REORDER_WINDOW_MS = 5_000
DEFAULT_ALLOWED_LATENESS_MS = 60_000
DEFAULT_SUBJECT_CAP = 10_000
"""Unregistered subjects (camera tracks) kept per grid and rule set unless a pack says more."""
MAX_DURATION_MS = 3650 * 86_400_000
"""The longest duration a pack may write: 3650d, ten years.

The engine adds a rule's durations to event times (an escalation at ``opened_at + after``, a
deadline, a window's end, sometimes two durations at once) and renders the sums as RFC 3339
timestamps; ``100000000d`` (some 274,000 years) carries any time past ``datetime``'s year 9999:
as a deadline, the first alert that opens crashes the worker with OverflowError, long after
the pack was accepted. Ten years is far beyond any city rule (the longest windows are hotspot
weeks, alerts are kept 30 days), and lets the sums overflow only for input times within
decades of year 9999, which the edge's timestamp bounds are there to refuse.
"""
#: ``1wd`` with ASSESSMENT.md's default working hours (7 h), for checks made without a map.
DEFAULT_WORK_DAY_MS = day_length_ms(CityCalendar())
SEVERITIES = ("minor", "major", "critical")
SOURCES = ("camera", "sensor", "report")
REPORT_SOURCES = ("inspector", "hotline", "app", "supervisor")
UNLESS_STATUSES = ("acknowledged", "dispatched", "resolved", "closed")
OPERATORS = ("persist", "count", "holds", "silent")
PACK_SETTINGS = (
    "reorder_window", "allowed_lateness", "subject_cap", "labels", "categories", "case_codes",
)
RULE_ID = re.compile(r"^[A-Za-z0-9._-]+$")
ZONE_KIND = re.compile(r"^[a-z_]+$")
CATEGORY = re.compile(r"^[a-z0-9_]+$")
#: A 事部件 code as dispatch systems file it: "05-04", "0102", "SC-05-11"; the ledger keeps 50.
CASE_CODE = re.compile(r"^[A-Za-z0-9._/-]{1,32}$")
MATCH_KEYS = {
    "camera": ("labels", "min_confidence"),
    "report": ("categories", "sources"),
    "sensor": ("kinds", "states", "value_above", "value_below"),
}

Path_ = tuple[str | int, ...]


# -- errors -------------------------------------------------------------------------------



DEFAULT_PACK = Path(__file__).resolve().parent / "packs" / "default"
"""The default rule pack shipped with cityorder."""

class PackError(ValueError):
    """A rule pack that cannot be loaded.

    ``str()`` is ``FILE:LINE: rule RULE_ID: KEY: what is wrong; what would be valid``,
    leaving out the parts that are unknown.
    """

    def __init__(
        self,
        file: str,
        message: str,
        *,
        line: int | None = None,
        rule_id: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.rule_id = rule_id
        self.key = key
        self.reason = message
        where = file if line is None else f"{file}:{line}"
        parts = [where]
        if rule_id is not None:
            parts.append(f"rule {rule_id}")
        if key:
            parts.append(key)
        super().__init__(": ".join([*parts, message]))


# -- the compiled rules, as the engine reads them -------------------------------------------


@dataclass(frozen=True)
class Level:
    """An escalation level: due ``after`` (natural or working time) from ``opened_at`` unless
    the status got that far."""

    level: int
    after: Span
    unless: str | None
    notify: tuple[str, ...]


@dataclass(frozen=True)
class Hotspot:
    """Open at level 1 + ``raise_by`` after ``count`` alerts of a category in a grid."""

    count: int
    within_ms: int
    raise_by: int


@dataclass(frozen=True)
class Policy:
    """Escalation levels, deadline (处置时限) and hotspot handling shared by rules."""

    id: str
    levels: tuple[Level, ...]
    deadline: Span | None
    on_reopen: str
    hotspot: Hotspot | None


@dataclass(frozen=True)
class Match:
    """What an observation must be; None means the rule does not constrain that field."""

    labels: frozenset[str] | None = None
    min_confidence: float | None = None
    categories: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    states: frozenset[str] | None = None
    value_above: float | None = None
    value_below: float | None = None


@dataclass(frozen=True)
class Condition:
    """A ``holds`` trigger or clear: a state in ``states``, or a value strictly past a bound."""

    states: frozenset[str] | None
    value_above: float | None
    value_below: float | None


@dataclass(frozen=True)
class Persist:
    duration_ms: int
    gap_ms: int


@dataclass(frozen=True)
class Count:
    n: int
    within_ms: int
    by: str


@dataclass(frozen=True)
class Holds:
    duration_ms: int
    trigger: Condition
    clear: Condition


@dataclass(frozen=True)
class Silent:
    duration_ms: int


@dataclass(frozen=True)
class Rule:
    """One compiled rule; ``file`` and ``line`` point back at its YAML for messages."""

    id: str
    category: str
    case_code: str | None
    severity: str
    description: str | None
    source: str
    match: Match
    inside: tuple[str, ...]
    outside: tuple[str, ...]
    permitted: tuple[str, ...]
    schedule: Schedule | None
    key_periods: tuple[Schedule, ...]
    operator: Persist | Count | Holds | Silent
    cooldown_ms: int
    merge_radius_m: float
    policy: Policy
    #: The 处置时限 in force: the rule's own ``deadline``, else its policy's.
    deadline: Span | None
    file: str
    line: int


@dataclass(frozen=True)
class RuleSet:
    """Every loaded pack together: rules sorted by id, engine-wide settings.

    ``categories`` are the report categories the packs name (rules' categories and match
    categories, and the declared ``labels`` and ``categories``), which ingest accepts beside
    the contract's. ``labels`` and ``declared_categories`` are the city's own words the packs
    declare, so ``check_vocabulary`` does not take them for typos. ``subject_cap`` bounds the
    unregistered subjects the engine keeps per grid.
    """

    rules: tuple[Rule, ...]
    reorder_window_ms: int = DEFAULT_REORDER_WINDOW_MS
    allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS
    categories: frozenset[str] = frozenset()
    subject_cap: int = DEFAULT_SUBJECT_CAP
    labels: frozenset[str] = frozenset()
    declared_categories: frozenset[str] = frozenset()


# -- pydantic models of the YAML ------------------------------------------------------------


def _duration(raw: object) -> int:
    ms = parse_duration(raw)
    if ms > MAX_DURATION_MS:
        raise ValueError(f"{raw!r} is too long: a duration in a pack is at most "
                         f"{format_duration(MAX_DURATION_MS)} (ten years)")
    return ms


def _span(raw: object) -> Span:
    span = parse_span(raw)
    longest = span.ms(DAY_MS) if span.unit == "wd" else span.ms(0)
    if longest > MAX_DURATION_MS:
        raise ValueError(f"{raw!r} is too long: a duration in a pack is at most "
                         f"{format_duration(MAX_DURATION_MS)} (ten years)")
    return span


def _distance(raw: object) -> float:
    return parse_distance(raw)


def _word(raw: str) -> str:
    if not raw.strip():
        raise ValueError("empty name: write a word such as grid_inspector")
    return raw


def _zone_kind(raw: str) -> str:
    if not ZONE_KIND.match(raw):
        raise ValueError(
            f"{raw!r} is not a zone kind: write lowercase letters and _, such as main_road"
        )
    return raw


def _rule_id(raw: str) -> str:
    if not RULE_ID.match(raw):
        raise ValueError(
            f"{raw!r} is not a rule id: use letters, digits, '.', '_' and '-', such as "
            "street-vending.main-road"
        )
    return raw


def _category(raw: str) -> str:
    if not CATEGORY.match(raw):
        raise ValueError(
            f"{raw!r} is not a category: write lowercase letters, digits and _, such as "
            "street_vendor"
        )
    return raw


def _case_code(raw: str) -> str:
    if not CASE_CODE.match(raw):
        raise ValueError(
            f"{raw!r} is not a case code: write up to 32 letters, digits, '.', '-', '_' or '/', "
            'such as "05-04" (quote it, or YAML may read it as a number)'
        )
    return raw


def _policy_name(raw: str) -> str:
    if not RULE_ID.match(raw):
        raise ValueError(
            f"{raw!r} is not a policy name: use letters, digits, '.', '_' and '-'"
        )
    return raw


Duration = Annotated[int, BeforeValidator(_duration)]
#: Where working time is allowed too (ASSESSMENT.md): a deadline and a level's ``after``.
SpanField = Annotated[Span, BeforeValidator(_span)]
Distance = Annotated[float, BeforeValidator(_distance)]
Word = Annotated[str, AfterValidator(_word)]
CaseCode = Annotated[str, AfterValidator(_case_code)]
ZoneKind = Annotated[str, AfterValidator(_zone_kind)]


class _Model(BaseModel):
    # strict: "0.5" is not a number and 1 is not a string, as in the input contracts.
    model_config = ConfigDict(extra="forbid", strict=True)


class _LevelModel(_Model):
    level: int
    after: SpanField
    unless: Literal["acknowledged", "dispatched", "resolved", "closed"] | None = None
    notify: list[Word]


class _HotspotModel(_Model):
    count: int = Field(ge=1)
    within: Duration
    raise_: int = Field(1, alias="raise", ge=1)


class _PolicyModel(_Model):
    levels: list[_LevelModel] = Field(min_length=1)
    deadline: SpanField | None = None
    on_reopen: Literal["continue", "restart"] = "continue"
    hotspot: _HotspotModel | None = None


class _MatchModel(_Model):
    labels: list[Word] | None = Field(None, min_length=1)
    min_confidence: float | None = Field(None, ge=0, le=1)
    categories: list[Word] | None = Field(None, min_length=1)
    sources: list[Literal["inspector", "hotline", "app", "supervisor"]] | None = Field(
        None, min_length=1
    )
    kinds: list[Word] | None = Field(None, min_length=1)
    states: list[Word] | None = Field(None, min_length=1)
    value_above: float | None = None
    value_below: float | None = None


class _PersistModel(_Model):
    duration: Duration
    gap: Duration


class _CountModel(_Model):
    n: int = Field(ge=1)
    within: Duration
    by: Literal["grid", "zone", "subject"] = "grid"


class _HoldsModel(_Model):
    duration: Duration
    trigger: Any  # a list of states or {value_above|value_below: n}: read by _condition
    clear: Any


class _SilentModel(_Model):
    duration: Duration


class _RuleModel(_Model):
    id: Annotated[str, AfterValidator(_rule_id)]
    category: Annotated[str, AfterValidator(_category)]
    case_code: CaseCode | None = None
    severity: Literal["minor", "major", "critical"]
    description: str | None = None
    source: Literal["camera", "sensor", "report"]
    match: _MatchModel = Field(default_factory=_MatchModel)
    inside: list[ZoneKind] = Field(default_factory=list)
    outside: list[ZoneKind] = Field(default_factory=list)
    permitted: list[ZoneKind] = Field(default_factory=list)
    schedule: Any = None  # read by Schedule.parse, whose errors name hours or days
    key_periods: list[Any] = Field(default_factory=list)
    persist: _PersistModel | None = None
    count: _CountModel | None = None
    holds: _HoldsModel | None = None
    silent: _SilentModel | None = None
    cooldown: Duration = 0
    merge_radius: Distance = 0.0
    policy: str
    deadline: SpanField | None = None   # overrides the policy's: standards give one per category


def _empty_as(value: object) -> BeforeValidator:
    """An empty section (``rules:`` with nothing under it) is an empty list, not an error."""
    return BeforeValidator(lambda raw: value if raw is None else raw)


class _PackFileModel(_Model):
    reorder_window: Duration | None = None
    allowed_lateness: Duration | None = None
    subject_cap: int | None = Field(None, ge=1)
    labels: list[Word] | None = Field(None, min_length=1)
    categories: list[Word] | None = Field(None, min_length=1)
    # The city's own code list: rule id or category -> code, over the rules' case_code.
    case_codes: dict[str, CaseCode] | None = Field(None, min_length=1)
    policies: Annotated[
        dict[Annotated[str, AfterValidator(_policy_name)], _PolicyModel], _empty_as({})
    ] = Field(default_factory=dict)
    rules: Annotated[list[_RuleModel], _empty_as([])] = Field(default_factory=list)


_MISSING_HINTS = {
    "id": "give the rule a unique id such as street-vending.main-road",
    "category": "name what the alert is about, such as street_vendor",
    "severity": "write minor, major or critical",
    "source": "write camera, sensor or report",
    "policy": "name one of this pack's policies",
    "levels": "list levels such as - {level: 1, after: 0s, notify: [grid_inspector]}",
    "notify": "list the roles to notify, such as [grid_inspector]",
}
_TYPE_WORDS = {
    "string_type": "a string (quote it if YAML reads it as a number or a date)",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list such as [a, b]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}


# -- reading YAML with line numbers ----------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1 would read on/off/yes/no as booleans; streetlight states must stay words."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class _Doc:
    """One YAML file: its data and the line of every key and list item in it."""

    file: str
    data: object
    lines: dict[Path_, int] = field(default_factory=dict)
    # The first key problem met while building (path, line, message): reported once the
    # whole file is built, so the message can name the rule it is in.
    problem: tuple[Path_, int, str] | None = None

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of the nearest enclosing key that exists."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    def note(self, path: Path_, line: int, message: str) -> None:
        if self.problem is None:
            self.problem = (path, line, message)


def _read_yaml(path: Path) -> _Doc:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackError(file, f"cannot read the file: {exc}") from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc = _Doc(file, None, {(): 1})
        if node is not None:
            doc.data = _build(loader, node, (), doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PackError(file, f"not valid YAML: {exc.problem or exc}", line=line) from exc
    finally:
        loader.dispose()
    if doc.problem is not None:
        where, line, message = doc.problem
        raise _error_at(doc, where, message, line)
    return doc


def _build(loader: _Loader, node: yaml.Node, path: Path_, doc: _Doc) -> object:
    """Construct plain data from a node while recording where each key starts."""
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(loader, node, path, doc)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_build(loader, item, (*path, i), doc))
        return items
    return loader.construct_object(node)


def _build_mapping(
    loader: _Loader, node: yaml.MappingNode, path: Path_, doc: _Doc
) -> dict[str, object]:
    """A mapping; a key written twice is an error, a key merged in (``<<``) may be overridden."""
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            doc.note(path, line, f"key {key!r} is not a name: write keys as words")
        elif key in seen:
            doc.note((*path, key), line, f"{key!r} appears twice in this mapping: keep one")
        else:
            seen.add(key)
    loader.flatten_mapping(node)
    out: dict[str, object] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str):
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, (*path, key), doc)
    return out


# -- turning pydantic errors into PackErrors --------------------------------------------------


def _validate(doc: _Doc) -> _PackFileModel:
    data = {} if doc.data is None else doc.data
    try:
        return _PackFileModel.model_validate(data)
    except ValidationError as exc:
        # An unknown key first: a typo ("polcy") also causes the "missing policy" error, and
        # naming the typo is what tells the analyst what to fix.
        errors = [(e["type"] != "extra_forbidden", _from_pydantic(doc, e)) for e in exc.errors()]
        raise min(errors, key=lambda fe: (fe[0], fe[1].line or 0))[1] from None


def _from_pydantic(doc: _Doc, err: ErrorDetails) -> PackError:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    return _error_at(doc, loc, _describe(err))


def _error_at(doc: _Doc, path: Path_, message: str, line: int | None = None) -> PackError:
    """A PackError for ``path`` in ``doc``: rule id and rule-relative key when in a rule."""
    line = doc.line(path) if line is None else line
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rule_id = _raw_rule_id(doc, path[1])
        return PackError(doc.file, message, line=line, rule_id=rule_id,
                         key=_key_text(path[2:]) or None)
    return PackError(doc.file, message, line=line, key=_key_text(path) or None)


def _raw_rule_id(doc: _Doc, index: int) -> str:
    try:
        rule_id = doc.data["rules"][index]["id"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        rule_id = None
    return rule_id if isinstance(rule_id, str) else f"#{index + 1}"


def _key_text(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(err: ErrorDetails) -> str:
    kind, loc, value = err["type"], err["loc"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        return f"unknown key{_did_you_mean(str(loc[-1]), valid)} (valid keys: {', '.join(valid)})"
    if kind == "missing":
        hint = _MISSING_HINTS.get(str(loc[-1]), "add it")
        return f"required key is missing: {hint}"
    if kind == "literal_error":
        return f"{value!r} is not valid: write one of {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {value!r}"
    if kind == "too_short":
        return "must not be empty: list at least one item, or leave the key out"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"{value!r} is out of range: {err['msg'].replace('Input should be ', 'must be ')}"
    return f"{err['msg']} (got {value!r})"


def _valid_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts, in declaration order (by their YAML names)."""
    tp: Any = _PackFileModel
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or name: f for name, f in tp.model_fields.items()}
            tp = fields[str(part)].annotation if str(part) in fields else None
        elif get_origin(tp) in (list, dict):
            tp = get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that has the keys."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _did_you_mean(word: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- compiling: the checks that span keys --------------------------------------------------


@dataclass
class _Where:
    """Where a compiled object came from, so its checks can point at a key."""

    doc: _Doc
    base: Path_

    def error(self, rel: Path_, message: str) -> PackError:
        return _error_at(self.doc, (*self.base, *rel), message)


def _compile_policy(name: str, m: _PolicyModel, where: _Where) -> Policy:
    levels = tuple(_compile_level(i, lv, m.levels, where) for i, lv in enumerate(m.levels))
    _check_deadline(m.deadline, where)
    hotspot = None
    if m.hotspot is not None:
        hotspot = Hotspot(m.hotspot.count, m.hotspot.within, m.hotspot.raise_)
        if hotspot.within_ms <= 0:
            raise where.error(("hotspot", "within"), "must be longer than 0s, such as 7d")
        if 1 + hotspot.raise_by > len(levels):
            raise where.error(
                ("hotspot", "raise"),
                f"raise {hotspot.raise_by} opens hotspots at level {1 + hotspot.raise_by}, "
                f"which this policy does not define (it has levels 1..{len(levels)}): add "
                "that level or lower raise",
            )
    return Policy(name, levels, m.deadline, m.on_reopen, hotspot)


def _compile_level(i: int, lv: _LevelModel, all_levels: list[_LevelModel], where: _Where) -> Level:
    if lv.level != i + 1:
        raise where.error(("levels", i, "level"), f"level {lv.level} in position {i + 1}: "
                          f"number the levels 1, 2, 3… in order (expected {i + 1})")
    if i == 0 and lv.after.amount != 0:
        raise where.error(("levels", 0, "after"), "level 1 applies at opening: write after: 0s")
    if i > 1 and lv.after.working != all_levels[1].after.working:
        raise where.error(("levels", i, "after"), f"{lv.after} and level 2's {all_levels[1].after} "
                          "mix natural and working time: write the levels after level 1 in one "
                          "family (s, m, h, d or wh, wd)")
    before = all_levels[i - 1].after if i > 0 else None
    if before is not None and _after_order(lv.after, DEFAULT_WORK_DAY_MS) <= _after_order(
            before, DEFAULT_WORK_DAY_MS):
        raise where.error(("levels", i, "after"), f"{lv.after} is not later than level {i}'s "
                          f"{all_levels[i - 1].after}: after must strictly increase")
    return Level(lv.level, lv.after, lv.unless, tuple(lv.notify))


def _after_order(span: Span, work_day_ms: int) -> int:
    """What "after strictly increases" compares: ms, with a ``wd`` as that many working days'
    hours (ASSESSMENT.md); level 1's ``0s`` is 0 in either family."""
    return span.ms(work_day_ms)


def _check_deadline(deadline: Span | None, where: _Where) -> None:
    if deadline is not None and deadline.amount <= 0:
        raise where.error(("deadline",), f"{deadline} is no deadline: give a positive duration "
                          "such as 2h or 4wh, or leave deadline out for none")


def check_work_day(rules: RuleSet, work_day_ms: int) -> list[str]:
    """Levels that mix ``wh`` and ``wd`` stop increasing with the map's working day (the pack
    was checked with the default 7 h one): one line each, naming the policy and the levels."""
    problems = []
    seen: set[str] = set()
    for rule in rules.rules:
        policy = rule.policy
        if policy.id in seen:
            continue
        seen.add(policy.id)
        for prev, lv in pairwise(policy.levels[1:]):
            if _after_order(lv.after, work_day_ms) <= _after_order(prev.after, work_day_ms):
                problems.append(
                    f"policy {policy.id}: level {lv.level}'s after {lv.after} is not later than "
                    f"level {prev.level}'s {prev.after} with the map's working day of "
                    f"{format_duration(work_day_ms)}: after must strictly increase")
    return problems


def _compile_rule(m: _RuleModel, where: _Where, policies: dict[str, Policy]) -> Rule:
    operator = _compile_operator(m, where)
    match = _compile_match(m, where)
    _check_zones(m, where)
    if m.policy not in policies:
        valid = ", ".join(sorted(policies)) or "none: define policies in this pack"
        raise where.error(("policy",), f"{m.policy!r} is not a policy of this pack"
                          f"{_did_you_mean(m.policy, sorted(policies))} (its policies: {valid})")
    _check_deadline(m.deadline, where)
    line = where.doc.line(where.base)
    assert line is not None  # every list item has its line recorded
    return Rule(
        id=m.id, category=m.category, case_code=m.case_code, severity=m.severity,
        description=m.description, source=m.source, match=match, inside=tuple(m.inside),
        outside=tuple(m.outside), permitted=tuple(m.permitted),
        schedule=None if m.schedule is None else _schedule(m.schedule, ("schedule",), where),
        key_periods=tuple(
            _schedule(raw, ("key_periods", i), where) for i, raw in enumerate(m.key_periods)
        ),
        operator=operator, cooldown_ms=m.cooldown, merge_radius_m=m.merge_radius,
        policy=policies[m.policy],
        deadline=m.deadline if m.deadline is not None else policies[m.policy].deadline,
        file=where.doc.file, line=line,
    )


def _compile_operator(m: _RuleModel, where: _Where) -> Persist | Count | Holds | Silent:
    given = [op for op in OPERATORS if getattr(m, op) is not None]
    if not given:
        raise where.error((), "no operator: give exactly one of persist, count, holds, silent")
    if len(given) > 1:
        raise where.error((given[1],), f"a rule has exactly one of persist, count, holds, "
                          f"silent; this one also has {given[0]}: keep one")
    if m.persist is not None:
        return Persist(m.persist.duration, m.persist.gap)
    if m.count is not None:
        if m.count.within <= 0:
            raise where.error(("count", "within"), "must be longer than 0s, such as 1h")
        if m.count.by == "zone" and not m.inside:
            raise where.error(("count", "by"), "by: zone counts per zone the rule requires: "
                              "add inside (zone kinds), or count by grid or subject")
        return Count(m.count.n, m.count.within, m.count.by)
    if m.holds is not None:
        return _compile_holds(m, m.holds, where)
    assert m.silent is not None
    if m.source == "report":
        raise where.error(("silent",), "silent watches a device's liveness: use it with "
                          "source camera or sensor")
    if m.silent.duration <= 0:
        raise where.error(("silent", "duration"), "must be longer than 0s, such as 5m")
    return Silent(m.silent.duration)


def _compile_holds(m: _RuleModel, holds: _HoldsModel, where: _Where) -> Holds:
    if m.source != "sensor":
        raise where.error(("holds",), "holds follows a sensor's state or value: use it with "
                          "source sensor (persist or count for cameras and reports)")
    for key in ("states", "value_above", "value_below"):
        if key in m.match.model_fields_set:
            raise where.error(("match", key), "with holds, match selects sensors by kinds; "
                              "put states and values in holds.trigger and holds.clear")
    trigger = _condition(holds.trigger, ("holds", "trigger"), where)
    clear = _condition(holds.clear, ("holds", "clear"), where)
    both = (trigger.states or frozenset()) & (clear.states or frozenset())
    if both:
        raise where.error(("holds", "clear"), f"{', '.join(sorted(both))} both triggers and "
                          "clears: a state belongs to one of them")
    return Holds(holds.duration, trigger, clear)


_CONDITION_HELP = "write a list of states such as [off, fault], or {value_above: 15} / " \
    "{value_below: 10}"


def _condition(raw: object, rel: Path_, where: _Where) -> Condition:
    if isinstance(raw, list):
        if not raw or not all(isinstance(s, str) and s.strip() for s in raw):
            raise where.error(rel, f"expected states, got {raw!r}: {_CONDITION_HELP}")
        return Condition(frozenset(raw), None, None)
    if isinstance(raw, dict) and raw:
        for key, value in raw.items():
            if key not in ("value_above", "value_below"):
                hint = _did_you_mean(key, ["value_above", "value_below"])
                raise where.error((*rel, key), f"unknown key{hint}: {_CONDITION_HELP}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise where.error((*rel, key), f"expected a number, got {value!r}")
        above, below = (None if raw.get(k) is None else float(raw[k])
                        for k in ("value_above", "value_below"))
        _check_band(above, below, (*rel, "value_below"), where)
        return Condition(None, above, below)
    raise where.error(rel, f"expected a condition, got {raw!r}: {_CONDITION_HELP}")


def _check_band(above: float | None, below: float | None, rel: Path_, where: _Where) -> None:
    if above is not None and below is not None and above >= below:
        raise where.error(rel, f"no value is above {above:g} and below {below:g}: value_below must "
                          "be greater than value_above")


def _compile_match(m: _RuleModel, where: _Where) -> Match:
    mm = m.match
    valid = MATCH_KEYS[m.source]
    for key in sorted(mm.model_fields_set, key=list(_MatchModel.model_fields).index):
        if key not in valid:
            owner = next(src for src, keys in MATCH_KEYS.items() if key in keys)
            raise where.error(("match", key), f"{key} applies to {owner} rules; a {m.source} "
                              f"rule matches on {', '.join(valid)}")
    _check_band(mm.value_above, mm.value_below, ("match", "value_below"), where)

    def group(items: list[str] | None) -> frozenset[str] | None:
        return None if items is None else frozenset(items)

    return Match(
        labels=group(mm.labels), min_confidence=mm.min_confidence,
        categories=group(mm.categories), sources=group(mm.sources), kinds=group(mm.kinds),
        states=group(mm.states), value_above=mm.value_above, value_below=mm.value_below,
    )


def _check_zones(m: _RuleModel, where: _Where) -> None:
    both = sorted(set(m.inside) & set(m.outside))
    if both:
        raise where.error(("outside",), f"{', '.join(both)} is both inside and outside: the "
                          "rule could never match there; keep it in one list")


def _schedule(raw: object, rel: Path_, where: _Where) -> Schedule:
    try:
        return Schedule.parse(raw)
    except ScheduleError as exc:
        path = (*rel, exc.key) if exc.key else rel
        raise where.error(path, exc.reason) from exc


# -- packs ---------------------------------------------------------------------------------


@dataclass
class _Pack:
    """One pack as read: settings, policies and rules, each with where it was written."""

    settings: dict[str, tuple[Any, _Doc]] = field(default_factory=dict)
    policies: dict[str, tuple[_PolicyModel, _Doc]] = field(default_factory=dict)
    rules: list[tuple[_RuleModel, _Doc, int]] = field(default_factory=list)


def load_rules(paths: Sequence[str | Path]) -> RuleSet:
    """Load packs (each a directory of ``*.yaml`` files, or one file) into one rule set.

    Rule ids are unique across packs; a rule's policy comes from its own pack. The engine-
    wide ``reorder_window``, ``allowed_lateness`` and ``subject_cap`` are the largest any pack
    sets: each pack's rules need at least what it asks for, and one engine serves them all
    (for the cap, a smaller one would evict subjects that the pack asking more relies on).
    Declared ``labels`` and ``categories`` are the union of every pack's: they describe the
    city's detectors and reporting systems, not one pack.
    """
    compiled: dict[str, Rule] = {}
    settings: dict[str, list[Any]] = {key: [] for key in PACK_SETTINGS}
    codes: dict[str, tuple[str, _Doc]] = {}
    for path in paths:
        pack = _read_pack(Path(path))
        for key, (value, _) in pack.settings.items():
            settings[key].append(value)
        if "case_codes" in pack.settings:
            _gather_codes(codes, *pack.settings["case_codes"])
        for rule in _compile_pack(pack):
            first = compiled.get(rule.id)
            if first is not None:
                raise PackError(rule.file, f"rule id already used at {first.file}:{first.line}: "
                                "rule ids are unique across all packs", line=rule.line,
                                rule_id=rule.id, key="id")
            compiled[rule.id] = rule
    rules = _with_case_codes(tuple(sorted(compiled.values(), key=lambda r: r.id)), codes)
    labels = frozenset(word for words in settings["labels"] for word in words)
    declared = frozenset(word for words in settings["categories"] for word in words)
    categories = {r.category for r in rules} | labels | declared
    for r in rules:
        categories |= r.match.categories or frozenset()
    return RuleSet(
        rules=rules,
        reorder_window_ms=max(settings["reorder_window"], default=DEFAULT_REORDER_WINDOW_MS),
        allowed_lateness_ms=max(settings["allowed_lateness"], default=DEFAULT_ALLOWED_LATENESS_MS),
        categories=frozenset(categories),
        subject_cap=max(settings["subject_cap"], default=DEFAULT_SUBJECT_CAP),
        labels=labels,
        declared_categories=declared,
    )


def _gather_codes(codes: dict[str, tuple[str, _Doc]], value: dict[str, str], doc: _Doc) -> None:
    for name, code in value.items():
        earlier = codes.get(name)
        if earlier is not None and earlier[0] != code:
            raise _error_at(doc, ("case_codes", name), f"{name} already has the code "
                            f"{earlier[0]!r} in {earlier[1].file}: give it one code")
        codes[name] = (code, doc)


def _with_case_codes(rules: tuple[Rule, ...], codes: dict[str, tuple[str, _Doc]]
                     ) -> tuple[Rule, ...]:
    """The rules with a city's own ``case_codes`` in force: a rule's id, else its category.

    Why a pack-level table and not an edit of every rule: a city keeps the shipped pack as it
    is and loads one small pack of its own codes beside it, so an upgrade of the shipped pack
    does not undo them. A key that names no loaded rule or category is an error, since a typo
    would otherwise leave the standard's code on every case without a word.
    """
    ids = {r.id for r in rules}
    categories = {r.category for r in rules}
    for name, (_, doc) in codes.items():
        if name not in ids and name not in categories:
            hint = _did_you_mean(name, sorted(ids | categories))
            raise _error_at(doc, ("case_codes", name), f"{name!r} is neither a loaded rule's id "
                            f"nor a loaded rule's category{hint or ': check the spelling'}")
    out: list[Rule] = []
    for r in rules:
        found = codes.get(r.id) or codes.get(r.category)
        out.append(r if found is None else replace(r, case_code=found[0]))
    return tuple(out)


def _pack_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise PackError(str(path), "no *.yaml files in this directory: a pack is a directory "
                            "of YAML files, or one YAML file")
        return files
    if path.is_file():
        return [path]
    raise PackError(str(path), "no such file or directory: give a pack directory or a YAML file")


def _read_pack(path: Path) -> _Pack:
    pack = _Pack()
    for file in _pack_files(path):
        doc = _read_yaml(file)
        if doc.data is None or doc.data == {}:
            # An empty file is most often one whose content was lost or never saved; loading
            # it as "no rules" would silently drop a whole file of a pack.
            raise PackError(doc.file, "the file is empty (or only comments): a rule file holds "
                            "rules, policies or pack-level keys such as reorder_window; write "
                            "them, or delete the file")
        model = _validate(doc)
        for key in PACK_SETTINGS:
            value = getattr(model, key)
            if value is None:
                continue
            if key in pack.settings:
                earlier = pack.settings[key][1]
                raise _error_at(doc, (key,), f"already set in {earlier.file}:"
                                f"{earlier.line((key,))}: set it once per pack")
            pack.settings[key] = (value, doc)
        for name, policy in model.policies.items():
            if name in pack.policies:
                earlier = pack.policies[name][1]
                raise _error_at(doc, ("policies", name), f"policy already defined in "
                                f"{earlier.file}:{earlier.line(('policies', name))}: give each "
                                "policy of a pack its own name")
            pack.policies[name] = (policy, doc)
        pack.rules.extend((rule, doc, i) for i, rule in enumerate(model.rules))
    return pack


def _compile_pack(pack: _Pack) -> list[Rule]:
    policies = {
        name: _compile_policy(name, m, _Where(doc, ("policies", name)))
        for name, (m, doc) in pack.policies.items()
    }
    return [_compile_rule(m, _Where(doc, ("rules", i)), policies) for m, doc, i in pack.rules]


# -- rules against a map -----------------------------------------------------------------------


def check_against_map(rules: RuleSet, city: CityMap) -> list[str]:
    """Warnings for names a rule uses that the map never provides.

    Not errors: a pack is shared by cities and a kind may simply not exist in this one;
    but a rule that can never match there deserves a line in ``rules check``.
    """
    zone_kinds = ", ".join(sorted(city.zone_kinds)) or "none"
    sensor_kinds = {d.kind for d in city.sensors.values() if d.kind}
    warnings: list[str] = []
    for rule in rules.rules:
        where = f"{rule.file}:{rule.line}: rule {rule.id}"
        for key in ("inside", "outside", "permitted"):
            for kind in getattr(rule, key):
                if kind not in city.zone_kinds:
                    warnings.append(f"{where}: {key}: no zone of the map {city.name!r} has kind "
                                    f"{kind!r}; its zone kinds: {zone_kinds}")
        if rule.source == "sensor":
            for kind in sorted(rule.match.kinds or ()):
                if kind not in sensor_kinds:
                    known = ", ".join(sorted(sensor_kinds)) or "none"
                    warnings.append(f"{where}: match.kinds: no sensor of the map {city.name!r} "
                                    f"has kind {kind!r}; its sensor kinds: {known}")
    return warnings


def check_vocabulary(rules: RuleSet) -> list[str]:
    """Warnings for camera labels and report categories that no known source sends.

    A rule whose ``match.labels`` says ``street_vendorr`` loads and never fires: the typo is
    valid YAML and a valid word. What detectors and reporting systems send is a closed list
    (CONTRACTS.md: the camera labels; for reports also the sensor-derived categories,
    ``other`` and every rule's own category), so a word outside it is most likely a typo and
    is named with the nearest known word. A city with detectors or a hotline of its own
    declares its extra words with the pack-level ``labels`` and ``categories``. Warnings, not
    errors, because a city's own word is legitimate and should not stop a worker.
    """
    labels = CAMERA_LABELS | rules.labels
    categories = (CAMERA_LABELS | SENSOR_CATEGORIES | {"other"} | rules.labels
                  | rules.declared_categories | {r.category for r in rules.rules})
    warnings: list[str] = []
    for rule in rules.rules:
        where = f"{rule.file}:{rule.line}: rule {rule.id}"
        if rule.source == "camera":
            for label in sorted((rule.match.labels or frozenset()) - labels):
                warnings.append(
                    f"{where}: match.labels: {label!r} is not a camera label any detector sends"
                    f"{_nearest(label, labels)} If the city's detectors send it, declare it "
                    f"with the pack-level labels: [{label}]")
        if rule.source == "report":
            for category in sorted((rule.match.categories or frozenset()) - categories):
                warnings.append(
                    f"{where}: match.categories: {category!r} is not a report category any "
                    f"source sends{_nearest(category, categories)} If the city's reporting "
                    f"systems send it, declare it with the pack-level categories: [{category}]")
    return warnings


def _nearest(word: str, known: frozenset[str]) -> str:
    """``; did you mean 'x'?`` when a known word is close, else every known word."""
    return _did_you_mean(word, sorted(known)) or f" (known: {', '.join(sorted(known))})."
