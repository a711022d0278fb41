"""The migration grid: expected.toml's rules, the report's reading of migration.json, and the guide's table."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix import load_catalogue
from emmett_valkey_matrix.migration import (
    GRID_END,
    GRID_START,
    Cell,
    RulesError,
    cell_id,
    difference,
    expected_outcome,
    guide_table,
    has_variant_setting,
    load_rules,
    rerun_command,
)
from emmett_valkey_matrix.report import build_report
from emmett_valkey_matrix.report.html import render_html
from emmett_valkey_matrix.report.jsondoc import report_dict
from emmett_valkey_matrix.report.load import read_results
from emmett_valkey_matrix.report.markdown import render_markdown

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "migration"
EXPECTED = ROOT / "migration" / "expected.toml"
NOW = "2026-12-02T14:00:00Z"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    """Return a migration.json measured by tox -e migration on nine servers."""
    return json.loads((DATA / "migration.json").read_text("utf-8"))


def _build(docs: list[dict[str, Any]], version: str | None = "0.1.0") -> Any:
    return build_report(docs, None, None, generated_at=NOW, handler_version=version)


def test_recorded_grid_agrees_with_expected_toml(recorded: dict[str, Any]) -> None:
    """Every cell of the recorded run is what expected.toml states (the suite's own comparison, without servers)."""
    rules = load_rules(EXPECTED, load_catalogue())
    problems = [difference(rules, Cell(**c)) for c in recorded["cells"]]
    assert [p for p in problems if p] == []
    assert len(recorded["cells"]) == 324


def test_a_changed_cell_is_a_difference(recorded: dict[str, Any]) -> None:
    """A cell measured otherwise than its rule says (or than works, where no rule names it) is reported."""
    rules = load_rules(EXPECTED, load_catalogue())
    works = Cell("redis72", "valkey91", "dump_restore", "strict", "refused", "DUMP payload version or checksum wrong")
    assert "expected works (no rule names it)" in str(difference(rules, works))
    refused = Cell("redis74", "valkey80", "rdb_file", None, "works", "")
    assert "rule [redis74_rdb12_to_rdb11_readers]" in str(difference(rules, refused))
    other_words = Cell("redis74", "valkey80", "dump_restore", None, "refused", "ERR something else")
    assert "expects 'DUMP payload version or checksum are wrong'" in str(difference(rules, other_words))


@pytest.mark.parametrize(("body", "message"), [
    ('[a]\nsources = ["redis62"]\ntargets = ["nope"]\noutcome = "refused"\nexplanation = "x"', "unknown ['nope']"),
    ('[a]\nsources = ["redis62"]\ntargets = ["redis70"]\noutcome = "broken"\nexplanation = "x"', "outcome must be"),
    ('[a]\nsources = ["redis62"]\ntargets = ["redis70"]\noutcome = "refused"', "explanation"),
    ('[a]\nsources = ["redis62"]\ntargets = ["redis70"]\nmethods = ["scp"]\noutcome = "refused"\nexplanation = "x"',
     "unknown ['scp']"),
    ('[a]\nsources = ["redis62"]\ntargets = ["redis70"]\noutcome = "refused"\nexplanation = "x"\nwhy = 1',
     "unknown keys"),
])
def test_malformed_rules_are_refused(tmp_path: Path, body: str, message: str) -> None:
    """A rule with an unknown id, method, outcome or key, or without explanation, stops the run with its name."""
    path = tmp_path / "expected.toml"
    path.write_text(body)
    with pytest.raises(RulesError, match=re.escape(message)):
        load_rules(path, load_catalogue())


def test_two_rules_for_one_cell_are_an_error(tmp_path: Path) -> None:
    """A cell claimed by two rules is an error naming both, not a silent first match."""
    rule = 'sources = ["redis74"]\ntargets = ["valkey80"]\noutcome = "refused"\nexplanation = "x"\n'
    path = tmp_path / "expected.toml"
    path.write_text(f"[one]\n{rule}[two]\n{rule}")
    with pytest.raises(RulesError, match="one, two"):
        difference(load_rules(path), Cell("redis74", "valkey80", "rdb_file", None, "refused", ""))


def test_report_renders_a_grid_per_method(recorded: dict[str, Any]) -> None:
    """Markdown and HTML show one grid per method, sources as rows, with each cell's words and rerun command."""
    report = _build([copy.deepcopy(recorded)])
    md, html = render_markdown(report), render_html(report)
    assert "## Migration between servers" in md
    for method in ("dump_restore", "rdb_file", "replication"):
        escaped = method.replace("_", "\\\\_")  # Markdown escapes the underscore
        assert re.search(rf"^{escaped}: .* \(\d+ works, \d+ refused, 0 partial\)$", md, re.M)
    assert 'tox -e migration -- -k "redis74-valkey91 and dump_restore and strict"' in md
    assert "DUMP payload version or checksum are wrong" in md
    assert html.count('id="migration"') == 1 and "Can&#x27;t handle RDB format version 12" in html


def test_json_has_the_migration_list_exactly(recorded: dict[str, Any]) -> None:
    """compatibility.json has a top-level "migration" list of the six fields, one per measured cell."""
    data = report_dict(_build([copy.deepcopy(recorded)]))
    assert len(data["migration"]) == len(recorded["cells"])
    assert {tuple(c) for c in data["migration"]} == {("source", "target", "method", "variant", "outcome", "detail")}
    cell = next(c for c in data["migration"] if (c["source"], c["target"], c["method"], c["variant"])
                == ("redis74", "valkey91", "rdb_file", "relaxed"))
    assert cell == {"source": "redis74", "target": "valkey91", "method": "rdb_file", "variant": "relaxed",
                    "outcome": "works", "detail": ""}
    assert data["inputs"][-1]["kind"] == "migration" and data["inputs"][-1]["status"] == "accepted"


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d.update(status="partial"), "partial"),
    (lambda d: d["handler"].update(version="0.0.9"), "stale"),
    (lambda d: d["cells"][0].update(outcome="maybe"), "invalid"),
    (lambda d: d["cells"][0].update(target="redis99"), "unknown_server"),
])
def test_partial_stale_or_invalid_migration_files_are_refused(recorded: dict[str, Any], change: Any,
                                                                problem: str) -> None:
    """A partial, stale or malformed migration.json is listed as rejected and its cells are not shown."""
    doc = copy.deepcopy(recorded)
    change(doc)
    report = _build([doc])
    assert report.migration == ()
    assert [(i.kind, i.status, i.problem) for i in report.inputs] == [("migration", "rejected", problem)]
    assert "## Migration between servers" not in render_markdown(report)


