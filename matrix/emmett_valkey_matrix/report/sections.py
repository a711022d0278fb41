"""The report's sections, built once from a ``Report``: every title, caption, header, row and note of both documents.

``document(report)`` is what ``markdown.py`` and ``html.py`` format; words and number formats come from ``text.py``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from itertools import groupby

from ..run_id import Topology
from . import migration
from . import text as t
from .document import (
    Cell,
    Charts,
    Details,
    Document,
    Glance,
    Para,
    Part,
    Pre,
    Row,
    Section,
    Span,
    Table,
    cell,
    line,
)
from .model import (
    BASELINE,
    OURS,
    BenchmarkRun,
    Column,
    Failure,
    Headline,
    HeadlineCell,
    InputFile,
    OpLatency,
    RatioRow,
    Report,
)
from .model import Cell as GridCell
from .perf import OP_LABELS, OPS

TITLE = "emmett-valkey compatibility report"
PACKAGE_LABELS = {"valkey": "valkey-py", "redis": "redis-py"}


def _header(*names: str) -> tuple[Cell, ...]:
    return tuple(cell(name) for name in names)


def server(column: Column, href: str = "") -> tuple[Span, Span]:
    """Name a server: its label (linking to ``href``), then its id."""
    return Span(column.label, href=href), Span(column.id, role="id")


def badge(column: Column, *, short: bool = False) -> Span:
    """Show a server's verdict: ``✔ certified`` (``short``: ``◐ deviations``), its full label as the title."""
    words = t.SHORT_VERDICTS[column.verdict.code] if short else column.verdict.label
    symbol = t.VERDICT_SYMBOLS[column.verdict.code]
    return Span(f"{symbol} {words}", role="badge", status=column.verdict.code, title=column.verdict.label)


def _handler(handler: str) -> tuple[Span, Span]:
    return Span(handler), Span(t.HANDLER_ROLES[handler], role="aside")


def _mark(status: str) -> Span:
    return Span(t.mark(status), role="mark", status=status)


def _verdict_cells(c: Column) -> tuple[Cell, ...]:
    return cell(badge(c)), cell(t.reason_first_line(c.verdict.reason)), cell(t.counts_short(c.ours))


def _verdicts(report: Report) -> Section:
    rows = tuple(
        Row(
            (
                cell(*server(c, f"#prov-{c.id}")),
                *_verdict_cells(c),
                cell(t.counts_short(c.baseline)),
                *_verdict_cells(t.cluster_of(report, c)),
            )
        )
        for c in t.standalone(report)
    )
    header = _header(
        "Server", "Verdict", "Why", f"{OURS} (ours)", f"{BASELINE} (baseline)",
        "On a cluster", "Why (cluster)", f"{OURS} on a cluster",
    )
    caption = (
        f"May I run emmett-valkey on my server? Only {OURS} decides. On a cluster: {t.CLUSTER_SHAPE}, "
        "a verdict of its own (○ not run until tox -e <id>-cluster has run)."
    )
    table = Table(caption, header, rows, "verdicts")
    details = tuple(Details(line(*server(c)), reason) for c, reason in t.long_reasons(report.columns))
    return Section("verdict", "Verdict per server", (table, *details))


def _grid_cell(c: GridCell) -> Cell:
    words = t.counts_short(c.counts, not_run=c.state == "not_run")
    title = t.STATE_WORDS[c.state] + (f": {t.counts_long(c.counts)}" if c.counts is not None else "")
    return cell(Span(words, href=f"#fail-{c.server_id}" if c.state == "fail" else ""), status=c.state, title=title)


def _grid_table(report: Report, topology: Topology, caption: str) -> Table:
    """Lay out the grid over the columns of one topology."""
    keep = [i for i, c in enumerate(report.columns) if c.topology == topology]
    columns = [report.columns[i] for i in keep]
    servers = tuple(
        Cell(
            (
                line(Span(c.version or c.line + ".x", href=f"#prov-{c.id}")),
                line(Span(c.id, role="id")),
                line(badge(c, short=True)),
            ),
            status=c.verdict.code,
            title=c.label,
            group=c.product_name,
        )
        for c in columns
    )
    rows = tuple(
        Row(
            (
                cell(t.suite_label(row.suite)),
                cell(*_handler(row.handler)),
                *(_grid_cell(row.cells[i]) for i in keep),
            ),
            status=t.HANDLER_ROLES[row.handler],
        )
        for row in report.grid
    )
    return Table(caption, (*_header("Suite", "Handler"), *servers), rows, "grid")


