"""Words, symbols and number formats shared by the Markdown and HTML renderers.

Every state is shown as a symbol *and* a word or count, never by colour alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..bench import FIGURES
from ..run_id import RunId, Topology
from ..targets import LATENCY_P99, MS, SPEEDUP, Target
from .model import (
    CERTIFIED,
    CERTIFIED_WITH_DEVIATIONS,
    FAILED,
    NOT_RUN,
    PARTIAL,
    VERDICT_LABELS,
    BenchmarkRun,
    ClusterInfo,
    Column,
    Counts,
    Headline,
    InputFile,
    Provenance,
    RatioRow,
    Report,
)
from .perf import OP_LABELS

SHORT_VERDICTS = {
    CERTIFIED: "certified",
    CERTIFIED_WITH_DEVIATIONS: "deviations",
    FAILED: "failed",
    PARTIAL: "partial",
    NOT_RUN: "not run",
}
VERDICT_SYMBOLS = {CERTIFIED: "✔", CERTIFIED_WITH_DEVIATIONS: "◐", FAILED: "✘", PARTIAL: "◔", NOT_RUN: "○"}

# outcome -> (symbol, word); order is the order shown in a cell
OUTCOME_SYMBOLS = {
    "failed": ("✘", "failed"),
    "error": ("⚠", "error"),
    "passed": ("✔", "passed"),
    "xfailed": ("≈", "xfailed: listed deviation occurred"),
    "xpassed": ("↑", "xpassed: listed deviation did not occur"),
    "skipped": ("⊘", "skipped"),
}
STATE_WORDS = {
    "pass": "all passed",
    "fail": "failures",
    "deviation": "listed deviations",
    "skip": "skipped only",
    "empty": "no tests",
    "not_run": "not run",
}
SUITE_LABELS = {"async_": "async", "pattern_clear": "pattern clear"}
HANDLER_ROLES = {"ValkeyCache": "ours", "RedisCache": "baseline"}


def counts_short(counts: Counts | None, *, not_run: bool = False) -> str:
    """``✔ 21 · ⊘ 1``: each non-zero outcome as symbol and count; ``—`` for none, ``○ not run`` when not run."""
    if counts is None:
        return "○ not run" if not_run else "—"
    parts = [f"{sym} {getattr(counts, o)}" for o, (sym, _) in OUTCOME_SYMBOLS.items() if getattr(counts, o)]
    return " · ".join(parts) or "—"


def counts_long(counts: Counts | None) -> str:
    """``21 passed, 1 skipped``, for titles and screen readers."""
    if counts is None:
        return "not run"
    parts = [f"{getattr(counts, o)} {o}" for o in OUTCOME_SYMBOLS if getattr(counts, o)]
    return ", ".join(parts) or "no tests"


def legend() -> str:
    """One line that explains every symbol."""
    return " · ".join(f"{sym} {word}" for sym, word in OUTCOME_SYMBOLS.values()) + " · — no tests in this suite"


def suite_label(suite: str) -> str:
    """Display name of a suite marker."""
    return SUITE_LABELS.get(suite, suite)


def ms(value: float | None) -> str:
    """Milliseconds with up to three significant decimals, or ``—``."""
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def latency_expectations() -> str:
    """``GET and SET under 1 ms, pattern clear under 10 ms``: the p99 bounds of ``targets.LATENCY_P99``."""
    by_limit: dict[float, list[str]] = {}
    for op, target in LATENCY_P99.items():
        by_limit.setdefault(target.limit, []).append(OP_LABELS[op])
    return ", ".join(f"{' and '.join(names)} under {ms(limit)} ms" for limit, names in by_limit.items())


def column_of(report: Report, server_id: str) -> Column:
    """Return the column with this id."""
    return next(c for c in report.columns if c.id == server_id)


# -- topologies: a catalogued server standalone, and a local cluster of its build -----------------------------

CLUSTER_SHAPE = "a local cluster of the same build (its nodes and slots under Provenance)"
NO_CLUSTER_RUN = (
    "No server has run on a cluster yet: tox -e <id>-cluster certifies one (writing "
    "reports/results/<id>-cluster.json), and until then every cluster verdict above is ○ not run."
)


def standalone(report: Report) -> list[Column]:
    """Return the standalone columns, one per catalogue id, in catalogue order."""
    return [c for c in report.columns if c.topology == Topology.STANDALONE]


def cluster_of(report: Report, column: Column) -> Column:
    """Return the cluster column of the same catalogue id as ``column``."""
    return column_of(report, str(RunId(column.base_id, Topology.CLUSTER)))


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def cluster_shape(info: ClusterInfo) -> str:
    """``3 primaries, 3 replicas`` (``1 primary, 1 replica``)."""
    return f"{_count(info.primaries, 'primary', 'primaries')}, {_count(info.replicas, 'replica', 'replicas')}"


def topology_text(p: Provenance) -> str:
    """``standalone``, or ``cluster: 3 primaries, 3 replicas``."""
    return p.topology if p.cluster is None else f"{p.topology}: {cluster_shape(p.cluster)}"


def short_node_id(node_id: str | None) -> str:
    """Shorten a node id (40 hex digits, as ``CLUSTER NODES`` prints it) to its first 10, or ``?``."""
    return node_id[:10] if node_id else "?"


def address(host: str | None, port: int | None) -> str | None:
    """``127.0.0.1:23001``, ``:23001`` when the host is not recorded, or ``None``."""
    return None if port is None else f"{host or ''}:{port}"


def slot_ranges(slots: Sequence[tuple[int, int]]) -> str:
    """``0-5460 (5461 slots)`` (with an en dash); several ranges comma-separated; ``—`` for none (a replica)."""
    if not slots:
        return "—"
    total = sum(end - start + 1 for start, end in slots)
    ranges = ", ".join(str(start) if start == end else f"{start}{DASH}{end}" for start, end in slots)
    return f"{ranges} ({total} slot{'' if total == 1 else 's'})"


def replica_of_text(primary: str | None, ports: dict[str, int | None]) -> str:
    """Name a replica's primary as ``a1b2c3d4e5 (:23001)``, or ``—``."""
    if not primary:
        return "—"
    port = ports.get(primary)
    return short_node_id(primary) + (f" (:{port})" if port is not None else "")


