"""Rule packs: a valid pack compiled exactly, every error located, several packs, the map."""

from pathlib import Path
from textwrap import dedent

import orjson
import pytest

from models.decode import Source
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.durations import Span
from rules.ingest import Ingest
from rules.pack import (
    Condition,
    Count,
    Holds,
    Hotspot,
    Level,
    Match,
    PackError,
    Persist,
    Policy,
    Rule,
    RuleSet,
    Silent,
    check_against_map,
    check_vocabulary,
    load_rules,
)
from rules.schedule import Schedule
from tests.rules.test_citymap import MAP


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# -- a valid pack, compiled exactly ---------------------------------------------------------

POLICIES_YAML = """
reorder_window: 10s
policies:
  standard:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
      - {level: 2, after: 15m, unless: acknowledged, notify: [district_duty]}
    deadline: 2h
    hotspot: {count: 3, within: 7d}
  urgent:
    levels:
      - {level: 1, after: 0s, notify: [district_duty, district_leader]}
    on_reopen: restart
"""

RULES_YAML = """
rules:
  - id: vending.main-road
    category: street_vendor
    case_code: "05-04"
    severity: major
    description: 主干道流动摊贩占道经营
    source: camera
    match:
      labels: [street_vendor, vendor_stall]
      min_confidence: 0.5
    inside: [main_road]
    outside: [school]
    permitted: [vendor_permitted, night_market]
    schedule: {hours: "07:00-22:00"}
    key_periods:
      - {hours: ["07:00-09:00", "17:00-19:00"], days: workdays}
    persist: {duration: 10m, gap: 2m}
    cooldown: 30m
    merge_radius: 15m
    policy: standard

  - id: light.out
    category: streetlight_out
    severity: minor
    source: sensor
    match: {kinds: [streetlight]}
    holds: {duration: 1h, trigger: [off, fault], clear: [on]}
    policy: urgent

  - id: noise.night
    category: noise_nuisance
    severity: minor
    source: sensor
    match: {kinds: [noise]}
    holds: {duration: 0s, trigger: {value_above: 70}, clear: {value_below: 60.5}}
    policy: urgent

  - id: complaints.repeated
    category: repeated_complaints
    severity: major
    source: report
    match: {categories: [garbage_pile, debris], sources: [hotline, app]}
    inside: [residential]
    count: {n: 3, within: 1h, by: zone}
    policy: standard

  - id: cam.offline
    category: camera_offline
    severity: minor
    source: camera
    silent: {duration: 5m}
    policy: urgent
"""

STANDARD = Policy(
    id="standard",
    levels=(
        Level(1, Span(0), None, ("grid_inspector",)),
        Level(2, Span(900_000), "acknowledged", ("district_duty",)),
    ),
    deadline=Span(7_200_000),
    on_reopen="continue",
    hotspot=Hotspot(count=3, within_ms=604_800_000, raise_by=1),
)
URGENT = Policy(
    id="urgent",
    levels=(Level(1, Span(0), None, ("district_duty", "district_leader")),),
    deadline=None,
    on_reopen="restart",
    hotspot=None,
)


@pytest.fixture
def valid_pack(tmp_path: Path) -> Path:
    write(tmp_path / "pack" / "policies.yaml", POLICIES_YAML)
    write(tmp_path / "pack" / "rules.yaml", RULES_YAML)
    return tmp_path / "pack"


def test_valid_pack_compiles_to_the_exact_rules(valid_pack: Path) -> None:
    ruleset = load_rules([valid_pack])
    file = str(valid_pack / "rules.yaml")
    assert [r.id for r in ruleset.rules] == [
        "cam.offline", "complaints.repeated", "light.out", "noise.night", "vending.main-road"]
    by_id = {r.id: r for r in ruleset.rules}
    assert by_id["vending.main-road"] == Rule(
        id="vending.main-road", category="street_vendor", case_code="05-04", severity="major",
        description="主干道流动摊贩占道经营", source="camera",
        match=Match(labels=frozenset({"street_vendor", "vendor_stall"}), min_confidence=0.5),
        inside=("main_road",), outside=("school",),
        permitted=("vendor_permitted", "night_market"),
        schedule=Schedule(((420, 1320),)),
        key_periods=(Schedule(((420, 540), (1020, 1140)), ("workdays",)),),
        operator=Persist(duration_ms=600_000, gap_ms=120_000), cooldown_ms=1_800_000,
        merge_radius_m=15.0, policy=STANDARD, deadline=Span(7_200_000), file=file, line=2,
    )
    assert by_id["light.out"] == Rule(
        id="light.out", category="streetlight_out", case_code=None, severity="minor",
        description=None, source="sensor", match=Match(kinds=frozenset({"streetlight"})),
        inside=(), outside=(), permitted=(), schedule=None, key_periods=(),
        operator=Holds(
            duration_ms=3_600_000,
            trigger=Condition(frozenset({"off", "fault"}), None, None),  # words, not booleans
            clear=Condition(frozenset({"on"}), None, None),
        ),
        cooldown_ms=0, merge_radius_m=0.0, policy=URGENT, deadline=None, file=file, line=22,
    )
    assert by_id["noise.night"].operator == Holds(
        0, Condition(None, 70, None), Condition(None, None, 60.5))
    assert by_id["noise.night"].line == 30
    assert by_id["complaints.repeated"].match == Match(
        categories=frozenset({"garbage_pile", "debris"}), sources=frozenset({"hotline", "app"}))
    assert by_id["complaints.repeated"].operator == Count(n=3, within_ms=3_600_000, by="zone")
    assert by_id["cam.offline"].operator == Silent(duration_ms=300_000)
    assert by_id["cam.offline"].match == Match()
    assert by_id["cam.offline"].line == 47
    assert ruleset.reorder_window_ms == 10_000
    assert ruleset.allowed_lateness_ms == 60_000
    assert ruleset.categories == frozenset({
        "street_vendor", "streetlight_out", "noise_nuisance", "repeated_complaints",
        "camera_offline", "garbage_pile", "debris"})


