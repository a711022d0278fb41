"""What the source tests share: a fetch or build done once per cache, and a server process of its binary.

The server process is deliberately independent of the executor, so that a source is proven runnable on its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from emmett_valkey_matrix.sources.base import Fetched


def free_port() -> int:
    """Return a port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(binary: Path, workdir: Path, *, argv0: str | None = None,
                   env: Mapping[str, str] | None = None) -> Iterator[redis.Redis]:
    """Start ``binary`` (as ``argv0``) on a free port, wait for PING, yield a client, stop it by pid."""
    port = free_port()
    log = workdir / "server.log"
    args = [argv0 or str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]
    with log.open("w") as out:
        proc = subprocess.Popen(args, executable=binary, env=None if env is None else dict(env), stdout=out,
                                stderr=out)
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not answer PING: {log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


T = TypeVar("T")


def cache_root(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``$EMMETT_VALKEY_CACHE/test-sources`` when set (kept across sessions), else a session tmp dir."""
    if os.environ.get("EMMETT_VALKEY_CACHE"):
        root = Path(os.environ["EMMETT_VALKEY_CACHE"]) / "test-sources"
        root.mkdir(parents=True, exist_ok=True)
        return root
    return tmp_path_factory.mktemp(name)


def load_fetched(data: dict[str, Any]) -> Fetched:
    """Rebuild a :class:`Fetched` as :func:`fill_once` remembered it (``asdict``, paths as strings)."""
    return Fetched(root=Path(data["root"]), binary=Path(data["binary"]) if data["binary"] else None,
                   source=data["source"], lib_dirs=tuple(Path(p) for p in data["lib_dirs"]), version=data["version"])


def fill_once(root: Path, name: str, fill: Callable[[Path], Any], load: Callable[[dict[str, Any]], T]) -> T:
    """Fill root/name once (under a lock, for xdist), remembering the result (a dataclass) in root/name.json."""
    done = root / f"{name}.json"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return load(json.loads(done.read_text()))
        dest = root / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        result = fill(dest)
        done.write_text(json.dumps(asdict(result), default=str))
        return result  # type: ignore[no-any-return]


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Poll until ``pid`` no longer exists (or is a zombie someone else must reap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False
