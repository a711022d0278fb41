"""A pytest plugin that writes one result file per server: ``reports/results/<id>.json``.

The file (schema ``emmett-valkey-results/1``, see ``matrix/README.md``) is the only input of the report. It runs in
the controlling process, so under pytest-xdist it sees every worker's reports.

Only a whole certification is written as ``<id>.json``: every test of ``certification/`` collected for the server,
none deselected (``-k``, ``-m``, ``--deselect``, a node id or a file), and every one of them run (no ``-x`` stop, no
interruption, no collection error). Anything less is an *attempt* and goes to ``<id>.attempt.json`` with status
``partial`` ("ran N of M tests", and why), ``not_run`` or ``refused``: it never replaces a completed certification,
and the report shows it beside one. A completed run removes the attempt it supersedes.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix.contract import DISTRIBUTION, OUTCOMES, RESULTS_SCHEMA
from emmett_valkey_matrix.results import COMPLETED, NOT_RUN, PARTIAL, certifies, result_name

CERTIFICATION = Path(__file__).resolve().parent
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
        "host": platform.node() or None,  # which machine: result files from several are merged into one report
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
        self.selected: set[str] = set()  # node ids of the certification's tests this session is to run
        self.deselected = 0  # certification tests collected, then deselected (-k, -m, --deselect, ...)
        self.collect_errors = 0
        self.exitstatus: int | None = None

    # -- what this session set out to run ------------------------------------------------------------------------

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and _in_certification(report.nodeid):
            self.collect_errors += 1

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += sum(1 for item in items if _in_certification(item.nodeid))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected |= {item.nodeid for item in session.items if _in_certification(item.nodeid)}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the workers collect (and deselect); the controller learns what they will run here."""
        self.selected |= {nodeid for nodeid in ids if _in_certification(nodeid)}

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.exitstatus = int(exitstatus)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for path in self.write():
            if reporter is not None:
                reporter.write_line(f"results: {path}")

    def partial_reasons(self) -> list[str]:
        """Why this session is not a whole certification (empty when it is one)."""
        why = []
        narrowed = _narrowing_args(self.config)
        if narrowed:
            why.append("a selection of tests: " + " ".join(narrowed))
        options = _deselecting_options(self.config)
        if self.deselected or options:
            count = f"{self.deselected} tests deselected" if self.deselected else "tests deselected"
            why.append(f"{count} ({options or 'by a plugin'})")
        if self.collect_errors:
            why.append(f"{self.collect_errors} test modules failed to collect")
        not_run = len(self.selected - self.tests.keys())
        if not_run:
            stop = " (-x / --maxfail stopped it)" if self.config.getoption("maxfail", 0) else ""
            why.append(f"{not_run} selected tests did not run{stop}")
        if self.exitstatus == pytest.ExitCode.INTERRUPTED:
            why.append("the session was interrupted")
        return why

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

    def write(self) -> list[Path]:
        """Write each server's file: ``<id>.json`` for a whole certification, else ``<id>.attempt.json``."""
        why = self.partial_reasons()
        written = []
        narrowed = bool(_narrowing_args(self.config) or _deselecting_options(self.config) or self.deselected)
        for server_id, info in self.pool.infos.items():
            tests = [dict(t) for t in self.tests.values() if t["server"] in (server_id, "*")]
            for t in tests:
                if t.pop("server") == "*":
                    t["rerun"] = f"tox -e {server_id} -- {shlex.quote(t['nodeid'])}"
            tests.sort(key=lambda t: t["nodeid"])
            doc = document(server_id, PARTIAL if why else COMPLETED, "; ".join(why) or None,
                           started_at=self.started_at, duration_s=time.monotonic() - self.t0,
                           server=info.provenance, tests=tests, latency=self.latency.get(server_id, {}),
                           deviations=self.deviations)
            if why:
                if narrowed or self.collect_errors:  # the whole certification is more than this session selected
                    whole = full_count(self.config, server_id)
                else:
                    whole = sum(1 for nodeid in self.selected if _for_server(nodeid, server_id, self.pool.infos))
                doc["selection"] = {"ran": len(tests), "of": whole, "why": why}
            written.append(write_result(self.out_dir, doc))
        return written


