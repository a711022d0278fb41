"""The names suites and report share live in emmett_valkey_matrix.contract; the JSON schemas list the same."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from emmett_valkey_matrix.contract import OUTCOMES, SUITES, TOPOLOGIES, join_id, split_id


def _schema(name: str) -> dict[str, object]:
    return json.loads(resources.files("emmett_valkey_matrix").joinpath(f"schemas/{name}").read_text("utf-8"))


def test_result_and_report_schemas_list_the_contract_suites() -> None:
    """A suite added to the contract is a suite both schemas accept, in the same order."""
    results = _schema("results-1.schema.json")
    report = _schema("report-1.schema.json")
    assert results["$defs"]["test"]["properties"]["suite"]["enum"] == list(SUITES)  # type: ignore[index]
    assert report["$defs"]["suite"]["enum"] == list(SUITES)  # type: ignore[index]
    assert results["$defs"]["test"]["properties"]["outcome"]["enum"] == list(OUTCOMES)  # type: ignore[index]


@pytest.mark.parametrize(
    ("server_id", "split"),
    [
        ("valkey91-cluster", ("valkey91", "cluster")),
        ("valkey91", ("valkey91", "standalone")),
        ("redis62-cluster", ("redis62", "cluster")),
        ("-cluster", ("-cluster", "standalone")),
        ("valkey91-sentinel", ("valkey91-sentinel", "standalone")),
        ("valkey91-cluster-cluster", ("valkey91-cluster", "cluster")),
    ],
)
def test_split_id_names_the_catalogue_id_and_topology(server_id: str, split: tuple[str, str]) -> None:
    """A result id is a catalogue id, or one with "-cluster"; anything else stays standalone (and is then unknown)."""
    assert split_id(server_id) == split
    assert join_id(*split) == server_id


def test_join_id_refuses_an_unknown_topology() -> None:
    """Only the topologies the matrix knows make an id."""
    assert TOPOLOGIES == ("standalone", "cluster")
    with pytest.raises(ValueError, match="unknown topology 'sentinel'"):
        join_id("valkey91", "sentinel")


def test_results_schema_accepts_exactly_the_ids_split_id_reads() -> None:
    """The results schema's server_id pattern admits a catalogue id and its cluster id, no other topology."""
    pattern = re.compile(_schema("results-1.schema.json")["properties"]["server_id"]["pattern"])  # type: ignore[index]
    assert pattern.match("valkey91") and pattern.match("valkey91-cluster")
    assert not pattern.match("valkey91-sentinel") and not pattern.match("valkey91-cluster-cluster")
