"""Prometheus's own lint of an exposition (``promtool check metrics``): names, units, help,
counters ending in ``_total``. promtool comes from Debian's ``prometheus`` package, which
``make test``'s set-up installs when it is missing; a test never passes without it."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def check_metrics(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make test`, whose set-up installs Debian's "
                    "prometheus package")
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), \
        f"promtool check metrics:\n{done.stdout}{done.stderr}"