def _in_certification(nodeid: str) -> bool:
    return nodeid.split("::")[0].startswith("certification/")


def _for_server(nodeid: str, server_id: str, ids: Any) -> bool:
    """Whether a test runs for *server_id*: its parameters name that server, or no server of the session at all."""
    text = nodeid.rpartition("[")[2].rstrip("]") if nodeid.endswith("]") else ""
    named = {i for i in ids if re.search(rf"(?:^|-){re.escape(i)}(?:-|$)", text)}
    named -= {i for i in named for longer in named if longer != i and longer.startswith(i + "-")}  # valkey91-cluster
    return not named or server_id in named


def _narrowing_args(config: pytest.Config) -> list[str]:
    """The command-line paths and node ids that select part of ``certification/`` rather than all of it."""
    root = Path(str(config.invocation_params.dir))
    covering, inside = False, []
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else root / path).resolve()
        if "::" not in arg and (path == CERTIFICATION or path in CERTIFICATION.parents):
            covering = True
        elif path == CERTIFICATION or CERTIFICATION in path.parents:
            inside.append(arg)
    ignored = [str(p) for p in (config.getoption("ignore") or []) + (config.getoption("ignore_glob") or [])]
    return ([] if covering else inside) + [f"--ignore {p}" for p in ignored]


def _deselecting_options(config: pytest.Config) -> str:
    parts = [f"-k {config.option.keyword!r}"] if config.option.keyword else []
    parts += [f"-m {config.option.markexpr!r}"] if config.option.markexpr else []
    parts += [f"--deselect {d}" for d in (config.getoption("deselect") or [])]
    return ", ".join(parts)


def full_count(config: pytest.Config, server_id: str) -> int | None:
    """How many tests the whole certification of *server_id* has (a collect-only session; None if it fails)."""
    root = Path(str(config.rootpath))
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
               str(CERTIFICATION), "--server", server_id, "--no-results"]
    try:
        out = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"^(\d+) tests? collected", out.stdout, re.M)
    return int(found.group(1)) if found and out.returncode == 0 else None


def result_path(out_dir: Path, server_id: str, status: str) -> Path:
    """``<id>.json`` for a completed certification, ``<id>.attempt.json`` for anything less (``results.STATUSES``)."""
    return out_dir / result_name(server_id, status)


def write_result(out_dir: Path, doc: dict[str, Any]) -> Path:
    """Write *doc* atomically where its status belongs; a completed certification removes the attempt it supersedes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = result_path(out_dir, doc["server_id"], doc["status"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    if certifies(doc["status"]):
        result_path(out_dir, doc["server_id"], PARTIAL).unlink(missing_ok=True)
    return path


def document(server_id: str, status: str, reason: str | None, *, started_at: str | None = None,
             duration_s: float = 0.0, server: dict[str, Any] | None = None, tests: list[dict[str, Any]] | None = None,
             latency: dict[str, Any] | None = None, deviations: dict[str, str] | None = None) -> dict[str, Any]:
    """One result file's document (schema ``emmett-valkey-results/1``), its summary counted from *tests*."""
    tests = tests or []
    summary = dict.fromkeys(OUTCOMES, 0)
    for test in tests:
        summary[test["outcome"]] += 1
    return {
        "schema": RESULTS_SCHEMA,
        "handler": {"distribution": DISTRIBUTION, "version": package_versions()[DISTRIBUTION]},
        "server_id": server_id,
        "status": status,
        "reason": reason,
        "started_at": started_at or _now(),
        "finished_at": _now(),
        "duration_s": round(duration_s, 3),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "environment": environment(),
        "server": server,
        "tests": tests,
        "latency": latency or {},
        "deviations": deviations or {},
        "summary": summary,
    }


def write_not_run(out_dir: Path, server_id: str, reason: str, status: str = NOT_RUN) -> Path:
    """Record an attempt that started no certification, and why.

    ``not_run``: no source of the server resolves here; ``refused``: the server given is not the one the id names.
    It never replaces a completed result.
    """
    return write_result(out_dir, document(server_id, status, reason))
