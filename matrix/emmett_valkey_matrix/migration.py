"""Migration between servers: the names the migration suite writes and the report reads, and the expected grid.

The suite (``migration/``) moves an Emmett cache from each server id to each other by three :data:`METHODS` and
records one :class:`Cell` per (source, target, method, variant) in ``reports/results/migration.json`` (schema
:data:`MIGRATION_SCHEMA`). What each cell should give is data: ``migration/expected.toml``, one table per rule
(:func:`load_rules`); a cell no rule names is expected to work. Pure: nothing here starts a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .toml import read_toml

MIGRATION_SCHEMA = "emmett-valkey-migration/1"
#: DUMP on the source, RESTORE with the remaining TTL on the target; SAVE on the source, the target started on that
#: file; the target a replica of the source (REPLICAOF), synced, then promoted (REPLICAOF NO ONE)
METHODS = ("dump_restore", "rdb_file", "replication")
MIGRATION_OUTCOMES = ("works", "refused", "partial")
#: a target with the ``rdb-version-check`` setting (Valkey 8.1+) is measured both ways; others have no variant
VARIANTS = ("strict", "relaxed")
NO_VARIANT = "none"  # how expected.toml names the null variant (TOML has no null)
#: the setting that makes a variant, as read back by CONFIG GET on the real servers
VARIANT_SETTING = "rdb-version-check"


class RulesError(ValueError):
    """``expected.toml`` is malformed, or two of its rules claim one cell."""


@dataclass(frozen=True)
class Cell:
    """One measured move."""

    source: str
    target: str
    method: str
    variant: str | None
    outcome: str
    detail: str

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        """(source, target, method, variant)."""
        return self.source, self.target, self.method, self.variant


@dataclass(frozen=True)
class Rule:
    """Cells (sources x targets x methods x variants) expected to give ``outcome``, with ``detail`` in their text."""

    name: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    methods: tuple[str, ...]
    variants: tuple[str, ...]
    outcome: str
    detail: Mapping[str, str]  # method -> text the measured detail must contain ("" for no check)
    explanation: str

    def covers(self, source: str, target: str, method: str, variant: str | None) -> bool:
        """Whether this rule names the cell."""
        return (source in self.sources and target in self.targets and method in self.methods
                and (variant or NO_VARIANT) in self.variants)


def cell_id(source: str, target: str, method: str, variant: str | None) -> str:
    """Pytest id of a cell: ``redis74-valkey91-dump_restore-strict`` (``-k "redis74-valkey91 and dump_restore"``)."""
    return "-".join([source, target, method, *([variant] if variant else [])])


def rerun_command(source: str, target: str, method: str, variant: str | None) -> str:
    """Return the command that measures this one cell again."""
    selector = f"{source}-{target} and {method}" + (f" and {variant}" if variant else "")
    return f'tox -e migration -- -k "{selector}"'


def variants_for(has_setting: bool) -> tuple[str | None, ...]:
    """Variants measured on a target: strict and relaxed where it has ``rdb-version-check``, else only ``None``."""
    return VARIANTS if has_setting else (None,)


def load_rules(path: Path, ids: Iterable[str] | None = None) -> list[Rule]:
    """Read ``expected.toml``; unknown methods, variants, outcomes (or ids, when ``ids`` is given) are errors."""
    known = set(ids) if ids is not None else None
    rules = []
    for name, raw in read_toml(path).items():
        if not isinstance(raw, Mapping):
            raise RulesError(f"{path}: [{name}] is not a table")
        rules.append(_rule(f"{path}: [{name}]", name, raw, known))
    return rules


def _rule(where: str, name: str, raw: Mapping[str, Any], known: set[str] | None) -> Rule:
    allowed = {"sources", "targets", "methods", "variants", "outcome", "detail", "explanation"}
    extra = set(raw) - allowed
    if extra:
        raise RulesError(f"{where}: unknown keys {sorted(extra)}")

    def names(key: str, choices: Iterable[str] | None, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = raw.get(key, default)
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            raise RulesError(f"{where}: {key} must be a non-empty list of strings")
        bad = [v for v in value if choices is not None and v not in set(choices)]
        if bad:
            raise RulesError(f"{where}: {key} names unknown {bad}")
        return tuple(value)

    outcome = raw.get("outcome")
    if outcome not in MIGRATION_OUTCOMES:
        raise RulesError(f"{where}: outcome must be one of {MIGRATION_OUTCOMES}, not {outcome!r}")
    if not isinstance(raw.get("explanation"), str) or not raw["explanation"]:
        raise RulesError(f"{where}: explanation (a string) is required")
    methods = names("methods", METHODS, METHODS)
    detail = raw.get("detail", "")
    if isinstance(detail, str):
        details = dict.fromkeys(methods, detail)
    elif isinstance(detail, Mapping) and all(isinstance(v, str) for v in detail.values()):
        if set(detail) - set(methods):
            extra_methods = sorted(set(detail) - set(methods))
            raise RulesError(f"{where}: detail names methods the rule does not cover: {extra_methods}")
        details = {m: str(detail.get(m, "")) for m in methods}
    else:
        raise RulesError(f"{where}: detail must be a string or a table of method = string")
    return Rule(name, names("sources", known), names("targets", known), methods,
                names("variants", (*VARIANTS, NO_VARIANT), (*VARIANTS, NO_VARIANT)), str(outcome), details,
                str(raw["explanation"]))


def expected(rules: Iterable[Rule], source: str, target: str, method: str, variant: str | None) -> Rule | None:
    """Return the one rule that names this cell, or ``None`` (the cell is expected to work); two rules are an error."""
    found = [rule for rule in rules if rule.covers(source, target, method, variant)]
    if len(found) > 1:
        raise RulesError(f"{cell_id(source, target, method, variant)} is claimed by "
                         f"{', '.join(r.name for r in found)}")
    return found[0] if found else None


def difference(rules: Iterable[Rule], cell: Cell) -> str | None:
    """Why the measured ``cell`` differs from what the rules expect, or ``None`` when it agrees."""
    rule = expected(rules, *cell.key)
    want = rule.outcome if rule else "works"
    if cell.outcome != want:
        because = f" (rule [{rule.name}])" if rule else " (no rule names it)"
        return f"expected {want}{because}, measured {cell.outcome}: {cell.detail}"
    text = rule.detail.get(cell.method, "") if rule else ""
    if text and text not in cell.detail:
        return f"rule [{rule.name}] expects {text!r} in the detail, measured: {cell.detail}"  # type: ignore[union-attr]
    return None


#: the letter of each method in the guide's table
METHOD_LETTERS = {"dump_restore": "D", "rdb_file": "F", "replication": "R"}
GRID_START, GRID_END = "<!-- migration-grid:start -->", "<!-- migration-grid:end -->"


def has_variant_setting(product: str, line: str) -> bool:
    """Whether a server line has ``rdb-version-check`` (Valkey 8.1 and later; the suite checks it by CONFIG GET)."""
    parts = tuple(int(p) for p in line.split(".") if p.isdigit())
    return product == "valkey" and parts >= (8, 1)


def guide_table(ids: list[str], outcome: Callable[[str, str, str, str | None], str],
                with_setting: Iterable[str]) -> list[str]:
    """Return the guide's Markdown table: per source (row) and target (column) the methods that work.

    ``D`` DUMP/RESTORE, ``F`` RDB file, ``R`` replication, as the target runs by default (strict where it has
    ``rdb-version-check``); ``relaxed: ...`` the methods that work only with ``rdb-version-check relaxed``;
    ``✘`` none. ``outcome(source, target, method, variant)`` gives a cell's outcome (measured, or expected).
    """
    setting = set(with_setting)
    lines = ["| from \\ to | " + " | ".join(f"`{t}`" for t in ids) + " |", "|---" * (len(ids) + 1) + "|"]
    for s in ids:
        row = []
        for t in ids:
            default = "strict" if t in setting else None
            works = [m for m in METHODS if outcome(s, t, m, default) == "works"]
            relaxed = [m for m in METHODS if t in setting and m not in works and outcome(s, t, m, "relaxed") == "works"]
            text = " ".join(METHOD_LETTERS[m] for m in works) or "✘"
            if relaxed:
                text += " · relaxed: " + " ".join(METHOD_LETTERS[m] for m in relaxed)
            row.append(text)
        lines.append(f"| `{s}` | " + " | ".join(row) + " |")
    return lines


def expected_outcome(rules: Iterable[Rule]) -> Callable[[str, str, str, str | None], str]:
    """``outcome`` for :func:`guide_table` from the rules: a rule's outcome, else ``works``."""
    kept = list(rules)

    def outcome(source: str, target: str, method: str, variant: str | None) -> str:
        rule = expected(kept, source, target, method, variant)
        return rule.outcome if rule else "works"

    return outcome
