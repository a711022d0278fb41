"""The migration grid: which reading of ``reports/results/migration.json`` the report uses, and its section.

``select`` keeps the newest usable migration file and says why any other was not used: malformed, of another
shape, written by another ``emmett-valkey`` version (stale), a narrower run (``partial``), or naming an id the
catalogue does not know. ``section`` shows one grid per method, sources as rows and targets as columns, each cell
with its outcome, the server's words and the command that measures it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..catalogue import Entry
from ..migration import METHODS, MIGRATION_OUTCOMES, VARIANTS, rerun_command
from ..results import certifies
from .document import Cell, Para, Pre, Row, Section, Span, Table, cell, line
from .load import origin_of, recency_key
from .model import DISTRIBUTION, InputFile, MigrationCell

FIELDS = ("source", "target", "method", "variant", "outcome", "detail")
SYMBOLS = {"works": "✔ works", "refused": "✘ refused", "partial": "◐ partial"}
STATUS = {"works": "pass", "refused": "fail", "partial": "deviation"}
METHOD_TITLES = {
    "dump_restore": "DUMP on the source, RESTORE with the remaining TTL on the target",
    "rdb_file": "SAVE on the source, the target started on that RDB file",
    "replication": "the target a replica of the source (REPLICAOF), synced, then promoted (REPLICAOF NO ONE)",
}


def check(doc: Mapping[str, Any], servers: Mapping[str, Entry], handler_version: str | None) -> tuple[str, str] | None:
    """Why a migration document must not be used, as ``(problem, detail)``, or ``None``."""
    origin = origin_of(doc)
    if "error" in origin:
        return "malformed", str(origin["error"])
    cells, handler = doc.get("cells"), doc.get("handler")
    if not isinstance(cells, list) or not isinstance(handler, Mapping) or not isinstance(doc.get("status"), str):
        return "invalid", "a migration file needs handler, status and a list of cells"
    for n, c in enumerate(cells):
        if (not isinstance(c, Mapping) or set(c) != set(FIELDS) or c["method"] not in METHODS
                or c["variant"] not in (*VARIANTS, None) or c["outcome"] not in MIGRATION_OUTCOMES
                or not isinstance(c["detail"], str)):
            return "invalid", f"cells/{n}: not a cell of {', '.join(FIELDS)} with known method, variant, outcome"
        unknown = [c[k] for k in ("source", "target") if c[k] not in servers]
        if unknown:
            return "unknown_server", f"cells/{n}: server id {unknown[0]!r} is not in the catalogue"
    if handler.get("distribution") != DISTRIBUTION:
        return "foreign_handler", f"written for {handler.get('distribution')!r}, not {DISTRIBUTION!r}"
    if handler_version is not None and handler.get("version") != handler_version:
        return "stale", (f"written by {DISTRIBUTION} {handler.get('version')}; "
                         f"the installed version is {handler_version}")
    if not certifies(doc["status"]):
        return "partial", f"status {doc['status']!r}: not every cell of the grid ran ({len(cells)} cells)"
    return None


def select(docs: Sequence[Mapping[str, Any]], servers: Mapping[str, Entry],
           handler_version: str | None) -> tuple[tuple[MigrationCell, ...], list[InputFile]]:
    """Return the cells of the newest usable migration file, and what was done with every migration file."""
    inputs, usable = [], []
    for doc in docs:
        name = str(origin_of(doc).get("file") or "migration.json")
        problem = check(doc, servers, handler_version)
        if problem is not None:
            inputs.append(InputFile(name, "migration", None, "rejected", *problem))
        else:
            usable.append((name, doc))
    usable.sort(key=lambda item: recency_key(item[1]), reverse=True)
    for n, (name, _) in enumerate(usable):
        inputs.append(InputFile(name, "migration", None, "accepted", None, None) if n == 0 else
                      InputFile(name, "migration", None, "superseded", "superseded",
                                f"an older run; {usable[0][0]} is newer"))
    if not usable:
        return (), inputs
    order = list(servers)
    cells = sorted((MigrationCell(**{k: c[k] for k in FIELDS}) for c in usable[0][1]["cells"]),
                   key=lambda c: (order.index(c.source), order.index(c.target), METHODS.index(c.method),
                                  c.variant or ""))
    return tuple(cells), inputs


def _cell(cells: Sequence[MigrationCell]) -> Cell:
    lines = []
    for c in cells:
        head = SYMBOLS[c.outcome] + (f" ({c.variant})" if c.variant else "")
        lines.append(line(Span(head, role="outcome", status={"works": "passed", "refused": "failed",
                                                              "partial": "xfailed"}[c.outcome])))
        if c.detail:
            lines.append(line(Span(c.detail, role="beside")))
        lines.append(line(Span(rerun_command(c.source, c.target, c.method, c.variant), role="code")))
    worst = max(cells, key=lambda c: ("works", "partial", "refused").index(c.outcome))
    return Cell(tuple(lines), status=STATUS[worst.outcome], title=worst.outcome)


def section(cells: Sequence[MigrationCell]) -> Section:
    """One grid per method (sources as rows, targets as columns), shown when a migration file was used."""
    ids = list(dict.fromkeys([c.source for c in cells] + [c.target for c in cells]))
    blocks: list[Table | Para | Pre] = [Para(line(
        "Each cell moves a cache written by ValkeyCache and RedisCache (ints, bools, str, bytes, nested pickles, "
        "a 3 MB value, counters, each with a TTL) from the row's server to the column's; it works when ValkeyCache "
        "on the target reads every entry equal with its TTL, the counters count and clear() finds every key. "
        "A target with rdb-version-check (Valkey 8.1+) is measured strict and relaxed."), "legend-text")]
    for method in METHODS:
        by_pair: dict[tuple[str, str], list[MigrationCell]] = {}
        for c in cells:
            if c.method == method:
                by_pair.setdefault((c.source, c.target), []).append(c)
        if not by_pair:
            continue
        header = (cell("source \\ target"), *(cell(Span(i, role="code")) for i in ids))
        rows = tuple(Row((cell(Span(s, role="code")),
                          *(_cell(by_pair[(s, t)]) if (s, t) in by_pair else cell("—", status="not_run")
                            for t in ids))) for s in ids)
        counts = {o: sum(1 for cs in by_pair.values() for c in cs if c.outcome == o) for o in MIGRATION_OUTCOMES}
        caption = f"{method}: {METHOD_TITLES[method]} ({', '.join(f'{n} {o}' for o, n in counts.items())})"
        blocks.append(Table(caption, header, rows, "migration"))
    return Section("migration", "Migration between servers", tuple(blocks))
