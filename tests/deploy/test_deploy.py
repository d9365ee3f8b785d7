"""Static checks of deploy/: the Dockerfile, the compose file and Prometheus' scrape config.

No Docker engine runs in CI or on the development machine, so nothing here builds an image or
starts a container. What these tests catch is the drift that would otherwise show up only at
``docker compose up``: a variable the worker silently ignores, a COPY of a file that moved, an
entry point that is no longer a console script, two workers on one host port.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import tomllib
import urllib.error
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from rules.durations import parse_duration
from streams.cli import main as cli
from streams.settings import ENV_PREFIX, Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
STATE_DIR = "/var/lib/cityorder"
WEB_PORT = 6066

#: Variables compose sets before the setting exists: CITYORDER_SESSION_TIMEOUT is being added to
#: streams/settings.py (field ``session_timeout_ms``). Once the field is there, it is checked like
#: any other variable and its entry here is redundant.
PENDING_VARIABLES = {"CITYORDER_SESSION_TIMEOUT"}
#: Subcommands the image runs before they exist: ``cityorder worker`` is being added (issue 4).
PENDING_COMMANDS = {"worker"}


def known_variables() -> set[str]:
    return {env_name(field) for field in Settings.model_fields}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines()
                                         if not line.lstrip().startswith("#")))
    pairs = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage: only they shape the image that runs."""
    pairs = dockerfile()
    start = max(i for i, (instruction, _) in enumerate(pairs) if instruction == "FROM")
    return pairs[start:]