def machines_note(report: Report) -> str | None:
    """When the columns' result files come from more than one machine: which, and what that means; else None."""
    if len(report.machines) < 2:
        return None
    parts = []
    for m in report.machines:
        about = ", ".join(x for x in (m.platform, f"{m.cpus} CPUs" if m.cpus else None,
                                      f"Python {m.python}" if m.python else None) if x)
        parts.append(f"{m.name} ({about or 'no environment recorded'}): {', '.join(m.columns)}")
    return (f"The result files come from {len(report.machines)} machines: " + "; ".join(parts) + ". Latency "
            "figures and durations compare the machines as much as the servers: compare them only between columns "
            "of one machine.")


def input_status(item: InputFile) -> str:
    """``rejected: stale`` or ``superseded``."""
    return item.status if item.problem in (None, item.status) else f"{item.status}: {item.problem}"


def at_a_glance(report: Report) -> str:
    """One line: which servers fall under each verdict, e.g. ``✔ certified: Valkey 9.1.2 · ✘ failed: ...``."""
    parts = []
    for code, label in VERDICT_LABELS.items():
        names = [c.label for c in report.columns if c.verdict.code == code]
        if names:
            parts.append(f"{VERDICT_SYMBOLS[code]} {label}: {', '.join(names)}")
    return " · ".join(parts)


# benchmark figures: status -> (symbol, word); never colour alone
RATIO_MARKS = {
    "met": ("✔", "met"),
    "missed": ("✘", "missed"),
    "not_judged": ("○", "not judged"),
    "no_target": ("", "no target"),
    "not_measured": ("—", "not measured"),
}
BENCH_STATUS = {
    "missing": "no benchmark file",
    "rejected": "benchmark file rejected (see the inputs)",
    "no_figures": "no paired figures in its benchmark file",
}
_OPS = {"<=": "≤", ">=": "≥", "<": "<"}
TIMES = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"


