"""``docker/docker-compose.yaml``: one service per catalogue id, used only when a Docker engine answers."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from ..catalogue import Entry
from .base import NotAvailable

COMPOSE_FILE = Path("docker/docker-compose.yaml")  # relative to the checkout's root, as a person types it


def find_compose_file() -> Path:
    """``$EMMETT_VALKEY_COMPOSE_FILE``, else ``docker/docker-compose.yaml`` of the checkout we run in.

    The checkout is found from the working directory upwards (tox and pytest run from the repository root with the
    package installed elsewhere), then beside the package source (an editable install).
    """
    given = os.environ.get("EMMETT_VALKEY_COMPOSE_FILE")
    if given:
        return Path(given)
    here = Path.cwd().resolve()
    for base in (here, *here.parents, Path(__file__).resolve().parents[3]):
        candidate = base / COMPOSE_FILE
        if candidate.is_file():
            return candidate
    return here / COMPOSE_FILE


@functools.lru_cache(maxsize=1)
def docker_engine() -> str | None:
    """None when ``docker info`` succeeds, else why not (no client, or the client finds no engine)."""
    docker = shutil.which("docker")
    if not docker:
        return "no docker client on PATH"
    try:
        proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if proc.returncode != 0:
        return "docker client present but no engine answers (docker info failed)"
    return None


def up_argv(server_id: str, *, compose_file: Path = COMPOSE_FILE, wait: bool = True) -> list[str]:
    """``docker compose -f <file> up -d [--wait] <id>``: start the service (``wait``: until its healthcheck passes)."""
    return ["docker", "compose", "-f", str(compose_file), "up", "-d", *(["--wait"] if wait else []), server_id]


def up_command(server_id: str, *, wait: bool = True) -> str:
    """Return the command a person runs to start the service."""
    return " ".join(up_argv(server_id, wait=wait))


def compose_url(entry: Entry) -> str:
    """Return the URL of the compose service for ``entry`` (after it is up)."""
    return f"valkey://localhost:{entry.compose_port}/0"


def start_service(entry: Entry) -> str:
    """``docker compose up -d --wait <id>``; returns the service URL. NotAvailable without an engine."""
    reason = docker_engine()
    if reason:
        raise NotAvailable(reason)
    compose_file = find_compose_file()
    if not compose_file.is_file():
        raise NotAvailable(f"{compose_file} not found (installed without the repository checkout)")
    proc = subprocess.run(up_argv(entry.id, compose_file=compose_file), capture_output=True, text=True, timeout=300,
                          check=False)
    if proc.returncode != 0:
        raise NotAvailable(f"docker compose up {entry.id} failed: {proc.stderr.strip()[-300:]}")
    return compose_url(entry)