def _grid(report: Report) -> Section:
    caption = f"Tests per suite and server: ours ({OURS}) above the baseline ({BASELINE})"
    blocks: list[Para | Table | Part] = [
        Para(line(t.legend()), "legend-text"),
        _grid_table(report, Topology.STANDALONE, caption),
    ]
    title = line("On a cluster")
    if any(c.status != "missing" for c in report.columns if c.topology == Topology.CLUSTER):
        caption = f"Tests per suite and server on a cluster of its build: ours ({OURS}) above the baseline ({BASELINE})"
        blocks.append(Part(title, (_grid_table(report, Topology.CLUSTER, caption),), anchor="grid-cluster"))
    else:
        blocks.append(Part(title, (Para(line(t.NO_CLUSTER_RUN)),), anchor="grid-cluster"))
    return Section("grid", "Results by suite", tuple(blocks))


def _differences(report: Report) -> Section:
    blocks: list[Table | Para | Part] = []
    # one table per topology: the differences of one list the same servers
    for ids, group in groupby(report.differences, key=lambda d: tuple(o.server_id for o in d.outcomes)):
        labels = (t.column_of(report, sid).label for sid in ids)
        rows = tuple(
            Row(
                (
                    cell(Span(d.test, role="code")),
                    cell(d.handler),
                    *(
                        cell(Span(o.outcome or "absent", role="outcome", status=o.outcome or "absent"))
                        for o in d.outcomes
                    ),
                )
            )
            for d in group
        )
        on_cluster = t.column_of(report, ids[0]).topology == Topology.CLUSTER
        caption = "Tests whose outcome is not the same on every " + ("cluster" if on_cluster else "server") + \
            " that ran them"
        blocks.append(Table(caption, _header("Test", "Handler", *labels), rows))
    if not report.differences:
        blocks.append(Para(line("Every test had the same outcome on every server that ran it.")))
    if report.deviations:
        rows = tuple(
            Row(
                (
                    cell(Span(d.id, role="code")),
                    cell(*_handler(d.handler)),
                    cell(d.explanation or "no explanation given"),
                    cell(", ".join(d.occurred_on) or "—"),
                    cell(", ".join(d.not_occurred_on) or "—"),
                )
            )
            for d in report.deviations
        )
        header = _header("Deviation", "Handler", "Explanation", "Occurred on", "Did not occur on")
        blocks.append(Part(line("Listed deviations"), (Table("", header, rows),)))
    return Section("differences", "Differences between versions", tuple(blocks))


def _failure(f: Failure) -> Part:
    role = t.HANDLER_ROLES[f.handler]
    title = line(
        Span(f"✘ {f.outcome}", role="outcome", status=f.outcome),
        Span(" "),
        Span(f"{t.suite_label(f.suite)} · {f.handler}", role="strong"),
        Span(role, role="aside"),
    )
    blocks = (
        Para(line(Span(f.nodeid, role="code")), "nodeid"),
        *((Pre(f.message, "message"),) if f.message else ()),
        Para(line("Rerun exactly this test on this server:"), "rerun-label"),
        Pre(f.rerun, "rerun"),
    )
    return Part(title, blocks, level=4, kind="failure", status=role)


def _failures(report: Report) -> Section:
    if not report.failures:
        return Section("failures", "Failures", (Para(line("No test failed.")),))
    parts = tuple(
        Part(line(*server(t.column_of(report, sid))), tuple(_failure(f) for f in group), anchor=f"fail-{sid}")
        for sid, group in groupby(report.failures, key=lambda f: f.server_id)
    )
    return Section("failures", "Failures", parts)


def _value(value: object, *, code: bool = False) -> Cell:
    if value is None or value == "":
        return cell("—")
    return cell(Span(str(value), role="code" if code else ""))


def _provenance(report: Report) -> Section:
    columns = [c for c in report.columns if c.provenance is not None]
    ps = [c.provenance for c in columns if c.provenance is not None]
    if not ps:
        return Section("provenance", "Provenance", (Para(line("No completed run.")),))
    fields: list[tuple[str, Sequence[object], bool]] = [
        ("Product", [f"{p.product} {p.version}" for p in ps], False),
        ("Topology", [t.topology_text(p) for p in ps], False),
        ("Build id", [p.build_id for p in ps], True),
        ("git sha", [p.git_sha for p in ps], True),
        ("malloc", [p.malloc for p in ps], False),
        ("TLS", [None if p.tls is None else ("yes" if p.tls else "no") for p in ps], False),
        ("Source", [" ".join(x for x in (p.source_kind, p.source_detail) if x) for p in ps], False),
        ("Source sha256", [p.source_sha256 for p in ps], True),
        ("Binary sha256 / URL", [p.binary_sha256 or p.url for p in ps], True),
        ("Server options", [shlex.join(p.options) for p in ps], True),
        ("Server started", [p.server_started_at for p in ps], False),
        ("Run finished", [p.run_finished_at for p in ps], False),
        ("Duration (s)", [p.duration_s for p in ps], False),
        ("Command", [shlex.join(p.command) for p in ps], True),
        ("Machine", [p.machine for p in ps], False),
        ("Host", [p.host for p in ps], False),
        ("CPUs", [p.cpus for p in ps], False),
        ("Python", [p.python for p in ps], False),
        *(
            (PACKAGE_LABELS.get(name, name), [p.packages.get(name) for p in ps], False)
            for name in sorted({k for p in ps for k in p.packages})
        ),
        ("Platform", [p.platform for p in ps], False),
        ("Result file", [c.source_file for c in columns], True),
    ]
    rows = tuple(Row((cell(name), *(_value(v, code=code) for v in values))) for name, values, code in fields)
    header = (cell("Field"), *(Cell((line(*server(c)),), anchor=f"prov-{c.id}") for c in columns))
    table = Table("Where each column comes from", header, rows, "provenance")
    note = t.machines_note(report)
    return Section("provenance", "Provenance", (*((Para(line(note)),) if note else ()), table,
                                                *_cluster_nodes(columns)))


