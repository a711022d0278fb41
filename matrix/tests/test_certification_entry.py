"""The certification session's front door: what a session writes, and where, for a refused, missing or partial run.

A whole certification is ``<id>.json``; anything less (a refused or missing server, a selection of tests, a stop
after the first failure) is ``<id>.attempt.json`` and never replaces it.

Each test runs ``pytest certification`` in a subprocess (its own session, its own results directory), as tox does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from emmett_valkey_matrix import Resolved
from emmett_valkey_matrix.catalogue import load_catalogue
from emmett_valkey_matrix.report.load import check_result, read_results

ROOT = Path(__file__).resolve().parents[2]


def _certify(args: list[str], results: Path, env: dict[str, str],
             select: tuple[str, ...] = ("certification/test_wire.py",)) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CERTIFY_")}
    cmd = [sys.executable, "-m", "pytest", *select, "-q", "-p", "no:xdist",
           "--benchmark-disable", "--results-dir", str(results), *args]
    return subprocess.run(cmd, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=300)


COMPLETED = {"schema": "emmett-valkey-results/1", "server_id": "valkey90", "status": "completed", "tests": ["kept"]}


@pytest.mark.slow
def test_wrong_version_binary_is_refused_and_keeps_the_certification(
        tmp_path: Path, resolved: Callable[[str], Resolved]) -> None:
    """A Valkey 9.1 binary given as valkey90 is refused naming both versions; the earlier certification stays."""
    binary = resolved("valkey91").binary
    assert binary is not None
    results = tmp_path / "results"
    results.mkdir()
    (results / "valkey90.json").write_text(json.dumps(COMPLETED))
    run = _certify(["--server", "valkey90"], results, {"CERTIFY_VALKEY90_BIN": str(binary.path)})
    out = run.stdout + run.stderr
    assert run.returncode == 4, out
    assert "refused" in out and "9.1.2" in out and "9.0" in out
    assert json.loads((results / "valkey90.json").read_text()) == COMPLETED
    attempt = json.loads((results / "valkey90.attempt.json").read_text())
    assert attempt["status"] == "refused" and "9.1.2" in attempt["reason"] and attempt["tests"] == []


def test_bad_url_is_an_attempt_that_keeps_the_certification(tmp_path: Path) -> None:
    """``CERTIFY_VALKEY90_URL=notaurl`` after a full run: the run's file is untouched, the attempt is beside it."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "valkey90.json").write_text(json.dumps(COMPLETED))
    run = _certify(["--server", "valkey90"], results, {"CERTIFY_VALKEY90_URL": "notaurl"})
    out = run.stdout + run.stderr
    assert run.returncode == 3, out
    assert "CERTIFY_VALKEY90_URL" in out and "notaurl" in out
    assert json.loads((results / "valkey90.json").read_text()) == COMPLETED
    attempt = json.loads((results / "valkey90.attempt.json").read_text())
    assert attempt["status"] == "not_run" and "notaurl" in attempt["reason"]
    (results / "valkey90.json").unlink()
    _assert_report_accepts(results)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["certification/test_unit.py::test_bool_roundtrip"], "a selection of tests: certification/test_unit.py"),
        (["certification", "-k", "bool_roundtrip"], "tests deselected (-k 'bool_roundtrip')"),
        (["certification", "-m", "unit and not faults", "--deselect", "certification/test_wire.py"],
         "tests deselected (-m 'unit and not faults', --deselect certification/test_wire.py)"),
    ],
    ids=["node-id", "keyword", "marker-and-deselect"],
)
def test_a_selection_is_a_partial_attempt(tmp_path: Path, args: list[str], why: str) -> None:
    """A node id, ``-k``, ``-m`` or ``--deselect`` runs part of the certification: "ran N of M", never completed."""
    results = tmp_path / "results"
    run = _certify(["--server", "valkey91", *args[1:]], results, {}, select=(args[0],))
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (results / "valkey91.json").exists()
    doc = json.loads((results / "valkey91.attempt.json").read_text())
    assert doc["status"] == "partial" and why in doc["reason"], doc["reason"]
    selection = doc["selection"]
    assert selection["ran"] == len(doc["tests"]) > 0 and isinstance(selection["of"], int), selection
    assert selection["of"] > 400 > selection["ran"], selection  # the whole certification of valkey91 is ~450 tests
    _assert_report_accepts(results)


def test_a_run_stopped_by_the_first_failure_is_partial(tmp_path: Path) -> None:
    """``-x`` with a failing test (a test file of this test's own, in the certification) stops the run: partial."""
    failing = ROOT / "certification" / f"test_zz_stop_{os.getpid()}.py"
    failing.write_text("import pytest\n\n\n@pytest.mark.unit\ndef test_fails(server):\n    assert False\n\n\n"
                       "@pytest.mark.unit\ndef test_after(server):\n    pass\n")
    try:
        run = _certify(["--server", "valkey91", "-x"], tmp_path / "results", {}, select=(str(failing),))
    finally:
        failing.unlink()
    assert run.returncode == 1, run.stdout + run.stderr
    doc = json.loads((tmp_path / "results" / "valkey91.attempt.json").read_text())
    assert doc["status"] == "partial" and "1 selected tests did not run (-x / --maxfail stopped it)" in doc["reason"]
    assert doc["selection"]["ran"] == 1


def test_unavailable_server_writes_not_run_with_the_ways(tmp_path: Path) -> None:
    """valkey72 with no source here stops the session (exit 3) and records "not run" with the ways to provide it."""
    if any(k.startswith("CERTIFY_VALKEY72_") for k in os.environ):
        pytest.skip("a Valkey 7.2 is provided on this machine")
    run = _certify(["--server", "valkey72"], tmp_path / "results", {})
    out = run.stdout + run.stderr
    if run.returncode == 0:
        pytest.skip("Valkey 7.2 resolves on this machine (a tarball build or a binary on PATH)")
    assert run.returncode == 3, out
    assert "CERTIFY_VALKEY72_BIN" in out and "CERTIFY_VALKEY72_URL" in out
    assert not (tmp_path / "results" / "valkey72.json").exists()
    doc = json.loads((tmp_path / "results" / "valkey72.attempt.json").read_text())
    assert doc["status"] == "not_run" and doc["tests"] == [] and "CERTIFY_VALKEY72_BIN" in doc["reason"]
    _assert_report_accepts(tmp_path / "results")


def _assert_report_accepts(results: Path) -> None:
    servers = load_catalogue()
    docs = read_results(results)
    assert docs, f"no result file in {results}"
    for doc in docs:
        assert check_result(doc, servers, None) is None, (doc.get("server_id"), check_result(doc, servers, None))


@pytest.mark.slow
@pytest.mark.parametrize("server_id", ["valkey91", "redis70"])
def test_result_files_are_what_the_report_reads(tmp_path: Path, server_id: str) -> None:
    """A certification session's result file (wheel and Debian provenance alike) passes the report's checks."""
    run = _certify(["--server", server_id, "-k", "same_ttl"], tmp_path / "results", {})
    assert run.returncode == 0, run.stdout + run.stderr
    _assert_report_accepts(tmp_path / "results")