def exec_form(args: str) -> list[str]:
    """A JSON-array argument (ENTRYPOINT, CMD); shell form would put ``sh -c`` in front of the
    worker and keep SIGTERM from reaching it, so it is refused."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in final_stage():
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def copy_sources() -> list[str]:
    """Sources of every COPY/ADD from the build context (not ``--from`` another stage)."""
    sources = []
    for instruction, args in dockerfile():
        if instruction in ("COPY", "ADD"):
            words = exec_form(args) if args.startswith("[") else shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            sources += paths[:-1]
    return sources


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def workers() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items() if name.startswith("worker-")}


def worker_env(service: dict[str, Any]) -> dict[str, str]:
    env = service["environment"]
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def worker_settings(service: dict[str, Any]) -> Settings:
    """The Settings a worker would start with; a pending variable is left out until Settings
    has it, and from then on validated like the rest."""
    still_pending = PENDING_VARIABLES - known_variables()
    return Settings.from_env({k: v for k, v in worker_env(service).items() if k not in still_pending})


# -- compose ----------------------------------------------------------------------------------


def test_compose_runs_kafka_and_two_workers_built_from_the_dockerfile() -> None:
    services = compose()["services"]
    assert "kafka" in services
    assert sorted(workers()) == ["worker-1", "worker-2"]
    for name, svc in workers().items():
        build = svc["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile", name
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name


def test_every_cityorder_variable_in_compose_is_a_setting() -> None:
    """Settings reads only the variables it knows, so a misspelt one is ignored without a word
    and the worker runs on the default."""
    allowed = known_variables() | PENDING_VARIABLES
    for name, svc in workers().items():
        used = {key for key in worker_env(svc) if key.startswith(ENV_PREFIX)}
        assert used, name
        assert used <= allowed, f"{name}: not a setting: {sorted(used - allowed)}"


def test_every_worker_environment_validates() -> None:
    """The worker would refuse these values at start-up; better to learn it here."""
    for name, svc in workers().items():
        settings = worker_settings(svc)
        assert settings.web_port == WEB_PORT, name
        assert str(settings.state_dir) == STATE_DIR, name


def test_workers_agree_on_what_shapes_topics_and_group() -> None:
    """Workers of one group that disagree on partitions or prefix would fight over the topics."""
    shared = ("CITYORDER_BROKERS", "CITYORDER_TOPIC_PREFIX", "CITYORDER_PARTITIONS",
              "CITYORDER_REPLICATION_FACTOR", "CITYORDER_RULES", "CITYORDER_CITY", "CITYORDER_CLOCK")
    envs = [worker_env(svc) for svc in workers().values()]
    for key in shared:
        assert len({env.get(key) for env in envs}) == 1, key


def test_workers_reach_kafka_on_its_advertised_listener_and_fit_its_limits() -> None:
    """Bootstrap goes to CITYORDER_BROKERS but every later request to the advertised address, so
    the two must match; one broker holds one replica; the broker refuses a session timeout
    outside its group.min/max.session.timeout.ms."""
    kafka = compose()["services"]["kafka"]["environment"]
    advertised = {url.split("://", 1)[1] for url in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert str(kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    low = int(kafka.get("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", 6_000))
    high = int(kafka.get("KAFKA_GROUP_MAX_SESSION_TIMEOUT_MS", 1_800_000))
    for name, svc in workers().items():
        settings = worker_settings(svc)
        assert set(settings.bootstrap_servers) <= advertised, name
        assert settings.replication_factor == 1, name
        assert low <= parse_duration(worker_env(svc)["CITYORDER_SESSION_TIMEOUT"]) <= high, name


def test_more_partitions_than_workers() -> None:
    """A worker beyond the partition count gets no partition and sits idle."""
    for svc in workers().values():
        assert int(worker_env(svc)["CITYORDER_PARTITIONS"]) >= len(workers())


def test_worker_ports_and_state_volumes_do_not_collide() -> None:
    host_ports, volumes = [], []
    for name, svc in workers().items():
        (mapping,) = svc["ports"]
        host, container = str(mapping).rsplit(":", 1)
        assert int(container) == WEB_PORT, name
        host_ports.append(int(host.rsplit(":", 1)[-1]))
        (volume,) = [v for v in svc["volumes"] if v.split(":")[1] == STATE_DIR]
        source = volume.split(":")[0]
        assert source in compose()["volumes"], f"{name}: {source} is not a named volume"
        volumes.append(source)
    assert sorted(host_ports) == [6066, 6067]
    assert len(set(volumes)) == len(volumes), "two workers share one RocksDB directory"


def command_port(service: dict[str, Any], flag: str) -> int:
    """The port a ledger or console service listens on, from its command line."""
    command = service["command"]
    return int(command[command.index(flag) + 1])


def test_prometheus_scrapes_every_process_and_loads_its_rules() -> None:
    services = compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: {target for static in job["static_configs"] for target in static["targets"]}
               for job in config["scrape_configs"]}
    assert targets == {"cityorder": {f"{name}:{WEB_PORT}" for name in workers()},
                       "ledger": {f"ledger:{command_port(services['ledger'], '--web-port')}"},
                       "console": {f"console:{command_port(services['console'], '--port')}"},
                       "webhooks": {f"webhooks:{command_port(services['webhooks'], '--web-port')}"},
                       "adapters": {f"{name}:{command_port(services[name], '--web-port')}"
                                    for name in ADAPTERS}}
    mounts = dict(v.rsplit(":", 1)[0].split(":") for v in services["prometheus"]["volumes"])
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    for rules in config["rule_files"]:     # relative to the configuration file, in the container too
        assert (DEPLOY / "prometheus" / rules).is_file()
        assert mounts[f"./prometheus/{rules}"] == f"/etc/prometheus/{rules}"
    (manager,) = [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"]
                  for t in s["targets"]]
    assert manager.split(":")[0] in services
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in \
        services["alertmanager"]["volumes"]


def test_the_ledger_console_and_open311_share_the_workers_brokers_and_database() -> None:
    services = compose()["services"]
    brokers = {worker_env(svc)["CITYORDER_BROKERS"] for svc in workers().values()}
    urls = set()
    for name in ("ledger", "console", "open311"):
        env = worker_env(services[name])
        assert {k for k in env if k.startswith(ENV_PREFIX)} <= known_variables(), name
        assert {env["CITYORDER_BROKERS"]} == brokers, name
        urls.add(env["CITYORDER_LEDGER_URL"])
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    (url,) = urls
    postgres = services["postgres"]["environment"]
    assert url == (f"postgresql://{postgres['POSTGRES_USER']}:${{POSTGRES_PASSWORD:-cityorder}}"
                   f"@postgres/{postgres['POSTGRES_DB']}")


def test_the_workers_and_the_console_are_given_a_city_map_they_can_read() -> None:
    """cityorder has no default map (they refuse to start without one): each names its map
    with CITYORDER_CITY, at a path a read-only volume fills from a file of this repository."""
    services = compose()["services"]
    for name in [*workers(), "console", "webhooks", *ADAPTERS]:
        path = worker_env(services[name])["CITYORDER_CITY"]
        mounts = [interpolated(v).split(":") for v in services[name]["volumes"]]
        sources = [src for src, target, *mode in mounts if target == path and mode == ["ro"]]
        assert len(sources) == 1, (name, path, mounts)
        assert (DEPLOY / sources[0]).resolve().is_file(), (name, sources[0])


def interpolated(value: str) -> str:
    """``value`` as compose reads it when none of its variables is set: ``${NAME:-default}`` is
    the default."""
    return re.sub(r"\$\{[A-Za-z0-9_]+:-([^}]*)\}", r"\1", value)


def test_webhooks_run_on_request_with_every_secret_their_receivers_file_names() -> None:
    """The webhooks service starts only with the profile "webhooks" (the example's receivers are
    not real), reads the receivers file mounted where its command says, has a variable for every
    secret that file names, the workers' brokers, and listens where its health check and
    Prometheus ask. Its secrets default to empty, and an empty secret stops it with an error."""
    services = compose()["services"]
    hooks = services["webhooks"]
    assert hooks["profiles"] == ["webhooks"]
    assert hooks["build"] == services["worker-1"]["build"]
    command = hooks["command"]
    assert command[:2] == ["webhooks", "run"]
    mounts = [interpolated(v).split(":") for v in hooks["volumes"]]
    (source,) = [src for src, target, *mode in mounts if target == command[2] and mode == ["ro"]]
    receivers = DEPLOY / source
    env = worker_env(hooks)
    assert {k for k in env if k.startswith(ENV_PREFIX)} <= known_variables()
    assert {env["CITYORDER_BROKERS"]} == {worker_env(s)["CITYORDER_BROKERS"] for s in workers().values()}
    config = yaml.safe_load(receivers.read_text(encoding="utf-8"))
    secrets = {r["secret_env"] for r in config["receivers"] if "secret_env" in r}
    assert secrets and secrets <= set(env), f"not passed to the service: {sorted(secrets - set(env))}"
    port = command_port(hooks, "--web-port")
    assert f"127.0.0.1:{port}/healthz" in " ".join(hooks["healthcheck"]["test"])
    assert [str(p) for p in hooks["ports"]] == [f"{port}:{port}"]

    runner = CliRunner()
    given = {name: interpolated(env[name]) for name in secrets}
    refused = runner.invoke(cli, ["webhooks", "check", str(receivers)], env=given)
    assert refused.exit_code != 0 and "has 0 characters" in refused.output, refused.output
    set_ = {name: "ab" * 32 for name in secrets}
    checked = runner.invoke(cli, ["webhooks", "check", str(receivers)], env=set_)
    assert checked.exit_code == 0, checked.output


#: The adapters' services, each behind the profile of its name (docs/adapters.md).
ADAPTERS = ("deepstream", "frigate", "open311")


@pytest.mark.parametrize("name", ADAPTERS)
def test_each_adapter_runs_on_request_with_a_command_cityorder_takes(name: str) -> None:
    """An adapter starts only with its profile (it needs a platform to talk to), runs
    ``cityorder adapt <name>`` with options that command has (click refuses an unknown one even
    beside --help), shares the workers' brokers, and listens where its health check asks."""
    services = compose()["services"]
    svc = services[name]
    assert svc["profiles"] == [name]
    assert svc["build"] == services["worker-1"]["build"]
    command = [interpolated(part) for part in svc["command"]]
    assert command[:2] == ["adapt", name]
    env = worker_env(svc)
    assert {k for k in env if k.startswith(ENV_PREFIX)} <= known_variables()
    assert {env["CITYORDER_BROKERS"]} == {worker_env(s)["CITYORDER_BROKERS"] for s in workers().values()}
    port = command_port(svc, "--web-port")
    assert f"127.0.0.1:{port}/healthz" in " ".join(svc["healthcheck"]["test"])
    assert f"{port}:{port}" in [str(p) for p in svc["ports"]]
    ports = [command_port(services[other], "--web-port") for other in ADAPTERS]
    assert len(set(ports)) == len(ports)
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output


