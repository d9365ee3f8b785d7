"""The receivers file: defaults, secrets, and errors that name the receiver, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from tests.webhook_receiver import EXAMPLE
from webhooks.config import ConfigError, load

SECRET = "0123456789abcdef0123456789abcdef"
GOOD = """
receivers:
  - name: dispatch-jiancheng
    url: https://dispatch.example/hooks/cityorder?token=abc
    secret_env: HOOK_SECRET
    matchers: ['district="简城街道"', 'transition!="updated"']
  - name: emergency
    url: http://10.0.0.5:8080/cap
    secret_file: {secret_file}
    format: cap
    timeout: 3s
    retry: {initial: 500ms, max: 30s, attempts: 5, give_up_after: 2h}
    max_in_flight: 50
    start: earliest
"""


def write(tmp_path: Path, text: str) -> Path:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    path = tmp_path / "receivers.yml"
    path.write_text(text.replace("{secret_file}", str(secret_file)), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text), {"HOOK_SECRET": SECRET} if environ is None else environ)
    return str(e.value)


def test_a_good_file_with_its_defaults_and_secrets(tmp_path: Path) -> None:
    config, secrets = load(write(tmp_path, GOOD), {"HOOK_SECRET": SECRET})
    a, b = config.receivers
    assert (a.format, a.timeout, a.retry.initial, a.retry.max, a.retry.attempts, a.retry.give_up_after,
            a.max_in_flight, a.concurrency, a.start) == ("json", 10_000, 1_000, 60_000, 10, 86_400_000,
                                                         1_000, 16, "latest")
    assert a.safe_url == "https://dispatch.example/hooks/cityorder"
    assert [str(m) for m in a.matchers] == ['district="简城街道"', 'transition!="updated"']
    assert (b.format, b.timeout, b.retry.initial, b.retry.give_up_after, b.start) == ("cap", 3_000, 500,
                                                                                      7_200_000, "earliest")
    assert secrets == {"dispatch-jiancheng": SECRET.encode(), "emergency": SECRET.encode()}
    assert config.sender == "cityorder"


def test_field_errors_name_the_receiver_and_the_field(tmp_path: Path) -> None:
    text = problems(tmp_path, """
receivers:
  - name: Dispatch A
    url: ftp://x
    secret_env: HOOK_SECRET
  - name: b
    url: http://user:pw@host/x
    secret_env: HOOK_SECRET
    matchers: ['rule="x"']
    timeout: 5 minutes
    retry: {initial: 10s, max: 1s}
    colour: red
""")
    assert "receiver Dispatch A: name: 'Dispatch A': use lower-case letters, digits and dashes" in text
    assert "receiver Dispatch A: url: 'ftp://x' is not an http:// or https:// URL" in text
    assert "receiver b: url: put no user or password in the URL" in text
    assert "receiver b: matchers: 'rule=\"x\"': no label 'rule' (did you mean rule_id?)" in text
    assert "receiver b: timeout: '5 minutes' is not a duration" in text
    assert "receiver b: retry: max (1s) is shorter than initial (10s)" in text
    assert "receiver b: colour: Extra inputs are not permitted" in text


def test_file_level_errors(tmp_path: Path) -> None:
    assert "receivers: Field required" in problems(tmp_path, "sender: x\n")
    assert "used more than once" in problems(tmp_path, """
receivers:
  - {name: a, url: "http://h/x", secret_env: HOOK_SECRET}
  - {name: a, url: "http://h/y", secret_env: HOOK_SECRET}
""")
    assert "not YAML" in problems(tmp_path, "receivers: [\n")
    assert "sender: String should match pattern" in problems(tmp_path, """
sender: "city centre"
receivers: [{name: a, url: "http://h/x", secret_env: HOOK_SECRET}]
""")


def test_a_secret_is_required_present_and_long_enough(tmp_path: Path) -> None:
    one = "receivers: [{name: a, url: 'http://h/x'%s}]"
    assert "give exactly one of secret_env" in problems(tmp_path, one % "")
    assert "give exactly one of secret_env" in problems(tmp_path, one % ", secret_env: S, secret_file: /f")
    text = problems(tmp_path, one % ", secret_env: HOOK_SECRET", environ={})
    assert "environment variable HOOK_SECRET is not set" in text and "openssl rand -hex 32" in text
    assert "has 5 characters; use at least 16" in problems(tmp_path, one % ", secret_env: HOOK_SECRET",
                                                          environ={"HOOK_SECRET": "short"})
    assert "cannot read secret_file /nonexistent" in problems(tmp_path, one % ", secret_file: /nonexistent")


def test_check_lists_what_each_receiver_gets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = write(tmp_path, GOOD)
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(EXAMPLE, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["webhooks", "check", str(path), "--alert", str(alert)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        'dispatch-jiancheng: https://dispatch.example/hooks/cityorder (json) <- district="简城街道" and '
        'transition!="updated"  => gets it',
        "emergency: http://10.0.0.5:8080/cap (cap) <- every transition  => gets it"]
    alert.write_text(json.dumps(EXAMPLE | {"transition": "updated"}), encoding="utf-8")
    result = CliRunner().invoke(main, ["webhooks", "check", str(path), "--alert", str(alert)])
    assert "=> not this one" in result.output.splitlines()[0]


def test_check_refuses_a_bad_file_with_every_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    result = CliRunner().invoke(main, ["webhooks", "check", str(write(tmp_path, GOOD))])
    assert result.exit_code == 1
    assert "environment variable HOOK_SECRET is not set" in result.output
    assert "docs/webhooks.md" in result.output


def test_the_example_file_loads_and_names_real_categories() -> None:
    from rules.pack import DEFAULT_PACK, load_rules

    path = Path(__file__).resolve().parents[2] / "deploy" / "webhooks.example.yml"
    env = {name: SECRET for name in ("DISPATCH_JIANCHENG_SECRET", "EMERGENCY_CAP_SECRET", "UTILITIES_SECRET")}
    config, _ = load(path, env)
    assert [r.name for r in config.receivers] == ["dispatch-jiancheng", "emergency-cap", "utilities"]
    categories = {rule.category for rule in load_rules([DEFAULT_PACK]).rules}
    named = {c for r in config.receivers for m in r.matchers if m.label == "category"
             for c in m.value.split("|")}
    assert named and named <= categories
