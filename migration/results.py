"""``reports/results/migration.json``: the measured grid, with the provenance of every server.

Schema ``emmett-valkey-migration/1``; ``status`` is ``completed`` only when every cell of the grid ran.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emmett_valkey_matrix.contract import DISTRIBUTION
from emmett_valkey_matrix.migration import METHODS, MIGRATION_SCHEMA
from emmett_valkey_matrix.results import COMPLETED, PARTIAL, result_name

from certification.results import _now, environment, package_versions
from migration.dataset import TTL_TOLERANCE_S


def write_migration(out_dir: Path, grid: Any, command: list[str]) -> Path:
    """Write the grid's cells (``partial`` unless every cell ran) atomically; return the path."""
    complete = len({c.key for c in grid.cells}) == grid.expected_count
    doc = {
        "schema": MIGRATION_SCHEMA,
        "handler": {"distribution": DISTRIBUTION, "version": package_versions()[DISTRIBUTION]},
        "status": COMPLETED if complete else PARTIAL,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(grid.started)),
        "finished_at": _now(),
        "duration_s": round(time.time() - grid.started, 3),
        "command": command,
        "environment": environment(),
        "methods": list(METHODS),
        "ttl_tolerance_s": TTL_TOLERANCE_S,
        "servers": grid.provenance,
        "not_available": grid.not_available,
        "cells": [asdict(c) for c in sorted(grid.cells, key=lambda c: (c.source, c.target, c.method,
                                                                          c.variant or ""))],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # a narrower run (-k) never replaces the whole grid: it is kept beside it, and the report refuses it
    path = out_dir / result_name("migration", doc["status"])
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path