def test_grafana_is_provisioned_with_the_dashboards_and_their_data_sources() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":") for v in grafana["volumes"] if v.startswith("./"))
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "cityorder.yml").read_text())["providers"]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana" / "dashboards" / Path(home).name).is_file()
    assert home.startswith(provider["options"]["path"] + "/")
    sources = yaml.safe_load((provisioning / "datasources" / "cityorder.yml").read_text())["datasources"]
    provided = {(s["type"], s["uid"]) for s in sources}
    used = set()
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text(encoding="utf-8"))
        refs = [p["datasource"] for p in board["panels"]] + \
            [t["datasource"] for p in board["panels"] for t in p["targets"]] + \
            [v["datasource"] for v in board["templating"]["list"] if "datasource" in v]
        used |= {(r["type"], r["uid"]) for r in refs}
    assert used == provided
    services = compose()["services"]
    for source in sources:     # a host of the compose network, on the port its service listens on
        host = source["url"].split("://")[-1].split(":")[0]
        assert host in services, source["name"]


# -- Dockerfile -------------------------------------------------------------------------------


def test_copy_sources_exist_and_cover_what_the_wheel_is_built_from() -> None:
    sources = copy_sources()
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"COPY of paths not in the repository: {missing}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {s.rstrip("/") for s in sources}
    assert needed <= copied, f"the wheel build also needs {sorted(needed - copied)}"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = ROOT / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith(("#", "!"))]
    for source in copy_sources():
        hits = [p for p in patterns if fnmatch(source.rstrip("/"), p.rstrip("/"))]
        assert not hits, f".dockerignore pattern {hits} drops {source}, which the Dockerfile copies"
    assert ".venv" in patterns and ".git" in patterns