def test_attempt_file_beside_the_grid_is_refused(tmp_path: Path, recorded: dict[str, Any]) -> None:
    """Read from a results directory: migration.json is used, the narrower migration.attempt.json beside it refused."""
    (tmp_path / "migration.json").write_text(json.dumps(recorded))
    (tmp_path / "migration.attempt.json").write_text(json.dumps({**recorded, "status": "partial"}))
    report = _build(read_results(tmp_path))
    assert len(report.migration) == 324
    assert sorted((i.file, i.status) for i in report.inputs) == [("migration.attempt.json", "rejected"),
                                                                  ("migration.json", "accepted")]


def test_rerun_command_selects_exactly_its_cell() -> None:
    """The -k expression of a cell's rerun command matches its own test id and no other id of the grid."""
    ids = [i for i in load_catalogue() if i != "valkey72"]
    cells = [(s, t, m, v) for s in ids for t in ids for m in ("dump_restore", "rdb_file", "replication")
             for v in (("strict", "relaxed") if t in ("valkey81", "valkey90", "valkey91") else (None,))]
    names = {cell_id(*c) for c in cells}
    for cell in cells[::7]:
        expression = shlex.split(rerun_command(*cell))[-1]
        words = expression.split(" and ")
        assert [n for n in names if all(w in n for w in words)] == [cell_id(*cell)]


def test_guide_table_agrees_with_expected_toml() -> None:
    """The table of docs/migration.md is the one expected.toml (checked against real runs) gives."""
    catalogue = load_catalogue()
    guide = (ROOT / "docs" / "migration.md").read_text("utf-8")
    table = guide[guide.index(GRID_START) + len(GRID_START):guide.index(GRID_END)].strip().splitlines()
    ids = re.findall(r"`(\w+)`", table[0])
    setting = [i for i in ids if has_variant_setting(catalogue[i].product, catalogue[i].line)]
    assert setting == ["valkey81", "valkey90", "valkey91"]
    assert table == guide_table(ids, expected_outcome(load_rules(EXPECTED, catalogue)), setting)