def figure(value: float | None, unit: str) -> str:
    """Format a benchmark figure: ``1.082`` (ratio), ``22.5`` and a times sign (speed-up), ``28.4 ms``."""
    if value is None:
        return "—"
    if unit == MS:
        return f"{ms(value)} ms"
    if unit == SPEEDUP:
        return f"{value:.1f}{TIMES}" if value >= 10 else f"{value:.2f}{TIMES}"
    return f"{value:.3f}"


def spread(q1: float | None, q3: float | None, unit: str) -> str:
    """Interquartile range of a paired figure, ``1.072-1.091`` (with an en dash), or empty."""
    if q1 is None or q3 is None:
        return ""
    return f"{figure(q1, unit)}{DASH}{figure(q3, unit)}"


def target_text(target: Target | None, unit: str) -> str:
    """``<= 1.05`` -> ``≤ 1.05``; ``>= 30`` -> ``≥ 30`` and a times sign; ``< 5`` -> ``< 5 ms``; ``1 ± 0.02``."""
    if target is None:
        return "—"
    if target.op not in _OPS:
        return str(target)
    suffix = {MS: " ms", SPEEDUP: TIMES}.get(unit, "")
    return f"{_OPS[target.op]} {target.limit:g}{suffix}"


def beside_label(row: RatioRow) -> str:
    """Name what a row's ``beside`` figure is (``KEYS+DEL``), from the figure's kind."""
    return FIGURES[row.key].beside or "beside"


def mark(status: str) -> str:
    """``✔ met``, ``✘ missed``, ``○ not judged``, ``no target``, ``— not measured``."""
    symbol, word = RATIO_MARKS[status]
    return f"{symbol} {word}".strip()


def run_size(size: str | None) -> str:
    """How a benchmark run's figures are to be read."""
    if size == "full":
        return "full-size run: figures judged against their targets"
    if size == "check":
        return "check-size run (--benchmark-disable): figures shown, not judged"
    return "run size unknown"


def run_tally(run: BenchmarkRun) -> str:
    """``14 met · 15 missed`` (or ``20 not judged``) over a run's figures that have a target."""
    parts = [
        f"{n} {RATIO_MARKS[s][1]}"
        for s, n in (("met", run.met), ("missed", run.missed), ("not_judged", run.not_judged))
        if n
    ]
    return " · ".join(parts) or "no figure with a target"


def headline_tally(headlines: Sequence[Headline], index: int) -> str:
    """For the ``index``-th server of the headline table: ``✔ 7 met · ✘ 6 missed of 13``."""
    statuses = [h.cells[index].status for h in headlines]
    parts = [
        f"{mark(s)}: {statuses.count(s)}" for s in ("met", "missed", "not_judged", "not_measured") if statuses.count(s)
    ]
    return " · ".join(parts)


BENCH_FILES = "reports/benchmarks/<id>.json"
BENCH_INTRO = (
    f"Paired medians from pytest-benchmark ({BENCH_FILES}): ours and the other side measured in "
    "alternating A, B, B, A blocks; a ratio is time of ours / time of the other side (below 1: ours is faster), "
    "a speed-up how many times faster. Headline figures show the worst case of a server; "
    "✔ met · ✘ missed · ○ not judged (check-size run) · — not measured."
)


def without_figures(report: Report) -> list[tuple[str, list[str]]]:
    """Servers without benchmark figures, grouped by why: ``[("missing", [ids...]), ...]``."""
    groups: dict[str, list[str]] = {}
    for run in report.benchmark_runs:
        if run.status != "figures":
            groups.setdefault(run.status, []).append(run.server_id)
    return [(status, groups[status]) for status in BENCH_STATUS if status in groups]


def reason_first_line(reason: str) -> str:
    """Return a verdict reason's first line, pointing below when there is more (the ways to provide a server)."""
    first, _, rest = reason.strip().partition("\n")
    return f"{first} (details below)" if rest.strip() else first


def long_reasons(columns: Sequence[Column]) -> list[tuple[Column, str]]:
    """Columns whose verdict reason runs to several lines, with that reason."""
    return [(c, c.verdict.reason.strip()) for c in columns if "\n" in c.verdict.reason.strip()]
