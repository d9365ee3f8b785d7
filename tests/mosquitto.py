"""A real MQTT broker for the tests: Debian's mosquitto, started on a free port by the test
(``make test``'s set-up installs the package when it is missing; a test never passes without
it). Sessions live in memory, so a persistent session survives its client, not the broker."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from streams.dev import free_port


class Mosquitto:
    def __init__(self) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists()
                                               else None)
        if binary is None:
            pytest.fail("mosquitto is not installed: run `make test`, whose set-up installs Debian's "
                        "mosquitto package")
        self.dir = Path(tempfile.mkdtemp(prefix="cityorder-mosquitto-"))
        self.port = free_port(0)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 100000\n", encoding="utf-8")
        self.log = (self.dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start: "
                                       + (self.dir / "mosquitto.log").read_text(errors="replace")) from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
