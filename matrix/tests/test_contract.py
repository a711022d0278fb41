"""The names suites and report share live in emmett_valkey_matrix.contract; the JSON schemas list the same."""

from __future__ import annotations

import json
from importlib import resources

from emmett_valkey_matrix.contract import OUTCOMES, SUITES


def _schema(name: str) -> dict[str, object]:
    return json.loads(resources.files("emmett_valkey_matrix").joinpath(f"schemas/{name}").read_text("utf-8"))


def test_result_and_report_schemas_list_the_contract_suites() -> None:
    """A suite added to the contract is a suite both schemas accept, in the same order."""
    results = _schema("results-1.schema.json")
    report = _schema("report-1.schema.json")
    assert results["$defs"]["test"]["properties"]["suite"]["enum"] == list(SUITES)  # type: ignore[index]
    assert report["$defs"]["suite"]["enum"] == list(SUITES)  # type: ignore[index]
    assert results["$defs"]["test"]["properties"]["outcome"]["enum"] == list(OUTCOMES)  # type: ignore[index]