def test_a_single_file_is_a_pack(tmp_path: Path) -> None:
    path = write(tmp_path / "one.yaml", POLICIES_YAML + RULES_YAML)
    ruleset = load_rules([str(path)])
    assert len(ruleset.rules) == 5
    assert {r.file for r in ruleset.rules} == {str(path)}


def test_no_packs_is_an_empty_rule_set() -> None:
    assert load_rules([]) == RuleSet(rules=(), reorder_window_ms=5_000,
                                     allowed_lateness_ms=60_000, categories=frozenset())


# -- every error names file, line, rule and key ----------------------------------------------

HEADER = """\
policies:
  standard:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
rules:
"""  # the rule below starts on line 6

RULE = """\
  - id: r1
    category: street_vendor
    severity: major
    source: camera
    persist: {duration: 10m, gap: 2m}
    policy: standard
"""
RULE_KEYS = ("id, category, case_code, severity, description, source, match, inside, outside, "
             "permitted, schedule, key_periods, persist, count, holds, silent, cooldown, "
             "merge_radius, policy, deadline")


def rule_with(old: str, new: str) -> str:
    assert old in RULE
    return HEADER + RULE.replace(old, new)


RULE_ERRORS = [
    # (pack text, line, rule id, key, message)
    (rule_with("    persist:", "    persits:"), 10, "r1", "persits",
     f"unknown key; did you mean 'persist'? (valid keys: {RULE_KEYS})"),
    (rule_with("    policy: standard\n", ""), 6, "r1", "policy",
     "required key is missing: name one of this pack's policies"),
    (rule_with("severity: major", "severity: huge"), 8, "r1", "severity",
     "'huge' is not valid: write one of 'minor', 'major' or 'critical'"),
    (rule_with("source: camera", "source: cctv"), 9, "r1", "source",
     "'cctv' is not valid: write one of 'camera', 'sensor' or 'report'"),
    (rule_with("id: r1", "id: r 1"), 6, "r 1", "id",
     "'r 1' is not a rule id: use letters, digits, '.', '_' and '-', such as "
     "street-vending.main-road"),
    (rule_with("category: street_vendor", "category: Street Vendor"), 7, "r1", "category",
     "'Street Vendor' is not a category: write lowercase letters, digits and _, such as "
     "street_vendor"),
    (rule_with("    persist: {duration: 10m, gap: 2m}\n", ""), 6, "r1", None,
     "no operator: give exactly one of persist, count, holds, silent"),
    (rule_with("    policy:", "    count: {n: 3, within: 1h}\n    policy:"), 11, "r1", "count",
     "a rule has exactly one of persist, count, holds, silent; this one also has persist: "
     "keep one"),
    (rule_with("duration: 10m", "duration: 10 min"), 10, "r1", "persist.duration",
     "'10 min' is not a duration: write a whole number and a unit (90s, 10m, 2h, 7d)"),
    (rule_with("duration: 10m", "duration: 100000000d"), 10, "r1", "persist.duration",
     "'100000000d' is too long: a duration in a pack is at most 3650d (ten years)"),
    (rule_with("    policy:", "    cooldown: 99999999999999999999999h\n    policy:"), 11, "r1",
     "cooldown",
     "'99999999999999999999999h' is too long: a duration in a pack is at most 3650d (ten years)"),
    (rule_with("duration: 10m", "duration: 600"), 10, "r1", "persist.duration",
     "expected a duration such as 90s, 10m, 2h or 7d, got 600"),
    (rule_with("    policy:", "    match: {categories: [debris]}\n    policy:"), 11, "r1",
     "match.categories",
     "categories applies to report rules; a camera rule matches on labels, min_confidence"),
    (rule_with("    policy:", "    match:\n      min_confidence: 1.5\n    policy:"), 12, "r1",
     "match.min_confidence", "1.5 is out of range: must be less than or equal to 1"),
    (rule_with("    policy:", "    match: {labels: []}\n    policy:"), 11, "r1", "match.labels",
     "must not be empty: list at least one item, or leave the key out"),
    (rule_with("    policy:", "    match: {label: [x]}\n    policy:"), 11, "r1", "match.label",
     "unknown key; did you mean 'labels'? (valid keys: labels, min_confidence, categories, "
     "sources, kinds, states, value_above, value_below)"),
    (rule_with("    persist: {duration: 10m, gap: 2m}",
               "    holds: {duration: 1h, trigger: [off], clear: [on]}"), 10, "r1", "holds",
     "holds follows a sensor's state or value: use it with source sensor (persist or count "
     "for cameras and reports)"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: sensor\n    match: {states: [off]}\n"
               "    holds: {duration: 1h, trigger: [off], clear: [on]}"), 10, "r1",
     "match.states",
     "with holds, match selects sensors by kinds; put states and values in holds.trigger and "
     "holds.clear"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: sensor\n    holds:\n      duration: 1h\n      trigger: off\n"
               "      clear: [on]"), 12, "r1", "holds.trigger",
     "expected a condition, got 'off': write a list of states such as [off, fault], or "
     "{value_above: 15} / {value_below: 10}"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: sensor\n    holds:\n      duration: 1h\n      trigger: [off]\n"
               "      clear: {value_blow: 3}"), 13, "r1", "holds.clear.value_blow",
     "unknown key; did you mean 'value_below'?: write a list of states such as [off, fault], "
     "or {value_above: 15} / {value_below: 10}"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: sensor\n    holds: {duration: 1h, trigger: [off, fault], "
               "clear: [on, off]}"), 10, "r1", "holds.clear",
     "off both triggers and clears: a state belongs to one of them"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: sensor\n    holds: {duration: 1h, trigger: [off]}"), 10, "r1",
     "holds.clear", "required key is missing: add it"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: sensor\n    match: {value_above: 70, value_below: 60}\n"
               "    persist: {duration: 10m, gap: 2m}"), 10, "r1", "match.value_below",
     "no value is above 70 and below 60: value_below must be greater than value_above"),
    (rule_with("source: camera\n    persist: {duration: 10m, gap: 2m}",
               "source: report\n    silent: {duration: 5m}"), 10, "r1", "silent",
     "silent watches a device's liveness: use it with source camera or sensor"),
    (rule_with("persist: {duration: 10m, gap: 2m}", "count: {n: 3, within: 1h, by: zone}"), 10,
     "r1", "count.by",
     "by: zone counts per zone the rule requires: add inside (zone kinds), or count by grid or "
     "subject"),
    (rule_with("persist: {duration: 10m, gap: 2m}", "count: {n: 3, within: 0s}"), 10,
     "r1", "count.within", "must be longer than 0s, such as 1h"),
    (rule_with("persist: {duration: 10m, gap: 2m}", "count: {n: 0, within: 1h}"), 10,
     "r1", "count.n", "0 is out of range: must be greater than or equal to 1"),
    (rule_with("persist: {duration: 10m, gap: 2m}", "count: {n: 2, within: 1h, by: camera}"),
     10, "r1", "count.by", "'camera' is not valid: write one of 'grid', 'zone' or 'subject'"),
    (rule_with("    policy:", "    match: {sources: [citizen]}\n    policy:"), 11, "r1",
     "match.sources[0]",
     "'citizen' is not valid: write one of 'inspector', 'hotline', 'app' or 'supervisor'"),
    (rule_with("policy: standard", "policy: standart"), 11, "r1", "policy",
     "'standart' is not a policy of this pack; did you mean 'standard'? (its policies: "
     "standard)"),
    (rule_with("    policy:", "    inside: [main_road, Night-Market]\n    policy:"), 11, "r1",
     "inside[1]",
     "'Night-Market' is not a zone kind: write lowercase letters and _, such as main_road"),
    (rule_with("    policy:", "    inside: main_road\n    policy:"), 11, "r1", "inside",
     "expected a list such as [a, b], got 'main_road'"),
    (rule_with("    policy:", "    inside: [school]\n    outside: [school]\n    policy:"), 12,
     "r1", "outside",
     "school is both inside and outside: the rule could never match there; keep it in one list"),
    (rule_with("    policy:", "    schedule:\n      hours: 7-22\n    policy:"), 12, "r1",
     "schedule.hours",
     "'7-22' is not a window: write HH:MM-HH:MM in local time, such as 07:00-22:00 (start "
     "included, end excluded; 22:00-06:00 crosses midnight, 00:00-00:00 is all day)"),
    (rule_with("    policy:", "    key_periods:\n      - {hours: \"07:00-09:00\"}\n"
               "      - {hours: \"17:00-19:00\", days: [weekdays]}\n    policy:"), 13, "r1",
     "key_periods[1].days",
     "'weekdays' is not a day: write workdays, restdays or a list of mon, tue, wed, thu, fri, "
     "sat, sun"),
    (rule_with("    policy:", "    cooldown: 5\n    policy:"), 11, "r1", "cooldown",
     "expected a duration such as 90s, 10m, 2h or 7d, got 5"),
    (rule_with("    policy:", "    merge_radius: 15\n    policy:"), 11, "r1", "merge_radius",
     "expected a distance such as 15m, got 15"),
    (rule_with("    policy:", "    case_code: 0504\n    policy:"), 11, "r1", "case_code",
     "expected a string (quote it if YAML reads it as a number or a date), got 324"),
    (rule_with("    policy:", "    description: [a]\n    policy:"), 11, "r1", "description",
     "expected a string (quote it if YAML reads it as a number or a date), got ['a']"),
    (rule_with("category: street_vendor", "category: street_vendor\n    category: debris"), 8,
     "r1", "category", "'category' appears twice in this mapping: keep one"),
]


