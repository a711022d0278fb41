"""The example application (examples/app/app.py) as a user runs it: ``emmett -a app.py serve``, configured by VALKEY_*.

docker/example-compose.yaml runs it beside Valkey; no Docker engine runs here, so this starts the same file the same
way without Docker, against the session's server: a subprocess of its own session on a claimed port, requested over
loopback HTTP to a deadline, stopped by pid. It checks that a route is cached in the server (the second request is
served from the cache; once the server forgets the entry the page is computed again) and that with the server
down the application keeps answering (fail-soft mode), as docs/example-app.md says.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey.keys import glob_escape
from emmett_valkey_matrix.executor import PortClaim
from emmett_valkey_matrix.processes import stop_group

from certification.support import scan_delete

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent.parent / "examples" / "app" / "app.py"
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


class Served:
    """The example app under ``emmett serve`` on *port*; its output goes to *log*."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, Any]:
        """GET *path* on a new connection: the status and the decoded JSON body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def served(workdir: Path, environ: dict[str, str]) -> Iterator[Served]:
    """Copy the example into *workdir* (Emmett writes its folders beside the app) and serve it until the block ends."""
    app_dir = workdir / "app"
    app_dir.mkdir(parents=True)
    shutil.copy(APP, app_dir / "app.py")
    claim = PortClaim()
    log = workdir / "emmett.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALKEY_")}
    env.update(environ)
    argv = [sys.executable, "-m", "emmett", "-a", "app.py", "serve", "--host", "127.0.0.1", "--port", str(claim.port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    app = Served(proc, claim.port, log)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"emmett serve exited with {proc.returncode}:\n{app.output()}")
            try:
                if app.get("/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"emmett serve did not answer within {START_DEADLINE} s:\n{app.output()}")
            time.sleep(0.1)
        yield app
    finally:
        stop_group(proc, STOP_DEADLINE)  # and the group of the session it leads: granian and its worker
        claim.release()


def test_example_app_caches_routes_and_values(server: Any, key_prefix: str, raw: valkey.Valkey,
                                              tmp_path: Path) -> None:
    """The second request is the first one's response from Valkey; the shared value is stored under the prefix."""
    environ = {"VALKEY_URL": server.url, "VALKEY_PREFIX": key_prefix, "VALKEY_CLUSTER": "1" if server.cluster else "0"}
    try:
        with served(tmp_path, environ) as app:
            status, first = app.get("/")
            assert status == 200, first
            assert first["products"] == {"1": {"name": "apple", "price": 1.2}, "2": {"name": "pear", "price": 1.5}}
            assert app.get("/") == (200, first)  # served from the cache: the same render
            assert app.get("/?page=2")[1]["render_id"] != first["render_id"]  # another query string: another entry
            status, one = app.get("/products/1")
            assert status == 200 and one["product"] == {"name": "apple", "price": 1.2}

            stored = {k.decode() for k in raw.scan_iter(match=glob_escape(key_prefix) + "*")}
            assert key_prefix + "products" in stored  # the value both routes share
            assert len(stored) == 4, stored  # and three cached responses
            assert 0 < raw.pttl(key_prefix + "products") <= 60_000
            assert all(0 < raw.pttl(k) <= 30_000 for k in stored - {key_prefix + "products"})

            assert scan_delete(raw, key_prefix) == 4  # the server forgets: the next request renders again
            status, again = app.get("/")
            assert status == 200 and again["render_id"] != first["render_id"]
            stats = app.get("/health")[1]["cache"]
            assert stats["hits"] >= 2 and stats["errors"] == 0, stats
    finally:
        scan_delete(raw, key_prefix)


def test_example_app_keeps_serving_without_valkey(tmp_path: Path) -> None:
    """With nothing at VALKEY_URL every page is rendered (not cached), and /health counts the failures."""
    claim = PortClaim()  # a port no server of ours listens on
    claim.release()
    environ = {"VALKEY_URL": f"valkey://127.0.0.1:{claim.port}/0"}
    with served(tmp_path, environ) as app:
        first, second = app.get("/"), app.get("/")
        assert first[0] == second[0] == 200
        assert first[1]["products"] == second[1]["products"]
        assert first[1]["render_id"] != second[1]["render_id"]  # computed each time
        stats = app.get("/health")[1]["cache"]
        assert stats["errors"] >= 4 and stats["hits"] == 0, stats
    assert "served as a miss" in app.output()
