"""The certification session's front door: a refused or missing server writes what it should, and nothing else.

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
from emmett_valkey_matrix.report.load import check_result, read_results
from emmett_valkey_matrix.report.servers import read_packaged_catalogue, servers_from

ROOT = Path(__file__).resolve().parents[2]


def _certify(args: list[str], results: Path, env: dict[str, str],
             select: tuple[str, ...] = ("certification/test_wire.py",)) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CERTIFY_")}
    cmd = [sys.executable, "-m", "pytest", *select, "-q", "-p", "no:xdist",
           "--benchmark-disable", "--results-dir", str(results), *args]
    return subprocess.run(cmd, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_wrong_version_binary_is_refused_and_writes_no_results(
        tmp_path: Path, resolved: Callable[[str], Resolved]) -> None:
    """A Valkey 9.1 binary given as valkey90 is refused naming both versions, and no result file is written."""
    binary = resolved("valkey91").binary
    assert binary is not None
    run = _certify(["--server", "valkey90"], tmp_path / "results", {"CERTIFY_VALKEY90_BIN": str(binary.path)})
    out = run.stdout + run.stderr
    assert run.returncode == 4, out
    assert "refused" in out and "9.1.2" in out and "9.0" in out
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


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
    doc = json.loads((tmp_path / "results" / "valkey72.json").read_text())
    assert doc["status"] == "not_run" and doc["tests"] == [] and "CERTIFY_VALKEY72_BIN" in doc["reason"]
    _assert_report_accepts(tmp_path / "results")


def _assert_report_accepts(results: Path) -> None:
    servers = {s.id: s for s in servers_from(read_packaged_catalogue())}
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