def load_one(tmp_path: Path, text: str) -> PackError:
    path = write(tmp_path / "p.yaml", text)
    with pytest.raises(PackError) as err:
        load_rules([path])
    assert err.value.file == str(path)
    return err.value


@pytest.mark.parametrize(("text", "line", "rule_id", "key", "message"), RULE_ERRORS)
def test_rule_errors(tmp_path: Path, text: str, line: int, rule_id: str | None,
                     key: str | None, message: str) -> None:
    err = load_one(tmp_path, text)
    assert (err.line, err.rule_id, err.key, err.reason) == (line, rule_id, key, message)
    where = f"{tmp_path / 'p.yaml'}:{line}"
    parts = [where] + ([f"rule {rule_id}"] if rule_id else []) + ([key] if key else [])
    assert str(err) == ": ".join([*parts, message])


def test_error_message_format(tmp_path: Path) -> None:
    err = load_one(tmp_path, rule_with("severity: major", "severity: huge"))
    assert str(err) == (f"{tmp_path / 'p.yaml'}:8: rule r1: severity: 'huge' is not valid: "
                        "write one of 'minor', 'major' or 'critical'")


def test_the_first_error_in_the_file_is_reported(tmp_path: Path) -> None:
    text = HEADER + RULE + RULE.replace("id: r1", "id: r2").replace("severity: major",
                                                                    "severity: big")
    text = text.replace("source: camera", "source: cctv", 1)
    err = load_one(tmp_path, text)
    assert (err.line, err.rule_id, err.key) == (9, "r1", "source")


