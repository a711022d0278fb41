"""RunId: the one place a run id (catalogue id + topology) is parsed and printed."""

from __future__ import annotations

import pytest
from emmett_valkey_matrix.catalogue import load_catalogue
from emmett_valkey_matrix.run_id import TOPOLOGIES, RunId, Topology, UnknownRunId


def test_parse_and_print_round_trip_every_catalogue_id_on_every_topology() -> None:
    """Every catalogue id on every topology prints as its tox env name and parses back to the same value."""
    catalogue = load_catalogue()
    for sid in catalogue:
        for topology in TOPOLOGIES:
            run_id = RunId(sid, topology)
            assert str(run_id) == (sid if topology is Topology.STANDALONE else f"{sid}-{topology.value}")
            assert RunId.parse(str(run_id), catalogue) == run_id


def test_parse_reads_the_topology_and_the_environment_key() -> None:
    """``valkey91-cluster`` is the cluster of valkey91, whose user URL is CERTIFY_VALKEY91_CLUSTER_URL."""
    run_id = RunId.parse("valkey91-cluster")
    assert (run_id.base, run_id.topology, run_id.standalone) == ("valkey91", Topology.CLUSTER, False)
    assert (run_id.env_key, RunId.parse("valkey91").env_key) == ("valkey91_cluster", "valkey91")
    assert RunId.parse("valkey91") == RunId("valkey91", Topology.STANDALONE)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("valkey91-ring", r"unknown server id 'valkey91-ring': no topology 'ring' \(topologies: standalone, cluster\)"),
        ("valkey91-standalone", r"no topology 'standalone'"),  # one server has no suffix
        ("valkey99", r"unknown server id 'valkey99'; known: valkey72, "),
        ("valkey99-cluster", r"unknown server id 'valkey99-cluster'; known: .*each also as <id>-cluster"),
        ("-cluster", r"unknown server id '-cluster'"),
        ("Valkey91", r"unknown server id 'Valkey91'"),
    ],
)
def test_parse_refuses_an_unknown_id_or_topology_naming_the_valid_ones(text: str, says: str) -> None:
    """A bad id is a ValueError (and a KeyError, as resolve raised) that names the known ids and topologies."""
    with pytest.raises(UnknownRunId, match=says) as caught:
        RunId.parse(text, load_catalogue())
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, KeyError)


def test_read_never_fails_and_gives_the_text_back() -> None:
    """Ids read from files split a known suffix only; anything else is one server named by the whole text."""
    for text in ("valkey91-cluster", "valkey91", "valkey91-ring", "-cluster", "valkey91-cluster-cluster", ""):
        assert str(RunId.read(text)) == text
    assert RunId.read("valkey91-cluster") == RunId("valkey91", Topology.CLUSTER)
    assert RunId.read("valkey91-ring") == RunId("valkey91-ring", Topology.STANDALONE)


def test_topology_is_its_word_and_refuses_an_unknown_one() -> None:
    """A topology prints, formats and compares as the word provenance records; an unknown name is refused."""
    assert [str(t) for t in TOPOLOGIES] == ["standalone", "cluster"] and f"{Topology.CLUSTER}" == "cluster"
    assert Topology.named("cluster") is Topology.CLUSTER and Topology.CLUSTER == "cluster"
    with pytest.raises(ValueError, match=r"unknown topology 'sentinel'; expected one of standalone, cluster"):
        Topology.named("sentinel")
