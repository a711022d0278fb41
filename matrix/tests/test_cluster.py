"""Cluster topology: real server processes of one binary made a cluster with server commands, then faulted.

Every wait is a deadline poll (in the code under test and here); formation times are printed (run with ``-s``).
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import valkey
from emmett_valkey_matrix import NotSupported, Resolved, ServerOptions, StartError, start_cluster
from emmett_valkey_matrix.cluster import SLOTS, LocalCluster, parse_info, parse_nodes, slot_ranges
from emmett_valkey_matrix.executor import port_dir
from source_support import gone
from valkey.cluster import ClusterNode as ClientNode
from valkey.cluster import ValkeyCluster

FORMATION_IDS = ["valkey91", "redis62", "redis74"]  # redis62: no ADDSLOTSRANGE, the ADDSLOTS fallback


def _claimed(port: int) -> list[Path]:
    """Lock files still held for a node's port and its cluster bus port."""
    return [p for p in (port_dir() / f"{port}.lock", port_dir() / f"{port + 10000}.lock") if p.exists()]


def _client(cluster: LocalCluster) -> ValkeyCluster:
    return ValkeyCluster(startup_nodes=[ClientNode(h, p) for h, p in cluster.startup_nodes],
                         socket_timeout=5, socket_connect_timeout=5)


def _cluster_info(node) -> dict[str, str]:
    with node.client() as conn:
        return parse_info(conn.execute_command("CLUSTER", "INFO").decode())


def _provenance_schema() -> dict:
    schema = json.loads(resources.files("emmett_valkey_matrix").joinpath("schemas/results-1.schema.json")
                        .read_text())
    return {"$defs": schema["$defs"], "$ref": "#/$defs/provenance"}


def test_slot_ranges_cover_every_slot_once():
    for primaries in (1, 3, 5, 7):
        ranges = slot_ranges(primaries)
        slots = [s for low, high in ranges for s in range(low, high + 1)]
        assert slots == list(range(SLOTS))
        sizes = [high - low + 1 for low, high in ranges]
        assert max(sizes) - min(sizes) <= 1
    assert slot_ranges(3) == [(0, 5460), (5461, 10921), (10922, 16383)]


def test_parse_nodes_reads_roles_flags_and_slots():
    text = ("a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [93->-b2]\n"
            "b2 127.0.0.1:30002@40002,host slave a1 0 1700000000 1 connected\n"
            "c3 127.0.0.1:30003@40003 master,fail - 1 1 2 disconnected\n"
            "d4 :0@0 handshake - 0 0 0 connected\n")
    view = parse_nodes(text)
    assert view["a1"].role == "primary" and view["a1"].slots == ("0-5460",) and "myself" not in view["a1"].flags
    assert (view["b2"].role, view["b2"].primary_id, view["b2"].port) == ("replica", "a1", 30002)
    assert view["c3"].agreed()[2] is True
    assert (view["d4"].role, view["d4"].port) == ("unknown", 0)


def test_external_server_cannot_be_a_cluster(catalogue):
    external = Resolved(catalogue["valkey91"], "user-url", "CERTIFY_VALKEY91_URL=valkey://127.0.0.1:1", "9.1.2",
                        url="valkey://127.0.0.1:1")
    with pytest.raises(NotSupported, match="external"):
        start_cluster(external, Path("/nonexistent"))