def policy_with(old: str, new: str) -> str:
    text = HEADER.replace(
        "      - {level: 1, after: 0s, notify: [grid_inspector]}\n",
        "      - {level: 1, after: 0s, notify: [grid_inspector]}\n"
        "      - {level: 2, after: 15m, unless: acknowledged, notify: [district_duty]}\n"
        "    deadline: 2h\n",
    ) + RULE  # policy lines: 4 level 1, 5 level 2, 6 deadline
    assert old in text
    return text.replace(old, new)


POLICY_ERRORS = [
    (policy_with("level: 2,", "level: 3,"), 5, "policies.standard.levels[1].level",
     "level 3 in position 2: number the levels 1, 2, 3… in order (expected 2)"),
    (policy_with("after: 0s", "after: 1m"), 4, "policies.standard.levels[0].after",
     "level 1 applies at opening: write after: 0s"),
    (policy_with("after: 15m", "after: 0s"), 5, "policies.standard.levels[1].after",
     "0s is not later than level 1's 0s: after must strictly increase"),
    (policy_with("unless: acknowledged", "unless: acked"), 5,
     "policies.standard.levels[1].unless",
     "'acked' is not valid: write one of 'acknowledged', 'dispatched', 'resolved' or 'closed'"),
    (policy_with("    deadline: 2h\n", "    deadline: 2h\n    on_reopen: again\n"), 7,
     "policies.standard.on_reopen", "'again' is not valid: write one of 'continue' or 'restart'"),
    (policy_with("    deadline: 2h\n", "    deadline: 2h\n    hotspot: {count: 3, within: 7d, "
                 "raise: 2}\n"), 7, "policies.standard.hotspot.raise",
     "raise 2 opens hotspots at level 3, which this policy does not define (it has levels "
     "1..2): add that level or lower raise"),
    (policy_with("    deadline: 2h\n", "    deadline: 2h\n    hotspot: {count: 0, within: 7d}\n"),
     7, "policies.standard.hotspot.count", "0 is out of range: must be greater than or equal to 1"),
    (policy_with("    deadline: 2h\n", "    deadline: 0s\n"), 6, "policies.standard.deadline",
     "0s is no deadline: give a positive duration such as 2h or 4wh, or leave deadline out for none"),
    (policy_with("    deadline: 2h\n", "    dedline: 2h\n"), 6, "policies.standard.dedline",
     "unknown key; did you mean 'deadline'? (valid keys: levels, deadline, on_reopen, hotspot)"),
    (policy_with("notify: [district_duty]", "notify: district_duty"), 5,
     "policies.standard.levels[1].notify", "expected a list such as [a, b], got 'district_duty'"),
    (policy_with("policies:", "rule: []\npolicies:"), 1, "rule",
     "unknown key; did you mean 'rules'? (valid keys: reorder_window, allowed_lateness, "
     "subject_cap, labels, categories, case_codes, policies, rules)"),
    (policy_with("policies:", "reorder_window: soon\npolicies:"), 1, "reorder_window",
     "'soon' is not a duration: write a whole number and a unit (90s, 10m, 2h, 7d)"),
    (policy_with("policies:", "subject_cap: 0\npolicies:"), 1, "subject_cap",
     "0 is out of range: must be greater than or equal to 1"),
    (policy_with("policies:", "subject_cap: 5k\npolicies:"), 1, "subject_cap",
     "expected a whole number, got '5k'"),
    (policy_with("policies:", "subject_cap: 2000.0\npolicies:"), 1, "subject_cap",
     "expected a whole number, got 2000.0"),
    (policy_with("policies:", "labels: shop_sign\npolicies:"), 1, "labels",
     "expected a list such as [a, b], got 'shop_sign'"),
    (policy_with("policies:", "categories: []\npolicies:"), 1, "categories",
     "must not be empty: list at least one item, or leave the key out"),
    (policy_with("after: 15m", "after: 100000000d"), 5, "policies.standard.levels[1].after",
     "'100000000d' is too long: a duration in a pack is at most 3650d (ten years)"),
    (policy_with("deadline: 2h", "deadline: 3651d"), 6, "policies.standard.deadline",
     "'3651d' is too long: a duration in a pack is at most 3650d (ten years)"),
    (policy_with("policies:", "reorder_window: 315360000001ms\npolicies:"), 1,
     "reorder_window",
     "'315360000001ms' is too long: a duration in a pack is at most 3650d (ten years)"),
    (policy_with("  standard:", "  standard policy:"), 2, "policies.standard policy",
     "'standard policy' is not a policy name: use letters, digits, '.', '_' and '-'"),
    ("- id: r1\n", 1, None,
     "expected a mapping of keys to values, got [{'id': 'r1'}]"),
    ("rules:\n  - id: r1\n    category: [oops\n", 4, None,
     "not valid YAML: expected ',' or ']', but got '<stream end>'"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), POLICY_ERRORS)
