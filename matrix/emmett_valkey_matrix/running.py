"""Running what a run id names: one server, a local cluster of its build, or the server or cluster someone else runs.

Provisioning (:mod:`~emmett_valkey_matrix.provision`) finds and identifies a binary or a URL; this floor runs it.
:func:`launch` is the one way from a run id to a :class:`Running` server: ``valkey91`` starts the resolved binary (or
connects to ``CERTIFY_VALKEY91_URL``), ``valkey91-cluster`` starts a cluster of 3 primaries and 3 replicas of the
same binary (:func:`~emmett_valkey_matrix.cluster.start_cluster`) or connects to ``CERTIFY_VALKEY91_CLUSTER_URL``, a
seed node of a cluster someone else runs (:func:`~emmett_valkey_matrix.cluster_external.connect_cluster`), every
node identified by INFO. A new topology is one more branch of :func:`run` and its own :class:`Running` kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .catalogue import Entry
from .cluster import start_cluster
from .cluster_external import connect_cluster
from .provision import Resolved, resolve
from .run_id import RunId, Topology


class Running(Protocol):
    """A server (or cluster) that runs for a run id: where it listens, what it is, and how to end it."""

    @property
    def host(self) -> str:
        """Host of the server (a cluster's seed node)."""
        ...

    @property
    def port(self) -> int:
        """Port of the server (a cluster's seed node)."""
        ...

    @property
    def url(self) -> str:
        """``valkey://host:port`` of the server (a cluster's seed node)."""
        ...

    @property
    def provenance(self) -> Mapping[str, Any]:
        """What ran, as the result file records it (``"topology"`` and, on a cluster, every node)."""
        ...

    @property
    def startup_nodes(self) -> Sequence[tuple[str, int]]:
        """``(host, port)`` of every node of a cluster; empty for one server."""
        ...

    def stop(self) -> None:
        """End what we started (nothing for a server or cluster someone else runs); idempotent."""
        ...


def run(resolved: Resolved, *, workdir: Path) -> Running:
    """Run what ``resolved`` names (:attr:`Resolved.run_id`): one server, or a cluster of its binary or URL.

    Raises :class:`~emmett_valkey_matrix.identify.IntegrityError` when a server (any node) is not the id's build.
    """
    if resolved.run_id.standalone:
        return resolved.start(workdir=workdir)
    if resolved.topology is Topology.CLUSTER:
        if resolved.binary is not None:
            return start_cluster(resolved, workdir)
        seed = resolved.connect()
        return connect_cluster(seed, resolved.entry, resolved.describe(), dict(seed.provenance))
    raise NotImplementedError(f"{resolved.run_id}: no way to run a {resolved.topology}")  # a Topology member added


def launch(run_id: RunId | str, *, workdir: Path, catalogue: Mapping[str, Entry] | None = None,
           environ: Mapping[str, str] | None = None) -> Running:
    """Resolve ``run_id`` (:func:`~emmett_valkey_matrix.provision.resolve`) and run it in ``workdir``."""
    return run(resolve(str(run_id), catalogue=catalogue, environ=environ), workdir=workdir)
