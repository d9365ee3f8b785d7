"""Receivers' matchers: Alertmanager's syntax and meaning, on the fields of an alert message."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhook_receiver import EXAMPLE
from webhooks.matchers import Matcher, matches

ALERT: dict[str, Any] = EXAMPLE | {"notify": ["grid_inspector", "district_duty"], "case_code": None}


def holds(*texts: str, alert: dict[str, Any] = ALERT) -> bool:
    return matches([Matcher.parse(t) for t in texts], alert)


def test_equal_and_not_equal() -> None:
    assert holds('district="简城街道"')
    assert not holds('district="东溪街道"')
    assert holds('district!="东溪街道"')
    assert not holds('district!="简城街道"')


def test_every_matcher_must_hold_and_none_means_every_alert() -> None:
    assert holds('district="简城街道"', 'level="2"')
    assert not holds('district="简城街道"', 'level="3"')
    assert matches([], ALERT)


def test_regular_expressions_are_anchored_at_both_ends() -> None:
    assert holds('level=~"2|3"')
    assert not holds('district=~"简城"')          # a prefix is not a match
    assert holds('district=~"简城.*"')
    assert holds('rule_id=~"street-vending\\\\..*"')
    assert holds('severity!~"minor|critical"')
    assert not holds('severity!~"major"')


def test_notify_matches_if_any_role_does_and_its_negation_if_none_does() -> None:
    assert holds('notify="district_duty"')
    assert holds('notify="grid_inspector"')
    assert not holds('notify="district_leader"')
    assert holds('notify!="district_leader"')
    assert not holds('notify!="district_duty"')
    assert holds('notify=~"district_.*"')
    assert not holds('notify!~"grid_.*"')


def test_a_null_field_and_an_empty_notify_are_the_empty_string() -> None:
    assert holds('case_code=""')
    assert not holds('case_code!=""')
    assert holds('notify=""', alert=ALERT | {"notify": []})


def test_unquoted_values_and_escapes() -> None:
    assert holds("transition=escalated")
    assert holds(" transition = \"escalated\" ")
    m = Matcher.parse('district="a\\"b"')
    assert m.value == 'a"b'
    assert str(m) == 'district="a\\"b"'


@pytest.mark.parametrize(("text", "says"), [
    ("district", "is not a matcher"),
    ('rule="x"', "did you mean rule_id?"),
    ('colour="red"', "no label 'colour'"),
    ('level=~"(2"', "is not a regular expression"),
    ('district="unterminated', "is not a double-quoted string"),
    ('district=a"b', "must be written in double quotes"),
])
def test_a_bad_matcher_says_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as e:
        Matcher.parse(text)
    assert says in str(e.value)


def test_odd_field_types_are_text_not_a_crash() -> None:
    odd = ALERT | {"notify": 5, "level": True, "district": {"x": 1}}
    assert holds('notify="5"', alert=odd)
    assert holds('level="True"', alert=odd)
    assert not holds('district="简城街道"', alert=odd)
