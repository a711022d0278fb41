"""A pytest plugin that writes one result file per server: ``reports/results/<id>.json``.

The file (schema ``emmett-valkey-results/1``, see ``matrix/README.md``) is the only input of the report. It runs in
the controlling process, so under pytest-xdist it sees every worker's reports.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

SCHEMA = "emmett-valkey-results/1"
PACKAGES = ("emmett-valkey", "valkey", "redis", "emmett", "emmett-core", "libvalkey", "hiredis", "granian", "pytest")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": package_versions(),
    }


def _message(report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if report.skipped:
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            return str(longrepr[2])
        return getattr(report, "wasxfail", None) or str(longrepr)
    text = report.longreprtext or ""
    lines = [line for line in text.splitlines() if line.startswith("E ")] or text.splitlines()[-5:]
    return "\n".join(lines)[-2000:]


def _properties(report: pytest.TestReport) -> dict[str, Any]:
    return {name: value for name, value in report.user_properties}


class ResultsWriter:
    """Collects test reports per server and writes each server's result file at the end of the session."""

    def __init__(self, config: pytest.Config, out_dir: Path, pool: Any, deviations: dict[str, str]) -> None:
        self.config = config
        self.out_dir = out_dir
        self.pool = pool
        self.deviations = deviations
        self.started_at = _now()
        self.t0 = time.monotonic()
        self.tests: dict[str, dict[str, Any]] = {}
        self.latency: dict[str, dict[str, dict[str, dict[str, float]]]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = _properties(report)
        server = props.get("server")
        if server is None:
            return
        record = self.tests.setdefault(
            report.nodeid,
            {
                "nodeid": report.nodeid,
                "name": report.nodeid.split("::")[-1].split("[")[0],
                "suite": props.get("suite"),
                "handler": props.get("handler"),
                "server": server,
                "outcome": "passed",
                "duration_s": 0.0,
                "message": None,
                "deviation": props.get("deviation"),
                "rerun": f"tox -e {server} -- {shlex.quote(report.nodeid)}",
            },
        )
        record["duration_s"] = round(record["duration_s"] + report.duration, 6)
        for name, value in report.user_properties:
            if name == "latency":
                sample = json.loads(value)
                by_handler = self.latency.setdefault(server, {}).setdefault(sample.pop("handler"), {})
                by_handler[sample.pop("op")] = sample
        outcome = self._outcome(report)
        if outcome is None:
            return
        if record["outcome"] in ("passed", "skipped") or outcome in ("failed", "error"):
            record["outcome"] = outcome
            record["message"] = _message(report)

    @staticmethod
    def _outcome(report: pytest.TestReport) -> str | None:
        if report.when == "call":
            if hasattr(report, "wasxfail"):
                return "xfailed" if report.skipped else "xpassed"
            return str(report.outcome)
        if report.failed:
            return "error"
        if report.skipped:
            return "xfailed" if hasattr(report, "wasxfail") else "skipped"
        return None

    def write(self, status: str = "completed", reason: str | None = None, only: list[str] | None = None) -> list[Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for server_id, info in self.pool.infos.items():
            if only is not None and server_id not in only:
                continue
            tests = [dict(t) for t in self.tests.values() if t["server"] in (server_id, "*")]
            for t in tests:
                if t.pop("server") == "*":
                    t["rerun"] = f"tox -e {server_id} -- {shlex.quote(t['nodeid'])}"
            tests.sort(key=lambda t: t["nodeid"])
            summary = dict.fromkeys(("passed", "failed", "skipped", "xfailed", "xpassed", "error"), 0)
            for t in tests:
                summary[t["outcome"]] += 1
            doc = self.document(server_id, status, reason, info.provenance, tests, summary)
            path = self.out_dir / f"{server_id}.json"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
            tmp.replace(path)
            written.append(path)
        return written

    def document(self, server_id: str, status: str, reason: str | None, provenance: dict[str, Any],
                 tests: list[dict[str, Any]], summary: dict[str, int]) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "handler": {"distribution": "emmett-valkey", "version": package_versions()["emmett-valkey"]},
            "server_id": server_id,
            "status": status,
            "reason": reason,
            "started_at": self.started_at,
            "finished_at": _now(),
            "duration_s": round(time.monotonic() - self.t0, 3),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "environment": environment(),
            "server": provenance,
            "tests": tests,
            "latency": self.latency.get(server_id, {}),
            "deviations": self.deviations,
            "summary": summary,
        }


def write_not_run(out_dir: Path, server_id: str, reason: str) -> Path:
    """Record that *server_id* could not be run here, and why (the report shows it as "not run")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": SCHEMA,
        "handler": {"distribution": "emmett-valkey", "version": package_versions()["emmett-valkey"]},
        "server_id": server_id,
        "status": "not_run",
        "reason": reason,
        "started_at": _now(),
        "finished_at": _now(),
        "duration_s": 0.0,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "environment": environment(),
        "server": None,
        "tests": [],
        "latency": {},
        "deviations": {},
        "summary": dict.fromkeys(("passed", "failed", "skipped", "xfailed", "xpassed", "error"), 0),
    }
    path = out_dir / f"{server_id}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path