def test_policy_and_file_errors(tmp_path: Path, text: str, line: int, key: str | None,
                                message: str) -> None:
    err = load_one(tmp_path, text)
    assert (err.line, err.rule_id, err.key, err.reason) == (line, None, key, message)


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(PackError) as err:
        load_rules([tmp_path / "nowhere"])
    assert str(err.value) == (f"{tmp_path / 'nowhere'}: no such file or directory: give a pack "
                              "directory or a YAML file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError) as err:
        load_rules([tmp_path / "empty"])
    assert str(err.value) == (f"{tmp_path / 'empty'}: no *.yaml files in this directory: a pack "
                              "is a directory of YAML files, or one YAML file")


# -- several files and several packs -----------------------------------------------------------


def test_a_pack_level_setting_twice_in_one_pack(tmp_path: Path) -> None:
    write(tmp_path / "pack" / "a.yaml", "reorder_window: 5s\n")
    write(tmp_path / "pack" / "b.yaml", "# b\nreorder_window: 9s\n")
    with pytest.raises(PackError) as err:
        load_rules([tmp_path / "pack"])
    assert str(err.value) == (f"{tmp_path / 'pack' / 'b.yaml'}:2: reorder_window: already set in "
                              f"{tmp_path / 'pack' / 'a.yaml'}:1: set it once per pack")


def test_a_policy_defined_twice_in_one_pack(tmp_path: Path) -> None:
    write(tmp_path / "pack" / "a.yaml", HEADER)
    write(tmp_path / "pack" / "b.yaml", HEADER)
    with pytest.raises(PackError) as err:
        load_rules([tmp_path / "pack"])
    assert (err.value.file, err.value.line, err.value.key) == (
        str(tmp_path / "pack" / "b.yaml"), 2, "policies.standard")
    assert err.value.reason == (f"policy already defined in {tmp_path / 'pack' / 'a.yaml'}:2: "
                                "give each policy of a pack its own name")


def test_rules_in_several_files_of_a_pack_share_its_policies(tmp_path: Path) -> None:
    write(tmp_path / "pack" / "policies.yaml", HEADER.replace("rules:\n", ""))
    write(tmp_path / "pack" / "x.yaml", "rules:\n" + RULE)
    write(tmp_path / "pack" / "y.yaml", "rules:\n" + RULE.replace("id: r1", "id: r2"))
    ruleset = load_rules([tmp_path / "pack"])
    assert [(r.id, r.file, r.line) for r in ruleset.rules] == [
        ("r1", str(tmp_path / "pack" / "x.yaml"), 2),
        ("r2", str(tmp_path / "pack" / "y.yaml"), 2),
    ]
    assert ruleset.rules[0].policy is ruleset.rules[1].policy


def test_several_packs_largest_settings_win(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "reorder_window: 10s\n" + HEADER + RULE)
    b = write(tmp_path / "b.yaml", "reorder_window: 2s\nallowed_lateness: 90s\n")
    c = write(tmp_path / "c.yaml", "allowed_lateness: 30s\n")
    ruleset = load_rules([a, b, c])
    assert (ruleset.reorder_window_ms, ruleset.allowed_lateness_ms) == (10_000, 90_000)
    # A setting nobody makes keeps its default; one pack's setting stands alone.
    assert load_rules([b]).reorder_window_ms == 2_000
    assert load_rules([c]).reorder_window_ms == 5_000


def test_duplicate_rule_id_across_packs(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", HEADER + RULE)
    b = write(tmp_path / "b.yaml", "# b\n" + HEADER + RULE)
    with pytest.raises(PackError) as err:
        load_rules([a, b])
    assert str(err.value) == (f"{b}:7: rule r1: id: rule id already used at {a}:6: rule ids "
                              "are unique across all packs")


def test_a_rule_cannot_use_another_packs_policy(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", HEADER)
    b = write(tmp_path / "b.yaml", "rules:\n" + RULE)
    with pytest.raises(PackError) as err:
        load_rules([a, b])
    assert str(err.value) == (f"{b}:7: rule r1: policy: 'standard' is not a policy of this "
                              "pack (its policies: none: define policies in this pack)")


def test_yaml_merge_keys_and_anchors(tmp_path: Path) -> None:
    text = HEADER + dedent("""\
      - &base
        id: r1
        category: street_vendor
        severity: major
        source: camera
        persist: {duration: 10m, gap: 2m}
        policy: standard
      - <<: *base
        id: r2
        severity: minor
    """)
    ruleset = load_rules([write(tmp_path / "p.yaml", text)])
    assert [(r.id, r.severity, r.line) for r in ruleset.rules] == [
        ("r1", "major", 6), ("r2", "minor", 13)]


def test_the_default_pack_loads() -> None:
    ruleset = load_rules([Path(__file__).parents[2] / "rules" / "packs" / "default"])
    assert ruleset.rules
    assert list(ruleset.rules) == sorted(ruleset.rules, key=lambda r: r.id)


def test_every_default_rule_has_a_case_code_and_a_chinese_description() -> None:
    ruleset = load_rules([Path(__file__).parents[2] / "rules" / "packs" / "default"])
    assert [r.id for r in ruleset.rules if not r.case_code] == []
    # The ops centre's language, not mixed: no Latin letters in any description.
    assert [r.id for r in ruleset.rules
            if not r.description or any("a" <= c.lower() <= "z" for c in r.description)] == []


def test_a_citys_own_case_codes_override_by_rule_id_then_category(valid_pack: Path,
                                                                  tmp_path: Path) -> None:
    codes = write(tmp_path / "codes" / "codes.yaml", """
        # The city's own list, loaded beside the shipped pack.
        case_codes:
          street_vendor: "SC-0501"
          vending.main-road: "SC-0599"
    """)
    def codes_of(*paths: Path) -> dict[str, str | None]:
        return {r.id: r.case_code for r in load_rules(list(paths)).rules}

    shipped = codes_of(valid_pack)
    assert shipped["vending.main-road"] == "05-04"
    # The rule id wins over its category; rules neither names keep their own.
    assert codes_of(valid_pack, codes) == {**shipped, "vending.main-road": "SC-0599"}
    codes.write_text('case_codes:\n  street_vendor: "SC-0501"\n', encoding="utf-8")
    assert codes_of(valid_pack, codes)["vending.main-road"] == "SC-0501"


@pytest.mark.parametrize(("text", "message"), [
    ('case_codes:\n  street_vendr: "X1"\n',
     "'street_vendr' is neither a loaded rule's id nor a loaded rule's category; did you mean "
     "'street_vendor'?"),
    ('case_codes:\n  nothing_like_it: "X1"\n',
     "'nothing_like_it' is neither a loaded rule's id nor a loaded rule's category: check the "
     "spelling"),
    ('case_codes:\n  street_vendor: "05 04"\n',
     "'05 04' is not a case code: write up to 32 letters, digits, '.', '-', '_' or '/', such as "
     '"05-04" (quote it, or YAML may read it as a number)'),
])
def test_case_codes_errors_name_the_key(valid_pack: Path, tmp_path: Path, text: str,
                                        message: str) -> None:
    codes = write(tmp_path / "codes.yaml", text)
    with pytest.raises(PackError) as err:
        load_rules([valid_pack, codes])
    assert (err.value.line, err.value.reason) == (2, message)


def test_two_packs_giving_one_name_two_codes_is_an_error(valid_pack: Path,
                                                         tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", 'case_codes:\n  street_vendor: "A1"\n')
    b = write(tmp_path / "b.yaml", 'case_codes:\n  street_vendor: "B1"\n')
    same = write(tmp_path / "same.yaml", 'case_codes:\n  street_vendor: "A1"\n')
    with pytest.raises(PackError) as err:
        load_rules([valid_pack, a, b])
    assert str(err.value) == (f"{b}:2: case_codes.street_vendor: street_vendor already has the "
                              f"code 'A1' in {a}: give it one code")
    assert {r.id: r.case_code for r in load_rules([valid_pack, a, same]).rules}[
        "vending.main-road"] == "A1"


# -- rules against the map ---------------------------------------------------------------------


def test_check_against_map(tmp_path: Path) -> None:
    city = CityMap.from_geojson(MAP, source="test.geojson")  # zones: main_road, night_market
    text = HEADER + dedent("""\
      - id: r1
        category: street_vendor
        severity: major
        source: camera
        inside: [main_road, school]
        outside: [hospital]
        permitted: [night_market]
        persist: {duration: 10m, gap: 2m}
        policy: standard
      - id: s1
        category: noise_nuisance
        severity: minor
        source: sensor
        match: {kinds: [streetlight, noise]}
        persist: {duration: 0s, gap: 1m}
        policy: standard
    """)
    path = write(tmp_path / "p.yaml", text)
    assert check_against_map(load_rules([path]), city) == [
        f"{path}:6: rule r1: inside: no zone of the map '测试市' has kind 'school'; its zone "
        "kinds: main_road, night_market",
        f"{path}:6: rule r1: outside: no zone of the map '测试市' has kind 'hospital'; its zone "
        "kinds: main_road, night_market",
        f"{path}:15: rule s1: match.kinds: no sensor of the map '测试市' has kind 'noise'; its "
        "sensor kinds: streetlight",
    ]


def test_check_against_map_is_quiet_when_everything_exists(valid_pack: Path) -> None:
    city = CityMap.from_geojson(MAP, source="test.geojson")
    ruleset = load_rules([valid_pack])
    warnings = check_against_map(ruleset, city)
    # The valid pack names school, vendor_permitted and residential, which this map lacks.
    assert [w.split(": ", 2)[2] for w in warnings] == [
        "inside: no zone of the map '测试市' has kind 'residential'; its zone kinds: main_road, "
        "night_market",
        "match.kinds: no sensor of the map '测试市' has kind 'noise'; its sensor kinds: "
        "streetlight",
        "outside: no zone of the map '测试市' has kind 'school'; its zone kinds: main_road, "
        "night_market",
        "permitted: no zone of the map '测试市' has kind 'vendor_permitted'; its zone kinds: "
        "main_road, night_market",
    ]


# -- durations, empty files, pack-level settings -------------------------------------------------


def test_ten_years_is_the_longest_duration(tmp_path: Path) -> None:
    """3650d loads: the bound refuses only what could carry a time past datetime's range."""
    text = rule_with("persist: {duration: 10m, gap: 2m}",
                     "persist: {duration: 3650d, gap: 87600h}\n    cooldown: 315360000000ms")
    rule = load_rules([write(tmp_path / "p.yaml", text)]).rules[0]
    assert rule.operator == Persist(duration_ms=315_360_000_000, gap_ms=315_360_000_000)
    assert rule.cooldown_ms == 315_360_000_000


@pytest.mark.parametrize("text", ["", "\n\n", "# rules to come\n# (none yet)\n", "~\n",
                                  "null\n", "---\n", "{}\n"])
def test_an_empty_rule_file_is_an_error(tmp_path: Path, text: str) -> None:
    write(tmp_path / "pack" / "a.yaml", HEADER + RULE)
    empty = tmp_path / "pack" / "b.yaml"
    empty.write_text(text, encoding="utf-8")
    for path in (tmp_path / "pack", empty):  # in a pack directory, or given alone
        with pytest.raises(PackError) as err:
            load_rules([path])
        assert str(err.value) == (
            f"{empty}: the file is empty (or only comments): a rule file holds rules, policies "
            "or pack-level keys such as reorder_window; write them, or delete the file")


def test_an_empty_section_is_not_an_empty_file(tmp_path: Path) -> None:
    assert load_rules([write(tmp_path / "p.yaml", "rules:\npolicies:\n")]).rules == ()


def test_subject_cap_is_a_pack_setting_and_the_largest_wins(tmp_path: Path) -> None:
    assert load_rules([write(tmp_path / "none.yaml", HEADER + RULE)]).subject_cap == 10_000
    a = write(tmp_path / "a.yaml", "subject_cap: 2_000\n")
    b = write(tmp_path / "b.yaml", "subject_cap: 50000\n" + HEADER + RULE)
    c = write(tmp_path / "c.yaml", "reorder_window: 1s\n")
    assert load_rules([a]).subject_cap == 2_000   # smaller than the default: it stands
    assert load_rules([a, b, c]).subject_cap == 50_000
    assert load_rules([c, a]).subject_cap == 2_000


def test_subject_cap_is_set_once_per_pack(tmp_path: Path) -> None:
    write(tmp_path / "pack" / "a.yaml", "subject_cap: 100\n")
    write(tmp_path / "pack" / "b.yaml", "subject_cap: 200\n")
    with pytest.raises(PackError) as err:
        load_rules([tmp_path / "pack"])
    assert str(err.value) == (f"{tmp_path / 'pack' / 'b.yaml'}:1: subject_cap: already set in "
                              f"{tmp_path / 'pack' / 'a.yaml'}:1: set it once per pack")


def test_declared_labels_and_categories_are_known_words(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "labels: [shop_sign, street_vendor]\n" + HEADER + RULE)
    b = write(tmp_path / "b.yaml", "labels: [tent]\ncategories: [illegal_construction]\n")
    ruleset = load_rules([a, b])
    assert ruleset.labels == frozenset({"shop_sign", "street_vendor", "tent"})
    assert ruleset.declared_categories == frozenset({"illegal_construction"})
    # Declared words are report categories a loaded pack names (CONTRACTS.md): accepted.
    assert {"shop_sign", "tent", "illegal_construction"} <= ruleset.categories


# -- words no source sends ---------------------------------------------------------------------

VOCABULARY_RULES = """\
  - id: cam.typo
    category: street_vendor
    severity: major
    source: camera
    match: {labels: [street_vendorr, vendor_stall, zebra_crossing]}
    persist: {duration: 10m, gap: 2m}
    policy: standard
  - id: rep.typo
    category: repeated_complaints
    severity: minor
    source: report
    match: {categories: [garbage_piel, streetlight_out, other, repeated_complaints, gibberish]}
    count: {n: 3, within: 1h}
    policy: standard
  - id: light.out
    category: streetlight_out
    severity: minor
    source: sensor
    match: {kinds: [streetlite]}
    holds: {duration: 1h, trigger: [off], clear: [on]}
    policy: standard
"""


def test_labels_and_report_categories_no_source_sends_are_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", HEADER + VOCABULARY_RULES)
    warnings = check_vocabulary(load_rules([path]))
    known = ", ".join(sorted({
        "street_vendor", "vendor_stall", "outdoor_business", "parked_car", "parked_ebike",
        "heavy_truck", "abandoned_vehicle", "garbage_pile", "debris", "illegal_poster",
        "outdoor_bbq", "stray_dog", "hanging_laundry"}))
    assert warnings == [
        f"{path}:6: rule cam.typo: match.labels: 'street_vendorr' is not a camera label any "
        "detector sends; did you mean 'street_vendor'? If the city's detectors send it, "
        "declare it with the pack-level labels: [street_vendorr]",
        f"{path}:6: rule cam.typo: match.labels: 'zebra_crossing' is not a camera label any "
        f"detector sends (known: {known}). If the city's detectors send it, declare it with "
        "the pack-level labels: [zebra_crossing]",
        f"{path}:13: rule rep.typo: match.categories: 'garbage_piel' is not a report category "
        "any source sends; did you mean 'garbage_pile'? If the city's reporting systems send "
        "it, declare it with the pack-level categories: [garbage_piel]",
        f"{path}:13: rule rep.typo: match.categories: 'gibberish' is not a report category any "
        "source sends (known: abandoned_vehicle, bin_overflow, camera_offline, debris, "
        "garbage_pile, hanging_laundry, heavy_truck, illegal_poster, manhole_open, "
        "noise_nuisance, other, outdoor_bbq, outdoor_business, parked_car, parked_ebike, "
        "parking_overstay, repeated_complaints, sensor_offline, stray_dog, street_vendor, "
        "streetlight_out, vendor_stall, waterlogging). If the city's reporting systems send "
        "it, declare it with the pack-level categories: [gibberish]",
    ]  # sensor kinds are the map's to check (check_against_map), not a vocabulary's


def test_declared_words_silence_the_vocabulary_warnings(tmp_path: Path) -> None:
    rules = write(tmp_path / "rules.yaml", HEADER + VOCABULARY_RULES)
    # Declared in another pack: the words describe the city's sources, not one pack.
    city_words = write(tmp_path / "city.yaml", "labels: [street_vendorr, zebra_crossing]\n"
                       "categories: [garbage_piel]\n")
    remaining = check_vocabulary(load_rules([rules, city_words]))
    assert [w.split(": ")[2:4] for w in remaining] == [
        ["match.categories", "'gibberish' is not a report category any source sends (known"]]


def test_the_default_pack_uses_only_known_words() -> None:
    assert check_vocabulary(load_rules([Path(__file__).parents[2] / "rules" / "packs" /
                                        "default"])) == []


def test_a_declared_label_reaches_its_rule(tmp_path: Path) -> None:
    """A pack that declares its detector's own label (``labels: [tent]``) and matches it: ingest
    passes such detections on (it used to count them ignored, as labels outside the
    contract's, so the declaration silenced the warning and the rule still never fired)."""
    rule = RULE.replace("    source: camera\n", "    source: camera\n    match: {labels: [tent]}\n")
    pack = write(tmp_path / "p.yaml", "labels: [tent]\n" + HEADER + rule)
    city = CityMap.load(DEMO_CITY)
    ingest = Ingest(city, load_rules([pack]))
    cam = next(iter(city.cameras.values()))
    raw = orjson.dumps({"event_id": "e1", "camera_id": cam.id,
                        "observed_at": "2026-11-20T10:00:00.000+08:00",
                        "detections": [{"label": "tent", "track_id": "t1", "confidence": 0.9},
                                       {"label": "yurt", "track_id": "t2", "confidence": 0.9}]})
    parts = ingest(Source.CAMERA, "city.events.camera", raw, key=cam.id)
    assert isinstance(parts, list)
    assert [o.kind for p in parts for o in p.obs] == ["tent"]
    assert ingest.ignored == {("label", "yurt"): 1}