def _cluster_nodes(columns: Sequence[Column]) -> tuple[Part, ...]:
    """Per cluster run, its nodes: address, role, slot ranges, which primary a replica follows, build."""
    parts = []
    for c in columns:
        info = c.provenance.cluster if c.provenance is not None else None
        if info is None:
            continue
        ports = {n.node_id: n.port for n in info.nodes if n.node_id}
        rows = tuple(
            Row(
                (
                    cell(Span(t.short_node_id(n.node_id), role="code")),
                    _value(t.address(n.host, n.port), code=True),
                    cell(n.role),
                    cell(t.slot_ranges(n.slots)),
                    cell(t.replica_of_text(n.replica_of, ports)),
                    _value(" ".join(x for x in (n.product, n.version) if x)),
                )
            )
            for n in info.nodes
        )
        header = _header("Node", "Address", "Role", "Slots", "Replica of", "Build")
        caption = f"{t.cluster_shape(info)}, every node the build above"
        title = line(Span("Cluster nodes: "), *server(c))
        parts.append(Part(title, (Table(caption, header, rows, "cluster-nodes"),), anchor=f"nodes-{c.id}"))
    return tuple(parts)


def _latency_cell(o: OpLatency | None) -> Cell:
    if o is None:
        return cell("—")
    figures = f"{t.ms(o.p50_ms)} / {t.ms(o.p99_ms)}"
    if o.met is None:
        return cell(figures)
    mark = "✔ met" if o.met else f"✘ over {t.ms(o.expected_p99_ms)} ms"
    return cell(figures, " ", Span(mark, role="mark", status="met" if o.met else "missed"))


def _latency(report: Report) -> Section:
    intro = Para(
        line(
            f"Expected p99 on loopback: {t.latency_expectations()}. A cache there answers a single call well "
            "within a millisecond; a pattern clear walks the keyspace in batches. Shown beside the verdicts, never "
            "changing them: latency measures the machine as much as the handler. Cells show p50 / p99 in ms; "
            "✔ met, ✘ over the expectation."
        )
    )
    note = t.machines_note(report)
    head = (intro, Para(line(note))) if note else (intro,)
    if not report.latency:
        return Section("latency", "Latency", (*head, Para(line("No latency samples."))))
    rows = tuple(
        Row(
            (
                cell(t.column_of(report, row.server_id).label),
                cell(row.handler),
                *(_latency_cell(next((o for o in row.ops if o.op == op), None)) for op in OPS),
            )
        )
        for row in report.latency
    )
    header = _header("Server", "Handler", *(OP_LABELS[op] for op in OPS))
    table = Table("p50 / p99 latency (ms) per server and handler", header, rows)
    return Section("latency", "Latency", (*head, Charts(), table))


def _headline_cell(h: Headline, c: HeadlineCell) -> Cell:
    if c.status == "not_measured":
        return cell(_mark(c.status), status=c.status)
    lines = [line(Span(t.figure(c.value, h.unit), role="fig"), " ", _mark(c.status))]
    if h.beside_label and c.beside is not None:
        lines.append(line(Span(f"{h.beside_label}: {t.figure(c.beside, h.unit)}", role="beside")))
    if c.cases > 1:
        lines.append(line(Span(f"worst of {c.cases}: {c.case}", role="case")))
    return Cell(tuple(lines), status=c.status)


def _headline_table(report: Report) -> Table:
    heads = report.benchmark_headlines
    servers = [t.column_of(report, c.server_id) for c in heads[0].cells]
    header = (cell("Figure"), cell("Target", status="target"), *(cell(*server(c, f"#bench-{c.id}")) for c in servers))
    rows = tuple(
        Row(
            (
                cell(h.label, Span(f"target {t.target_text(h.bound, h.unit)}", role="folded")),
                cell(t.target_text(h.bound, h.unit), status="target"),
                *(_headline_cell(h, c) for c in h.cells),
            )
        )
        for h in heads
    )
    footer = Row(
        (cell("Targets"), cell(status="target"), *(cell(t.headline_tally(heads, i)) for i in range(len(servers))))
    )
    return Table("The benchmark targets, worst case per server", header, rows, "bench-head", footer)


