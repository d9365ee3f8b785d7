"""Settings from CITYORDER_* variables and CLI overrides: parsing, defaults, errors that say what to fix."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pydantic
import pytest

from streams.settings import DEFAULT_RULES, TOPICS, Settings, SettingsError, env_name


def problems(env: dict[str, str], **overrides: object) -> list[str]:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(env, **overrides)
    assert str(e.value) == "\n".join(e.value.problems)
    return e.value.problems


def test_defaults_match_the_documented_ones() -> None:
    s = Settings.from_env({})
    assert s.brokers == ("kafka://127.0.0.1:9092",)
    assert (s.topic_prefix, s.partitions, s.replication_factor) == ("", 4, 1)
    assert s.state_dir == Path("state")
    assert s.rules == (DEFAULT_RULES,) and DEFAULT_RULES.is_dir()
    assert s.city is None   # no default map: the services that need one say so (test_cli)
    assert (s.clock, s.tick_interval_ms, s.web_port, s.store) == ("wall", 1_000, 6066, "rocksdb")
    assert s.security_protocol == "PLAINTEXT" and s.ssl_context() is None
    assert s.aiokafka_kwargs() == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}
    assert s.compression == "zstd"
    assert s.producer_kwargs() == {**s.aiokafka_kwargs(), "compression_type": "zstd"}


def test_every_variable_is_read() -> None:
    s = Settings.from_env({
        "CITYORDER_BROKERS": "kafka://k1:9093, k2:9094 ,k3",
        "CITYORDER_TOPIC_PREFIX": "staging.",
        "CITYORDER_PARTITIONS": "12",
        "CITYORDER_REPLICATION_FACTOR": "3",
        "CITYORDER_STATE_DIR": "/var/lib/cityorder",
        "CITYORDER_RULES": "packs/a, packs/b.yaml,",
        "CITYORDER_CITY": "maps/city.geojson",
        "CITYORDER_CLOCK": "Event",
        "CITYORDER_TICK_INTERVAL": "250ms",
        "CITYORDER_WEB_PORT": "8080",
        "CITYORDER_STORE": "memory",
        "CITYORDER_COMPRESSION": "None",
        "CITYORDER_UNRELATED": "ignored",
        "OTHER": "ignored",
    })
    assert s.brokers == ("kafka://k1:9093", "kafka://k2:9094", "kafka://k3:9092")
    assert s.bootstrap_servers == ["k1:9093", "k2:9094", "k3:9092"]
    assert (s.topic_prefix, s.partitions, s.replication_factor) == ("staging.", 12, 3)
    assert s.state_dir == Path("/var/lib/cityorder")
    assert s.rules == (Path("packs/a"), Path("packs/b.yaml"))
    assert s.city == Path("maps/city.geojson")
    assert (s.clock, s.tick_interval_ms, s.web_port, s.store) == ("event", 250, 8080, "memory")
    assert s.faust_store == "memory://"
    assert s.compression == "none" and s.producer_kwargs()["compression_type"] is None
    assert s.app_id == "staging.cityorder"


def test_overrides_win_over_the_environment_and_none_means_not_given() -> None:
    env = {"CITYORDER_PARTITIONS": "8", "CITYORDER_CLOCK": "event"}
    s = Settings.from_env(env, partitions=2, clock=None, tick_interval="2s", rules=[Path("x"), "y"],
                          brokers=["a:1", "kafka://b:2"])
    assert (s.partitions, s.clock, s.tick_interval_ms) == (2, "event", 2_000)
    assert s.rules == (Path("x"), Path("y"))
    assert s.brokers == ("kafka://a:1", "kafka://b:2")
    assert Settings.from_env(env, tick_interval_ms=500).tick_interval_ms == 500


def test_empty_variables_count_as_unset() -> None:
    blank = {"CITYORDER_PARTITIONS": "", "CITYORDER_TOPIC_PREFIX": " "}
    assert Settings.from_env(blank) == Settings.from_env({})


def test_an_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="no field 'partition'"):
        Settings.from_env({}, partition=3)


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(pydantic.ValidationError):
        s.partitions = 8  # type: ignore[misc]


def test_errors_name_the_variable_and_say_what_is_valid() -> None:
    assert problems({"CITYORDER_PARTITIONS": "four"}) == [
        "CITYORDER_PARTITIONS: 'four' is not a whole number; use one from 1 to 1024"]
    assert problems({"CITYORDER_PARTITIONS": "0"}) == [
        "CITYORDER_PARTITIONS: 0 is out of range; use a whole number from 1 to 1024"]
    assert problems({"CITYORDER_CLOCK": "now"}) == ["CITYORDER_CLOCK: 'now' is not one of wall, event"]
    assert problems({"CITYORDER_STORE": "redis"}) == [
        "CITYORDER_STORE: 'redis' is not one of rocksdb, memory"]
    assert problems({"CITYORDER_COMPRESSION": "brotli"}) == [
        "CITYORDER_COMPRESSION: 'brotli' is not one of lz4, zstd, gzip, snappy, none"]
    assert problems({"CITYORDER_WEB_PORT": "70000"}) == [
        "CITYORDER_WEB_PORT: 70000 is out of range; use a whole number from 1 to 65535"]
    assert problems({"CITYORDER_SECURITY_PROTOCOL": "TLS"}) == [
        "CITYORDER_SECURITY_PROTOCOL: 'TLS' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"]
    [tick] = problems({"CITYORDER_TICK_INTERVAL": "1"})
    assert tick.startswith("CITYORDER_TICK_INTERVAL: '1' is not a duration") and "90s" in tick
    assert problems({"CITYORDER_TICK_INTERVAL": "5ms"}) == [
        "CITYORDER_TICK_INTERVAL: 5ms is out of range; use 10ms to 1h, e.g. 1s"]


def test_all_problems_are_reported_at_once_and_overrides_are_named_as_flags() -> None:
    found = problems({"CITYORDER_PARTITIONS": "x", "CITYORDER_STORE": "redis"}, clock="later")
    assert [p.split(":")[0] for p in found] == ["CITYORDER_PARTITIONS", "--clock", "CITYORDER_STORE"]
    assert problems({}, tick_interval="0s")[0].startswith("--tick-interval: 0s is out of range")
    assert problems({}, checkpoint_interval="20ms")[0].startswith("--checkpoint-interval: 20ms is out")
    assert problems({}, ingest_linger="6s")[0].startswith("--ingest-linger: 6s is out")
    # flags spelt otherwise than their field: named as the user typed them
    assert problems({}, console_tiles="http://t/{q}")[0].startswith("--tiles: ")
    assert problems({}, console_trusted_proxies="10.0.0.300")[0].startswith("--trusted-proxies: ")


def test_the_consoles_trusted_proxies_are_addresses_or_networks() -> None:
    s = Settings.from_env({"CITYORDER_CONSOLE_TRUSTED_PROXIES": "10.0.0.5, 10.8.0.0/16,fd00::/8"})
    assert [str(n) for n in s.console_trusted_proxies] == ["10.0.0.5/32", "10.8.0.0/16", "fd00::/8"]
    assert Settings.from_env(s.to_env()) == s
    assert Settings.from_env({}).console_trusted_proxies == ()
    assert problems({"CITYORDER_CONSOLE_TRUSTED_PROXIES": "10.0.0.5,proxy.local"}) == [
        "CITYORDER_CONSOLE_TRUSTED_PROXIES: 'proxy.local' is not an IP address or network; write "
        "them like 10.0.0.5,10.8.0.0/16"]


@pytest.mark.parametrize(("brokers", "message"), [
    ("http://k:9092", "has scheme 'http'; write kafka://HOST:PORT or HOST:PORT"),
    ("k:99999", "has an invalid port"),
    ("kafka://:9092", "is not a broker address"),
    (" , ", "no broker given"),
])
def test_broker_addresses_are_checked(brokers: str, message: str) -> None:
    [problem] = problems({"CITYORDER_BROKERS": brokers})
    assert problem.startswith("CITYORDER_BROKERS: ") and message in problem


@pytest.mark.parametrize(("prefix", "message"), [
    ("staging", "must end with '.', '-' or '_'"),
    ("a b.", "may only hold letters, digits"),
    ("x" * 201 + ".", "longer than 200"),
])
def test_topic_prefixes_are_checked(prefix: str, message: str) -> None:
    [problem] = problems({"CITYORDER_TOPIC_PREFIX": prefix})
    assert problem.startswith("CITYORDER_TOPIC_PREFIX: ") and message in problem


def test_topic_prefixes_contract_and_internal_topics_and_rejects_others() -> None:
    s = Settings.from_env({"CITYORDER_TOPIC_PREFIX": "t-1_"})
    assert [s.topic(t) for t in TOPICS] == [
        "t-1_city.events.camera", "t-1_city.events.sensor", "t-1_city.events.report",
        "t-1_city.alerts.feedback", "t-1_city.alerts", "t-1_city.alerts.deadletter", "t-1_cityorder.internal",
        "t-1_city.audit", "t-1_city.webhooks.deadletter"]
    assert Settings.from_env({}).topic("city.alerts") == "city.alerts"
    with pytest.raises(KeyError, match=re.escape("'city.alert' is not a cityorder topic")):
        s.topic("city.alert")


def test_sasl_settings_reach_aiokafka_and_faust() -> None:
    env = {"CITYORDER_SECURITY_PROTOCOL": "sasl_plaintext", "CITYORDER_SASL_USERNAME": "worker",
           "CITYORDER_SASL_PASSWORD": "s3cret", "CITYORDER_SASL_MECHANISM": "scram-sha-512"}
    s = Settings.from_env(env)
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())
    assert s.aiokafka_kwargs() == {
        "bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "worker", "sasl_plain_password": "s3cret"}
    credentials = s.faust_credentials()
    assert credentials is not None
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")  # type: ignore[attr-defined]
    default = Settings.from_env({k: v for k, v in env.items() if k != "CITYORDER_SASL_MECHANISM"})
    assert default.aiokafka_kwargs()["sasl_mechanism"] == "PLAIN"
    assert Settings.from_env({}).faust_credentials() is None


def test_security_settings_that_would_be_ignored_are_errors(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("not a certificate")
    assert problems({"CITYORDER_SASL_USERNAME": "u"}) == [
        "CITYORDER_SASL_USERNAME is set but CITYORDER_SECURITY_PROTOCOL is PLAINTEXT: set it to "
        "SASL_PLAINTEXT or SASL_SSL, or unset CITYORDER_SASL_USERNAME"]
    assert problems({"CITYORDER_SECURITY_PROTOCOL": "SASL_SSL", "CITYORDER_SASL_USERNAME": "u"}) == [
        "CITYORDER_SASL_PASSWORD is required when CITYORDER_SECURITY_PROTOCOL is SASL_SSL"]
    assert problems({"CITYORDER_SSL_CAFILE": str(pem)}, security_protocol="SASL_PLAINTEXT",
                    sasl_username="u", sasl_password="p") == [
        f"{env_name('ssl_cafile')} is set but --security-protocol is SASL_PLAINTEXT: set it to SSL or "
        f"SASL_SSL, or unset {env_name('ssl_cafile')}"]
    assert problems({"CITYORDER_SECURITY_PROTOCOL": "SSL", "CITYORDER_SSL_KEYFILE": str(pem)}) == [
        "CITYORDER_SSL_KEYFILE needs CITYORDER_SSL_CERTFILE (the client certificate the key belongs to)"]
    missing = tmp_path / "no.pem"
    assert problems({"CITYORDER_SECURITY_PROTOCOL": "SSL", "CITYORDER_SSL_CAFILE": str(missing)}) == [
        f"CITYORDER_SSL_CAFILE: '{missing}' is not a readable file; give the path of a PEM file"]


def test_an_unreadable_certificate_is_reported_when_the_context_is_built(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("not a certificate")
    s = Settings.from_env({"CITYORDER_SECURITY_PROTOCOL": "SSL", "CITYORDER_SSL_CAFILE": str(pem)})
    expected = f"cannot build a TLS context from CITYORDER_SSL_CAFILE={pem}"
    with pytest.raises(SettingsError, match=re.escape(expected)):
        s.aiokafka_kwargs()


def test_ssl_uses_the_system_cas_unless_a_ca_file_is_given() -> None:
    s = Settings.from_env({"CITYORDER_SECURITY_PROTOCOL": "SSL"})
    kwargs = s.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_ssl_with_a_client_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=cityorder-test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    s = Settings.from_env({"CITYORDER_SECURITY_PROTOCOL": "SASL_SSL", "CITYORDER_SASL_USERNAME": "u",
                           "CITYORDER_SASL_PASSWORD": "p", "CITYORDER_SSL_CAFILE": str(cert),
                           "CITYORDER_SSL_CERTFILE": str(cert), "CITYORDER_SSL_KEYFILE": str(key)})
    kwargs = s.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and isinstance(kwargs["ssl_context"], ssl.SSLContext)
    subjects = [c["subject"] for c in kwargs["ssl_context"].get_ca_certs()]
    assert subjects == [((("commonName", "cityorder-test"),),)]
    credentials = s.faust_credentials()
    assert credentials is not None and credentials.protocol.value == "SASL_SSL"  # type: ignore[attr-defined]


def test_to_env_gives_the_same_settings_back() -> None:
    s = Settings.from_env({}, brokers="a:1,b:2", topic_prefix="t.", partitions=3, clock="event",
                          tick_interval="250ms", session_timeout="3s", checkpoint_interval="750ms",
                          ingest_linger="150ms", security_protocol="SASL_PLAINTEXT",
                          sasl_username="u", sasl_password="p4ss", rules=[Path("x"), Path("y")])
    env = s.to_env()
    assert env["CITYORDER_SASL_PASSWORD"] == "p4ss" and "CITYORDER_SSL_CAFILE" not in env
    assert Settings.from_env(env) == s
