"""Reading result and benchmark files, and deciding which of them the report may use.

Reading (``read_results``, ``read_benchmarks``) is the only impure part: it parses each file and records where
it came from under the ``_origin`` key (``file``, ``mtime``, and ``error`` when it could not be parsed).
Checking (``check_result``) is pure and gives the reason a document is rejected, or ``None``: a file's id is a
catalogue id, or one and its topology (``valkey91-cluster``), and a completed run must record that id's build on
that topology.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from ..catalogue import Entry, in_line
from ..results import certifies
from ..run_id import RunId
from .model import DISTRIBUTION, RESULTS_SCHEMA
from .resources import package_text
from .topology import topology_problem

ORIGIN = "_origin"


def _read_json(path: Path) -> dict[str, Any]:
    origin: dict[str, Any] = {
        "file": path.name,
        "mtime": datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(),
    }
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {ORIGIN: {**origin, "error": f"malformed JSON: {exc}"}}
    if not isinstance(doc, dict):
        return {ORIGIN: {**origin, "error": f"malformed: top level is a JSON {type(doc).__name__}, not an object"}}
    doc[ORIGIN] = origin
    return doc


def read_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` in ``results_dir``, parsed, each with its ``_origin``; unparsable ones included."""
    if not results_dir.is_dir():
        return []
    return [_read_json(path) for path in sorted(results_dir.glob("*.json"))]


def read_benchmarks(benchmarks_dir: Path) -> dict[str, dict[str, Any]]:
    """``<id>.json`` pytest-benchmark files in ``benchmarks_dir`` by id (the file stem).

    ``app.json`` is not one: the app benchmark's figures (``python -m appbench``), read by ``report/app_bench.py``.
    """
    if not benchmarks_dir.is_dir():
        return {}
    return {path.stem: _read_json(path) for path in sorted(benchmarks_dir.glob("*.json")) if path.name != "app.json"}


@cache
def results_schema() -> dict[str, Any]:
    """Return the JSON Schema of result files (``schemas/results-1.schema.json``)."""
    schema: dict[str, Any] = json.loads(package_text("schemas/results-1.schema.json"))
    return schema


def origin_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``_origin`` the reader recorded, or an empty dict for a document built in memory."""
    origin = doc.get(ORIGIN)
    return dict(origin) if isinstance(origin, Mapping) else {}


def check_result(
    doc: Mapping[str, Any], servers: Mapping[str, Entry], handler_version: str | None
) -> tuple[str, str] | None:
    """Why ``doc`` must not be merged, as ``(problem, detail)``, or ``None`` when it may be."""
    origin = origin_of(doc)
    if "error" in origin:
        return "malformed", str(origin["error"])
    if doc.get("schema") != RESULTS_SCHEMA:
        return "foreign_schema", f"schema {doc.get('schema')!r} is not {RESULTS_SCHEMA!r}"
    body = {key: value for key, value in doc.items() if key != ORIGIN}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(results_schema()).iter_errors(body))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        return "invalid", f"{where}: {error.message}"
    handler = doc["handler"]
    if handler["distribution"] != DISTRIBUTION:
        return "foreign_handler", f"written for {handler['distribution']!r}, not {DISTRIBUTION!r}"
    if handler_version is not None and handler["version"] != handler_version:
        return (
            "stale",
            f"written by {DISTRIBUTION} {handler['version']}; the installed version is {handler_version}",
        )
    run_id = RunId.read(doc["server_id"])
    base_id, topology = run_id.base, run_id.topology
    server = servers.get(base_id)
    if server is None:
        of = "" if base_id == doc["server_id"] else f" (a {topology} of {base_id!r})"
        return "unknown_server", f"server id {doc['server_id']!r}{of} is not in the catalogue"
    provenance = doc.get("server")
    if certifies(doc["status"]) and isinstance(provenance, Mapping):
        version = str(provenance.get("version", ""))
        if provenance.get("product") != server.product or not in_line(version, server.line):
            return (
                "mismatch",
                f"{doc['server_id']} is {server.display}.x but the file records "
                f"{provenance.get('product')} {version}",
            )
        problem = topology_problem(server, doc["server_id"], topology, provenance)
        if problem is not None:
            return "mismatch", problem
    return None


def recency_key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    """Order of two files for one id: finished (else started) time, then file time, then file name."""
    origin = origin_of(doc)
    stamp = str(doc.get("finished_at") or doc.get("started_at") or "")
    return _utc(stamp), str(origin.get("mtime", "")), str(origin.get("file", ""))


def _utc(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()
