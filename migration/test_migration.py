"""Every ordered pair of servers, by every method: the measured outcome must be the one ``expected.toml`` states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix.migration import Cell, difference

from migration import moves

METHOD = {"dump_restore": moves.dump_restore, "rdb_file": moves.rdb_file, "replication": moves.replication}


def test_cell(cell: tuple[str, str, str, str | None], grid: Any, rules: Any, tmp_path: Path) -> None:
    """Moving the cache from source to target by this method gives the outcome expected.toml states for the cell."""
    source_id, target_id, method, variant = cell
    source = grid.source(source_id)
    outcome, details = METHOD[method](source, grid.resolved[target_id], variant, tmp_path / "target")
    measured = Cell(source_id, target_id, method, variant, outcome, "; ".join(details))
    grid.cells.append(measured)
    problem = difference(rules, measured)
    if problem:
        pytest.fail(problem, pytrace=False)