def test_entrypoint_is_the_console_script_and_cmd_a_subcommand() -> None:
    stage = dict(final_stage())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert exec_form(stage["ENTRYPOINT"]) == ["cityorder"]
    assert "cityorder" in project["project"]["scripts"]
    command = exec_form(stage["CMD"])
    assert command[0] in set(cli.commands) | PENDING_COMMANDS


def test_image_runs_as_a_user_and_keeps_state_in_the_volume() -> None:
    stage = final_stage()
    users = [args for instruction, args in stage if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    volumes = [args for instruction, args in stage if instruction == "VOLUME"]
    assert volumes == [STATE_DIR]
    env = dockerfile_env()
    assert {k for k in env if k.startswith(ENV_PREFIX)} <= known_variables()
    assert env["CITYORDER_STATE_DIR"] == STATE_DIR
    assert int(env["CITYORDER_WEB_PORT"]) == WEB_PORT


def test_healthcheck_asks_healthz_on_the_web_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the probe itself with urlopen replaced: it must ask /healthz on the port the worker
    listens on (the exposed one, or CITYORDER_WEB_PORT when a deployment moves it), and let a
    failed request end it with an error, or Docker would call a dead worker healthy."""
    stage = dict(final_stage())
    assert stage["EXPOSE"].split() == [str(WEB_PORT)]
    options, _, command = stage["HEALTHCHECK"].partition("CMD")
    assert "--interval=" in options and "--start-period=" in options
    argv = exec_form(command.strip())
    assert argv[:2] == ["python", "-c"], "no curl in the slim image: probe with python"
    probe = compile(argv[2], "HEALTHCHECK", "exec")

    asked: list[str] = []
    monkeypatch.setattr("urllib.request.urlopen", lambda url, **kw: asked.append(url))
    monkeypatch.delenv("CITYORDER_WEB_PORT", raising=False)
    exec(probe, {})
    monkeypatch.setenv("CITYORDER_WEB_PORT", "7001")
    exec(probe, {})
    assert asked == [f"http://127.0.0.1:{WEB_PORT}/healthz", "http://127.0.0.1:7001/healthz"]

    def refused(url: str, **kw: object) -> None:
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr("urllib.request.urlopen", refused)
    with pytest.raises(urllib.error.URLError):
        exec(probe, {})
