"""Helpers of the integration suite: the certification app served by granian over loopback HTTP.

:class:`ServedApp` starts ``granian --workers 2`` on a claimed free port as a subprocess of its own session, waits
until it answers (to a deadline, failing early if it exits), and stops it by pid: TERM, then KILL of its process
group after a deadline. Every request opens a new connection and says ``Connection: close``, so that successive
requests may land on different workers.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emmett_valkey_matrix.executor import PortClaim
from emmett_valkey_matrix.processes import stop_group

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so that ``certification.app`` imports here as granian imports it
    sys.path.insert(0, str(ROOT))

from certification.app import ROUTE_TTL, create_app  # noqa: E402

__all__ = ["ROUTE_TTL", "Reply", "ServedApp", "create_app", "until_two_workers"]

TARGET = "certification.app.served:app"
HOST = "127.0.0.1"
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


@dataclass(frozen=True)
class Reply:
    """One HTTP response: status, lower-cased headers, decoded JSON body."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def served_by(self) -> int:
        return int(self.headers["x-served-by"])


@dataclass
class ServedApp:
    """The certification app under granian, two workers, on a handler named by *kind* and a key *prefix*."""

    kind: str
    interface: str
    cache_host: str
    cache_port: int
    prefix: str
    workdir: Path
    workers: int = 2
    short_ttl: int = 1
    cluster: bool = False  # the cache is a cluster: cache_host/cache_port are a seed node
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _claim: PortClaim | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "granian.log"

    def start(self) -> ServedApp:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "root").mkdir(exist_ok=True)
        self._claim = PortClaim()
        self.port = self._claim.port
        env = {**os.environ, "CERT_HANDLER": self.kind, "CERT_HOST": self.cache_host,
               "CERT_PORT": str(self.cache_port), "CERT_PREFIX": self.prefix,
               "CERT_CLUSTER": "1" if self.cluster else "0",
               "CERT_ROOT_PATH": str(self.workdir / "root"), "CERT_SHORT_TTL": str(self.short_ttl),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        argv = [sys.executable, "-m", "granian", "--interface", self.interface, "--workers", str(self.workers),
                "--host", HOST, "--port", str(self.port), "--working-dir", str(ROOT), "--no-ws", TARGET]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"granian exited with {self.proc.returncode} before answering:\n{self.log_tail()}")
            try:
                # ready: it answers, and every worker has started (else one worker could take every request)
                if self.get("/counts").status == 200 and len(self.started_workers()) == self.workers:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"granian was not ready within {START_DEADLINE} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def get(self, path: str, timeout: float = 10.0) -> Reply:
        """GET *path* on a new connection that closes after the response."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            data = resp.read()
            headers = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        body = json.loads(data) if headers.get("content-type", "").startswith(("application/json", "text/plain")) \
            else data
        return Reply(resp.status, headers, body)

    def worker_pids(self) -> set[int]:
        """The pids granian logged for the workers it spawned."""
        return {int(pid) for pid in re.findall(r"Spawning worker-\d+ with PID: (\d+)", self.log_tail(100_000))}

    def started_workers(self) -> set[int]:
        """The numbers of the workers granian logged as started."""
        return {int(n) for n in re.findall(r"Started worker-(\d+)\s*$", self.log_tail(100_000), re.MULTILINE)}

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        """Stop granian by pid: TERM, wait, then KILL its process group (its workers) after the deadline."""
        proc, self.proc = self.proc, None
        try:
            stop_group(proc, STOP_DEADLINE)
        finally:
            if self._claim is not None:
                self._claim.release()
                self._claim = None


def until_two_workers(app: ServedApp, path: str, *, max_requests: int = 200, deadline: float = 20.0) -> list[Reply]:
    """GET *path* (new connection each time) until two different workers have answered; bounded in count and time."""
    replies: list[Reply] = []
    end = time.monotonic() + deadline
    while len(replies) < max_requests and time.monotonic() < end:
        reply = app.get(path)
        assert reply.status == 200, (reply.status, reply.body)
        replies.append(reply)
        if len({r.served_by for r in replies}) >= 2:
            break
    return replies
