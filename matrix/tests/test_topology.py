"""The topology axis: ids of the form ``<id>-cluster``, how they resolve, and a cluster someone else runs."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
from emmett_valkey_matrix import IntegrityError, NotAvailable, ServerOptions, launch, resolve, start_cluster
from emmett_valkey_matrix.contract import join_id, split_id


def test_split_id_reads_the_topology_suffix():
    """``<id>-cluster`` is the cluster topology of ``<id>``; anything else is one server, unknown ids included."""
    assert split_id("valkey91-cluster") == ("valkey91", "cluster")
    assert split_id("valkey91") == ("valkey91", "standalone")
    assert split_id("valkey91-sentinel") == ("valkey91-sentinel", "standalone")
    assert split_id("-cluster") == ("-cluster", "standalone")
    assert join_id("redis62", "cluster") == "redis62-cluster" and join_id("redis62", "standalone") == "redis62"
    with pytest.raises(ValueError, match="unknown topology"):
        join_id("redis62", "ring")


@pytest.mark.parametrize("server_id", ["valkey99-cluster", "valkey91-ring", "nope"])
def test_unknown_ids_name_the_known_ones(server_id):
    """An id whose base is not catalogued is refused with the known ids, cluster form included."""
    with pytest.raises(KeyError, match=r"unknown server id .*known: valkey72, .*<id>-cluster"):
        resolve(server_id, environ={}, fetch=False)


def test_cluster_id_resolves_the_same_binary(catalogue):
    """valkey91-cluster runs the binary valkey91 resolves to; only the topology differs."""
    one, many = resolve("valkey91", environ={}), resolve("valkey91-cluster", environ={})
    assert (one.topology, many.topology) == ("standalone", "cluster")
    assert (one.id, many.id) == ("valkey91", "valkey91-cluster")
    assert one.binary is not None and many.binary is not None and one.binary.path == many.binary.path


def test_single_server_url_is_not_a_cluster_url(tmp_path):
    """CERTIFY_<ID>_URL is not used for <id>-cluster, and a single server given as the cluster URL is refused."""
    with resolve("valkey91").start(ServerOptions(), workdir=tmp_path) as single:
        url = f"valkey://{single.host}:{single.port}"
        resolved = resolve("valkey91-cluster", environ={"CERTIFY_VALKEY91_URL": url})
        assert resolved.kind != "user-url" and resolved.binary is not None
        with pytest.raises(IntegrityError, match=r"CERTIFY_VALKEY91_CLUSTER_URL=.*not in cluster mode"):
            resolve("valkey91-cluster", environ={"CERTIFY_VALKEY91_CLUSTER_URL": url})


def test_unreachable_cluster_url_is_not_available():
    """A cluster URL where nothing listens says so, naming the variable."""
    with pytest.raises(NotAvailable, match=r"CERTIFY_VALKEY91_CLUSTER_URL=valkey://127\.0\.0\.1:1 does not answer"):
        resolve("valkey91-cluster", environ={"CERTIFY_VALKEY91_CLUSTER_URL": "valkey://127.0.0.1:1"})


@pytest.mark.slow
def test_external_cluster_is_identified_node_by_node(tmp_path):
    """A cluster someone else runs: every node listed and identified by INFO, slots and replicas recorded, not owned."""
    with start_cluster(resolve("valkey91"), tmp_path) as local:
        host, port = local.startup_nodes[0]
        environ = {"CERTIFY_VALKEY91_CLUSTER_URL": f"valkey://{host}:{port}"}
        resolved = resolve("valkey91-cluster", environ=environ)
        assert resolved.external and resolved.kind == "user-url"
        remote = launch("valkey91-cluster", workdir=tmp_path / "unused", environ=environ)
        assert remote.startup_nodes and (remote.host, remote.port) == (host, port)
        prov = remote.provenance
        nodes = prov["cluster"]["nodes"]
        assert prov["topology"] == "cluster" and (prov["cluster"]["primaries"], prov["cluster"]["replicas"]) == (3, 3)
        assert sorted(n["port"] for n in nodes) == sorted(p for _, p in local.startup_nodes)
        assert all(n["product"] == "valkey" and n["version"] == "9.1.2" for n in nodes)
        assert sorted(tuple(r) for n in nodes for r in n["slots"]) == [(0, 5460), (5461, 10921), (10922, 16383)]
        primaries = {n["node_id"] for n in nodes if n["role"] == "primary"}
        assert sorted(n["replica_of"] for n in nodes if n["role"] == "replica") == sorted(primaries)
        assert remote.startup_nodes[0] == (host, port) and remote.pid is None
        remote.stop()  # a no-op: the cluster is still there
        assert all(n.alive for n in local.nodes)
        schema = json.loads(resources.files("emmett_valkey_matrix").joinpath("schemas/results-1.schema.json")
                            .read_text())
        jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/provenance"}).validate(
            json.loads(json.dumps(prov)))


def test_tox_has_a_cluster_env_for_every_catalogued_id(catalogue):
    """``tox -e <id>-cluster`` exists for exactly the catalogue's ids, labelled ``cluster`` (``tox -m cluster``)."""
    import configparser
    import re
    from pathlib import Path

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(Path(__file__).resolve().parents[2] / "tox.ini")
    sections = [s for s in ini.sections() if re.fullmatch(r"testenv:\{[a-z0-9,]+\}-cluster", s)]
    assert len(sections) == 1
    ids = sections[0][len("testenv:{"):-len("}-cluster")].split(",")
    assert ids == list(catalogue)
    assert ini[sections[0]]["labels"].strip() == "cluster"
    assert "--server {envname}" in ini[sections[0]]["commands"]
