"""The one table of result statuses and the one results directory, against the schema and the writers."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from emmett_valkey_matrix import results, workflow
from emmett_valkey_matrix.report.model import ATTEMPT_STATUSES
from emmett_valkey_matrix.report.write import main as report_main

from certification.results import result_path, write_not_run

DATA = Path(__file__).parent / "data" / "results"


def test_statuses_are_the_schema_enum_and_only_completed_certifies() -> None:
    """The table lists exactly the result schema's statuses; only completed is written as <id>.json."""
    schema = json.loads(resources.files("emmett_valkey_matrix").joinpath("schemas/results-1.schema.json").read_text())
    assert list(results.STATUSES) == schema["properties"]["status"]["enum"]
    assert [s for s in results.STATUSES if results.certifies(s)] == ["completed"]
    assert ATTEMPT_STATUSES == ("partial", "not_run", "refused")
    assert not results.certifies("finished") and not results.certifies(None)


def test_the_writers_and_the_report_name_files_from_the_table(tmp_path: Path) -> None:
    """The certification writer files a status where the table says; a completed run removes the attempt."""
    assert result_path(tmp_path, "valkey91-cluster", "completed").name == "valkey91-cluster.json"
    for status in ("partial", "not_run", "refused", "error"):
        assert result_path(tmp_path, "valkey91", status).name == "valkey91.attempt.json"
    attempt = write_not_run(tmp_path, "valkey91", "no server here")
    assert attempt.name == "valkey91.attempt.json" and json.loads(attempt.read_text())["status"] == "not_run"
    assert results.result_name("migration", "partial") == "migration.attempt.json"


def test_one_results_directory_for_report_and_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report reads RESULTS_DIR by default, the directory the workflow uploads and downloads."""
    assert workflow.RESULTS_DIR == str(results.RESULTS_DIR) == "reports/results"
    monkeypatch.chdir(tmp_path)
    (tmp_path / results.RESULTS_DIR).mkdir(parents=True)
    (tmp_path / results.RESULTS_DIR / "valkey91.json").write_bytes((DATA / "valkey91.json").read_bytes())
    assert report_main(["--out", "out", "--generated-at", "2026-12-01T00:00:00Z"]) == 0
    inputs = json.loads((tmp_path / "out" / "compatibility.json").read_text())["inputs"]
    assert [(i["file"], i["kind"]) for i in inputs] == [("valkey91.json", "results")]