@pytest.mark.slow
@pytest.mark.parametrize("server_id", FORMATION_IDS)
def test_cluster_forms_serves_and_stops(server_id, resolved, tmp_path):
    """3 primaries + 3 replicas form (timed), agree, serve a cluster client in every shard, and stop completely."""
    began = time.monotonic()
    cluster = start_cluster(resolved(server_id), tmp_path)
    elapsed = time.monotonic() - began
    print(f"\n{server_id}: 3+3 cluster at cluster_state:ok in {elapsed:.2f} s "
          f"(formation after the first start: {cluster.formation_s:.2f} s)")
    nodes = list(cluster.nodes)
    pids, ports = [n.pid for n in nodes], [n.port for n in nodes]
    try:
        assert len(nodes) == 6 and len(set(ports)) == 6 and all(pids)
        assert len(cluster.primaries) == 3 and len(cluster.replicas) == 3
        primary_ids = {p.node_id for p in cluster.primaries}
        assert sorted(r.primary_id for r in cluster.replicas) == sorted(primary_ids)  # one replica each
        assert cluster.slot_command == ("ADDSLOTS" if server_id == "redis62" else "ADDSLOTSRANGE")
        for node in nodes:
            info = _cluster_info(node)
            assert (info["cluster_state"], info["cluster_known_nodes"], info["cluster_slots_assigned"]) == \
                ("ok", "6", str(SLOTS)), node.port
            with node.client() as conn:
                view = parse_nodes(conn.execute_command("CLUSTER", "NODES").decode())
                assert conn.info("server")["process_id"] == node.pid
                if node.role == "replica":
                    assert conn.info("replication")["master_link_status"] == "up"
            assert {i: v.role for i, v in view.items()} == {n.node_id: n.role for n in nodes}
            assert node.provenance["id"] == server_id and node.provenance["version"] == resolved(server_id).version

        prov = cluster.provenance
        assert prov["id"] == server_id and prov["binary_sha256"] and prov["source"]["kind"]
        assert "--cluster-enabled" in prov["options"] and "--cluster-node-timeout" in prov["options"]
        topology = prov["cluster"]
        assert (prov["topology"], topology["primaries"], topology["replicas"]) == ("cluster", 3, 3)
        assert [(n["port"], n["node_id"]) for n in topology["nodes"]] == [(n.port, n.node_id) for n in nodes]
        assert sorted(tuple(r) for n in topology["nodes"] for r in n["slots"]) == slot_ranges(3)
        assert {n["node_id"]: n["replica_of"] for n in topology["nodes"]} == {n.node_id: n.primary_id for n in nodes}
        assert all(n["version"] == resolved(server_id).version for n in topology["nodes"])
        jsonschema.Draft202012Validator(_provenance_schema()).validate(json.loads(json.dumps(prov)))
        assert cluster.url == f"valkey://127.0.0.1:{cluster.primaries[0].port}"

        client = _client(cluster)
        try:
            keys = [f"key:{i}" for i in range(300)]
            for key in keys:
                assert client.set(key, key.encode() * 2)
            assert all(client.get(key) == key.encode() * 2 for key in keys)
            assert len({client.keyslot(k) for k in keys}) > 250
        finally:
            client.close()
        sizes = []
        for primary in cluster.primaries:
            with primary.client() as conn:
                sizes.append(conn.dbsize())
        assert sum(sizes) == len(keys) and min(sizes) > 50  # every shard took its share
    finally:
        cluster.stop()
    assert all(gone(pid) for pid in pids)
    assert all(n.pid is None for n in nodes)
    assert [p for port in ports for p in _claimed(port)] == []
    cluster.stop()  # idempotent


@pytest.mark.slow
def test_failover_kill_restart_and_manual(valkey91, tmp_path):
    """SIGKILL of a primary promotes its replica; the killed node comes back as its replica, then primary again.

    No write acknowledged by a replica (WAIT) is lost; CLUSTER FAILOVER swaps the roles back.
    """
    with start_cluster(valkey91, tmp_path) as cluster:
        client = _client(cluster)
        try:
            keys = [f"k{i}" for i in range(200)]
            for key in keys:
                client.set(key, key)
        finally:
            client.close()
        for primary in cluster.primaries:
            with primary.client() as conn:
                assert conn.execute_command("WAIT", 1, 10000) == 1  # every write reached the replica

        victim = cluster.primaries[0]
        heir = cluster.replicas_of(victim)[0]
        victim_pid = victim.pid
        began = time.monotonic()
        promoted = cluster.kill_primary(0)
        print(f"\nvalkey91: replica promoted, cluster_state:ok again {time.monotonic() - began:.2f} s after SIGKILL")
        assert promoted is heir and heir.role == "primary" and heir.primary_id is None
        assert not victim.alive and gone(victim_pid)
        assert len(cluster.primaries) == 3 and len(cluster.replicas) == 2
        assert victim not in cluster.primaries + cluster.replicas
        assert (victim.host, victim.port) not in cluster.startup_nodes
        for node in cluster.primaries + cluster.replicas:
            assert _cluster_info(node)["cluster_state"] == "ok"
        assert {n["port"]: n["role"] for n in cluster.provenance["cluster"]["nodes"]}[victim.port] == "down"
        client = _client(cluster)
        try:
            assert [client.get(k) for k in keys] == [k.encode() for k in keys]
        finally:
            client.close()

        cluster.restart(victim)
        assert victim.alive and victim.role == "replica" and victim.primary_id == heir.node_id
        with victim.client() as conn:
            assert conn.info("replication")["master_link_status"] == "up"

        cluster.failover(victim)
        assert victim.role == "primary" and heir.role == "replica" and heir.primary_id == victim.node_id
        assert len(cluster.primaries) == 3 and len(cluster.replicas) == 3
        for node in cluster.nodes:
            assert _cluster_info(node)["cluster_state"] == "ok"


