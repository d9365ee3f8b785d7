"""Prometheus's own tools for the tests, from Debian's ``prometheus`` package (which ``make
test``'s set-up installs when it is missing; a test never passes without them): ``promtool
check metrics`` on an exposition (names, units, help, counters ending in ``_total``), and a
real Prometheus server that scrapes what a test runs and answers PromQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.dev import free_port


def installed(name: str, package: str = "prometheus") -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test`, whose set-up installs Debian's "
                    f"{package} package")
    return path


def check_metrics(text: str) -> None:
    done = subprocess.run([installed("promtool"), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), \
        f"promtool check metrics:\n{done.stdout}{done.stderr}"


class Prometheus:
    """A Prometheus server scraping ``jobs`` (job name to ``host:port`` targets) every second
    and evaluating ``rule_files`` every second, its data in a temporary directory."""

    def __init__(self, jobs: dict[str, list[str]], rule_files: Sequence[Path] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cityorder-prometheus-"))
        self.port = free_port(0)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = (self.dir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [installed("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{self.tail()}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples (vector or scalar), now."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def tail(self) -> str:
        return "\n".join((self.dir / "prometheus.log").read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
