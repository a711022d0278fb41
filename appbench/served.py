"""The benchmarked app under granian (one worker) as a subprocess of its own session, stopped by pid.

Started like the integration suite's app (``certification/support_integration.py``): a claimed free port, ready
when a route answers (to a deadline, failing early if granian exits), TERM then KILL of its process group.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from emmett_valkey_matrix.executor import PortClaim
from emmett_valkey_matrix.processes import stop_group

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TARGET = "appbench.app:app"
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


class ServedApp:
    """``granian --workers 1`` serving :mod:`appbench.app` on a cache at ``cache_port`` (a context manager)."""

    def __init__(self, cache_port: int, prefix: str, workdir: Path) -> None:
        self.cache_port = cache_port
        self.prefix = prefix
        self.workdir = workdir
        self._claim = PortClaim()
        self.port = self._claim.port
        self.log_path = workdir / "granian.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServedApp:
        (self.workdir / "root").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "APPBENCH_HOST": HOST, "APPBENCH_PORT": str(self.cache_port),
               "APPBENCH_PREFIX": self.prefix, "APPBENCH_ROOT": str(self.workdir / "root"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        argv = [sys.executable, "-m", "granian", "--interface", "rsgi", "--workers", "1", "--host", HOST,
                "--port", str(self.port), "--working-dir", str(ROOT), "--no-ws", "--log-level", "warning", TARGET]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def url(self, path: str) -> str:
        """Return the URL of ``path`` on this app."""
        return f"http://{HOST}:{self.port}{path}"

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"granian exited with {self.proc.returncode} before answering:\n{self.log_tail()}")
            try:
                if self.get("/response/ram")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"granian was not ready within {START_DEADLINE} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, Any]:
        """GET ``path``: the status and the decoded JSON body (the raw bytes when it is not JSON)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, data

    def log_tail(self, size: int = 4000) -> str:
        """Return the end of granian's log."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        """Stop granian by pid: TERM, wait, then KILL its process group after the deadline; release the port."""
        proc, self.proc = self.proc, None
        try:
            stop_group(proc, STOP_DEADLINE)
        finally:
            self._claim.release()