@pytest.mark.slow
def test_formation_failure_stops_every_node(valkey91, tmp_path):
    """A cluster that misses its deadline stops every node it started, releases their ports, and shows the logs.

    0.5 s cannot be met: a primary does not turn cluster_state:ok within 2 s of its start.
    """
    with pytest.raises(StartError) as caught:
        start_cluster(valkey91, tmp_path, timeout=0.5)
    message = str(caught.value)
    assert "deadline" in message and "--- node" in message
    logs = sorted(tmp_path.glob("node*/server.log"))
    assert len(logs) == 6
    for log in logs:
        text = log.read_text()
        pid = int(re.search(r"\bpid=(\d+)", text).group(1))
        port = int(re.search(r"\bport=(\d+)", text).group(1))
        assert gone(pid), log
        assert _claimed(port) == [], log


@pytest.mark.slow
def test_cluster_with_password(valkey91, tmp_path):
    """A password (requirepass) is given to every node; replicas authenticate to their primary (masterauth)."""
    with start_cluster(valkey91, tmp_path, primaries=3, replicas_per_primary=1,
                       options=ServerOptions(requirepass="s3cret")) as cluster:
        assert cluster.url.startswith("valkey://:s3cret@127.0.0.1:")
        client = ValkeyCluster(startup_nodes=[ClientNode(h, p) for h, p in cluster.startup_nodes],
                               password="s3cret")
        try:
            assert client.set("a", "1") and client.get("a") == b"1"
        finally:
            client.close()
        with valkey.Valkey(host="127.0.0.1", port=cluster.nodes[0].port) as anonymous, \
                pytest.raises(valkey.AuthenticationError):
            anonymous.ping()


def test_slot_sets_and_flat_replies():
    """CLUSTER NODES slot fields become slot sets; a flat name/value reply (or a map) becomes a dict of text."""
    from emmett_valkey_matrix.cluster import _pairs, _slot_set

    assert _slot_set(["5", "10-12"]) == {5, 10, 11, 12} and _slot_set([]) == set()
    assert _pairs([b"state", b"success", b"cow_size", 0]) == {"state": "success", "cow_size": "0"}
    assert _pairs({b"state": b"failed"}) == {"state": "failed"}


@pytest.mark.slow
def test_slots_move_legacy_atomic_and_uncovered(valkey91, tmp_path):
    """Slots move by the legacy commands and atomically; uncovered slots are given back.

    move_slots moves keys and ownership (MIGRATE with AUTH on a password cluster); a SlotMove refuses to finish
    with keys left; MIGRATESLOTS where the server has it; uncover leaves slots to nobody and cover gives them back.
    """
    with start_cluster(valkey91, tmp_path, primaries=3, replicas_per_primary=1,
                       options=ServerOptions(requirepass="s3cret")) as cluster:
        client = ValkeyCluster(startup_nodes=[ClientNode(h, p) for h, p in cluster.startup_nodes],
                               password="s3cret", socket_timeout=5)
        try:
            keys = [f"{{t}}{i}" for i in range(150)]  # one slot, more keys than one MIGRATE batch
            for key in keys:
                client.set(key, key)
            slot = client.keyslot(keys[0])
            source = cluster.owner(slot)
            target = next(p for p in cluster.primaries if p is not source)
            with pytest.raises(ValueError, match="already served"):
                cluster.begin_slot_move(slot, source)
            with pytest.raises(ValueError, match="slot must be in"):
                cluster.owner(SLOTS)
            move = cluster.begin_slot_move(slot, target)
            move.migrate(move.keys_left(10))
            with pytest.raises(ValueError, match="still has keys"):
                move.finish()
            assert move.migrate_all() == 140
            move.finish()
            assert cluster.owner(slot) is target and slot in cluster.slots_of(target)
            assert cluster.move_slots([slot], source) == 150 and cluster.owner(slot) is source
            assert [client.get(k) for k in keys] == [k.encode() for k in keys]
            assert cluster.atomic_slot_migration() is None  # valkey 9.1 has CLUSTER MIGRATESLOTS
            cluster.migrate_slots_atomically(slot, slot, target)
            assert cluster.owner(slot) is target and client.get(keys[-1]) == keys[-1].encode()
            owner = cluster.uncover(slot, slot)
            assert owner is target
            assert all(_cluster_info(n)["cluster_slots_assigned"] == str(SLOTS - 1) for n in cluster.nodes)
            cluster.cover(slot, slot, owner)
            assert all(_cluster_info(n)["cluster_state"] == "ok" for n in cluster.nodes)
            assert client.get(keys[0]) == keys[0].encode()  # the keys stayed with their primary
        finally:
            client.close()
