"""A real PostgreSQL server for the tests, started and stopped by them (Debian's ``postgresql``
package, which ``make test`` installs when it is missing): no mock database anywhere.

As root (CI), the server runs as the ``postgres`` user, since PostgreSQL refuses to run as
root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresMissing(RuntimeError):
    pass


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresMissing("PostgreSQL is not installed (no initdb): run `make test`, whose set-up "
                          "installs Debian's postgresql package, or `apt-get install postgresql`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """One throwaway server: ``url`` is ready to use once :meth:`start` returns."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="cityorder-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgresql://cityorder@127.0.0.1:{self.port}/cityorder"
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    def _as_owner(self) -> None:
        if self.user is not None:
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)

    def _run(self, *args: str) -> None:
        done = subprocess.run([str(self.bin / args[0]), *args[1:]], preexec_fn=self._as_owner,
                              capture_output=True, cwd=self.dir, check=False)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> Postgres:
        self._run("initdb", "-D", str(self.data), "-U", "cityorder", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8")
        self.launch()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "cityorder", "cityorder")
        return self

    def database(self, name: str) -> str:
        """A new, empty database on this server; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "cityorder", name)
        return f"postgresql://cityorder@127.0.0.1:{self.port}/{name}"

    def launch(self) -> None:
        """Start the server on its data (again, after :meth:`halt`) and wait until it answers."""
        log = (self.dir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=off", "-c", "full_page_writes=off"],
            preexec_fn=self._as_owner, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.dir / 'postgres.log').read_text()[-2000:]}")
            try:
                self._run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port))
                return
            except RuntimeError:
                time.sleep(0.2)
        raise RuntimeError(f"postgres not ready in 30 s: {(self.dir / 'postgres.log').read_text()[-2000:]}")

    def halt(self) -> None:
        """Stop the server, keeping its data: SIGINT is PostgreSQL's fast shutdown, which
        disconnects clients (SIGTERM would wait for them to leave)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(20)

    def stop(self) -> None:
        try:
            self.halt()
        except subprocess.TimeoutExpired:
            assert self.proc is not None
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
