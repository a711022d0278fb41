"""The report as a JSON document (``emmett-valkey-report/1``, ``schemas/report-1.schema.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .model import Report


def report_dict(report: Report) -> dict[str, Any]:
    """Return the report as plain JSON data, ``schema`` first."""
    data = asdict(report)
    # "benchmarks" (separate median ops/s rows) is no longer produced; /1 requires it, so it stays, empty
    return {"schema": data.pop("schema"), **data, "benchmarks": []}


def render_json(report: Report) -> str:
    """Serialise the report: stable key order, two-space indent, UTF-8 text, trailing newline."""
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