def _ratio_row(r: RatioRow) -> Row:
    value = [Span(t.figure(r.value, r.unit))]
    if r.beside is not None:
        value += [Span(" "), Span(f"({t.beside_label(r)} {t.figure(r.beside, r.unit)})", role="beside")]
    return Row(
        (
            cell(r.figure),
            cell(r.case),
            cell(*value),
            cell(t.spread(r.q1, r.q3, r.unit)),
            cell(t.target_text(r.bound, r.unit)),
            cell(_mark(r.status)) if r.status != "no_target" else cell(),  # "—" as its target says it
            cell(r.note),
        )
    )


def _bench_run(report: Report, run: BenchmarkRun) -> Part:
    c = t.column_of(report, run.server_id)
    title, anchor = line(*server(c)), f"bench-{c.id}"
    if run.status != "figures":
        return Part(title, (Para(line(f"{t.BENCH_STATUS[run.status]}.")),), anchor=anchor)
    meta = Para(line(f"{t.run_size(run.size)} · {t.run_tally(run)} · file {run.file}"), "run-meta")
    header = _header("Figure", "Case", "Value", f"q1{t.DASH}q3", "Target", "Result", "Note")
    rows = tuple(_ratio_row(r) for r in run.ratios)
    table = Table(f"Every figure of {c.label}: headline figures first", header, rows, "bench-rows")
    return Part(title, (meta, table), anchor=anchor)


def _benchmarks(report: Report) -> Section:
    before, files, after = t.BENCH_INTRO.partition(t.BENCH_FILES)
    blocks: list[Para | Table | Part] = [Para(line(before, Span(files, role="code"), after))]
    if report.benchmark_headlines:
        blocks.append(_headline_table(report))
    else:
        blocks.append(Para(line("No benchmark figures for any server.")))
    for status, ids in t.without_figures(report):
        spans: list[Span | str] = [f"{t.BENCH_STATUS[status].capitalize()}: "]
        for i, sid in enumerate(ids):
            spans += [", "] if i else []
            spans += server(t.column_of(report, sid))
        blocks.append(Para(line(*spans, "."), "no-bench"))
    blocks += [_bench_run(report, run) for run in report.benchmark_runs if run.status in ("figures", "no_figures")]
    return Section("benchmarks", "Benchmarks", tuple(blocks))


def _input_status(i: InputFile) -> Span:
    if i.status == "rejected":
        return Span(f"✘ {t.input_status(i)}", role="outcome", status="failed")
    return Span(t.input_status(i), role="outcome", status="skipped")  # superseded by a newer file: not a fault


def _inputs(report: Report) -> Section:
    bad = [i for i in report.inputs if i.status != "accepted"]
    blocks: list[Table | Para] = []
    if bad:
        rows = tuple(
            Row(
                (
                    cell(Span(i.file, role="code")),
                    cell(i.kind),
                    cell(i.server_id or "—"),
                    cell(_input_status(i)),
                    cell(i.detail or ""),
                )
            )
            for i in bad
        )
        blocks.append(Table("These files were not used", _header("File", "Kind", "Server id", "Status", "Why"), rows))
    else:
        blocks.append(Para(line("None: every input file was used.")))
    used: list[Span | str] = ["Used: "]
    for n, i in enumerate(x for x in report.inputs if x.status == "accepted"):
        used += [", "] if n else []
        used += [Span(i.file, role="code"), f" ({i.kind})"]
    blocks.append(Para(line(*used, "none." if len(used) == 1 else ".")))
    return Section("inputs", "Rejected or stale inputs", tuple(blocks))


def document(report: Report) -> Document:
    """Every section of the report, in order, and the header and footer around them."""
    version = report.handler_version or "unknown version"
    return Document(
        title=TITLE,
        window_title=f"emmett-valkey {version} compatibility report",
        meta=(
            f"emmett-valkey {version} · generated {report.generated_at} · {OURS} is this handler, "
            f"{BASELINE} (Emmett's) is the baseline; only {OURS} decides a verdict."
        ),
        summary=t.at_a_glance(report),
        glance=tuple(Glance(c.label, badge(c)) for c in report.columns),
        sections=(
            _verdicts(report),
            _grid(report),
            _differences(report),
            _failures(report),
            _provenance(report),
            _latency(report),
            _benchmarks(report),
            *((migration.section(report.migration),) if report.migration else ()),  # after tox -e migration
            _inputs(report),
        ),
        footer=f"Document schema {report.schema}; the same data is in compatibility.json.",
    )
