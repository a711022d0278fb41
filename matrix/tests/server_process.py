"""A server process for the source tests: start a fetched or built binary, wait for PING, stop it by pid.

Deliberately independent of the executor, so that a source is proven runnable on its own.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import redis


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
