"""GitHub-flavoured Markdown: verdicts, grid, differences, failures, provenance, latency, benchmarks, inputs."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence

from . import text as t
from .model import BASELINE, OURS, BenchmarkRun, Column, Headline, HeadlineCell, Report

# What Markdown would read as markup rather than text: emphasis, code, links, tables, strike-through, headings.
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~#!])")
# A "<" that could open raw HTML or an autolink (a tag name, "/", "!" or "?" after it) and an "&" that would read
# as a character reference ("&lt;", "&#60;"). Any other "<", ">" or "&" stays as it is, so "< 5 ms" reads the same
# in the file and on the rendered page.
_MD_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def md(value: object) -> str:
    r"""Escape text for Markdown prose or a table cell; newlines become ``<br>``.

    Markdown escapes, not HTML ones: markup characters get a backslash, ``<`` only where it could open a tag
    (``<script>`` becomes ``\<script>``, shown as ``<script>``), ``&`` only before what reads as an entity.
    """
    s = _MD_PUNCT.sub(r"\\\1", str(value))
    s = _MD_TAG_OPEN.sub(r"\\<", s)
    s = _MD_ENTITY.sub(r"\\&", s)
    if s.startswith(">"):  # a block quote at the start of a line
        s = "\\" + s
    return s.replace("\r\n", "\n").replace("\n", "<br>")


def code(value: object) -> str:
    """Make an inline code span that survives backticks, pipes (in tables) and newlines."""
    s = " ".join(str(value).split("\n")).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def block(value: str, indent: str = "") -> list[str]:
    """Make a fenced code block longer than any backtick run inside ``value``."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return [indent + fence, *(indent + line for line in value.splitlines() or [""]), indent + fence]


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Make a GFM table from cells that are already escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _head(c: Column) -> str:
    return f"{md(c.label)}<br>{code(c.id)}"


def _verdicts(report: Report) -> list[str]:
    rows = [
        [
            _head(c),
            f"**{md(t.verdict_text(c))}**",
            md(t.reason_first_line(c.verdict.reason)),
            t.counts_short(c.ours) if c.ours.total else "—",
            t.counts_short(c.baseline) if c.baseline.total else "—",
        ]
        for c in report.columns
    ]
    header = ["Server", "Verdict", "Why", f"{OURS} (ours)", f"{BASELINE} (baseline)"]
    details: list[str] = []
    for c, reason in t.long_reasons(report.columns):
        fence = "````" if "```" in reason else "```"
        details += [f"**{md(c.label)}** ({code(c.id)}):", "", fence + "text", reason, fence, ""]
    return ["## Verdict per server", "", *table(header, rows), *details]


def _grid(report: Report) -> list[str]:
    header = ["Suite", "Handler", *(f"{md(c.label)}" for c in report.columns)]
    rows = [
        [
            md(t.suite_label(row.suite)),
            f"{row.handler} ({t.HANDLER_ROLES[row.handler]})",
            *(t.counts_short(cell.counts, not_run=cell.state == "not_run") for cell in row.cells),
        ]
        for row in report.grid
    ]
    return ["## Results by suite", "", md(t.legend()), "", *table(header, rows)]


def _differences(report: Report) -> list[str]:
    out = ["## Differences between versions", ""]
    if report.differences:
        ids = [o.server_id for o in report.differences[0].outcomes]
        labels = [md(t.column_of(report, sid).label) for sid in ids]
        rows = [[code(d.test), d.handler, *(md(o.outcome or "absent") for o in d.outcomes)] for d in report.differences]
        out += ["Tests whose outcome is not the same on every server that ran them:", ""]
        out += table(["Test", "Handler", *labels], rows)
    else:
        out += ["Every test had the same outcome on every server that ran it.", ""]
    if report.deviations:
        out += ["### Listed deviations", ""]
        rows = [
            [
                code(d.id),
                f"{d.handler} ({t.HANDLER_ROLES[d.handler]})",
                md(d.explanation or "no explanation given"),
                md(", ".join(d.occurred_on) or "—"),
                md(", ".join(d.not_occurred_on) or "—"),
            ]
            for d in report.deviations
        ]
        out += table(["Deviation", "Handler", "Explanation", "Occurred on", "Did not occur on"], rows)
    return out


def _failures(report: Report) -> list[str]:
    out = ["## Failures", ""]
    if not report.failures:
        return [*out, "No test failed.", ""]
    current = None
    for f in report.failures:
        if f.server_id != current:
            current = f.server_id
            c = t.column_of(report, f.server_id)
            out += [f"### {md(c.label)} ({code(c.id)})", ""]
        role = t.HANDLER_ROLES[f.handler]
        out += [f"- **{md(t.suite_label(f.suite))} · {f.handler}** ({role}) {md(f.outcome)}: {code(f.nodeid)}", ""]
        if f.message:
            out += [*block(f.message, "  "), ""]
        out += ["  Rerun exactly this test on this server:", "", *block(f.rerun, "  "), ""]
    return out


def _provenance(report: Report) -> list[str]:
    rows = []
    for c in report.columns:
        p = c.provenance
        if p is None:
            continue
        binary = f"sha256 {code(p.binary_sha256)}" if p.binary_sha256 else (code(p.url) if p.url else "—")
        source = " ".join(x for x in (p.source_kind, p.source_detail) if x) or "—"
        pk = p.packages
        rows.append(
            [
                _head(c),
                md(f"{p.product} {p.version}"),
                code(p.build_id or "—"),
                md(p.malloc or "—"),
                md(source),
                binary,
                code(shlex.join(p.options) or "—"),
                md(p.run_finished_at or p.server_started_at or "—"),
                md(p.python or "—"),
                md(pk.get("valkey") or "—"),
                md(pk.get("redis") or "—"),
                md(pk.get("emmett") or "—"),
                md(p.platform or "—"),
                md(c.source_file or "—"),
            ]
        )
    header = [
        "Server",
        "Product",
        "Build id",
        "malloc",
        "Source",
        "Binary",
        "Options",
        "Date",
        "Python",
        "valkey-py",
        "redis-py",
        "emmett",
        "Platform",
        "Result file",
    ]
    return ["## Provenance", "", *(table(header, rows) if rows else ["No completed run.", ""])]


def _latency(report: Report) -> list[str]:
    out = [
        "## Latency",
        "",
        md(
            f"Expectations from the original design: {t.latency_expectations()}. "
            "Cells show p50 / p99 in ms; ✔ met, ✘ not met."
        ),
        "",
    ]
    if not report.latency:
        return [*out, "No latency samples.", ""]
    rows = []
    for row in report.latency:
        by_op = {o.op: o for o in row.ops}
        cells = []
        for op in ("get", "set", "get_many", "pattern_clear"):
            o = by_op.get(op)
            mark = (
                "" if o is None or o.met is None else (" ✔" if o.met else f" ✘ (expected < {t.ms(o.expected_p99_ms)})")
            )
            cells.append("—" if o is None else f"{t.ms(o.p50_ms)} / {t.ms(o.p99_ms)}{mark}")
        rows.append([md(t.column_of(report, row.server_id).label), row.handler, *cells])
    out += table(["Server", "Handler", "GET", "SET", "get_many", "pattern clear"], rows)
    return out


def _headline_cell(report: Report, h: Headline, cell: HeadlineCell) -> str:
    if cell.status == "not_measured":
        return "— not measured"
    parts = [f"**{md(t.figure(cell.value, h.unit))}** {md(t.mark(cell.status))}"]
    if h.beside_label and cell.beside is not None:
        parts.append(md(f"{h.beside_label}: {t.figure(cell.beside, h.unit)}"))
    if cell.cases > 1:
        parts.append(md(f"worst of {cell.cases}: {cell.case}"))
    return "<br>".join(parts)


def _headline_table(report: Report) -> list[str]:
    heads = report.benchmark_headlines
    servers = [t.column_of(report, c.server_id) for c in heads[0].cells]
    rows = [
        [md(h.label), md(t.target_text(h.bound, h.unit)), *(_headline_cell(report, h, c) for c in h.cells)]
        for h in heads
    ]
    rows.append(["**Targets**", "", *(md(t.headline_tally(heads, i)) for i in range(len(servers)))])
    return table(["Figure", "Target", *(_head(c) for c in servers)], rows)


def _bench_run(report: Report, run: BenchmarkRun) -> list[str]:
    c = t.column_of(report, run.server_id)
    out = [f"### {md(c.label)} ({code(c.id)})", ""]
    if run.status != "figures":
        out += [md(f"{t.BENCH_STATUS[run.status]}."), ""]
        legacy = [b for b in report.benchmarks if b.server_id == run.server_id]
        if legacy:
            rows = [
                [
                    md(b.group),
                    code(b.name),
                    t.ops(b.ours_ops),
                    t.ops(b.baseline_ops),
                    "—" if b.ratio is None else f"{b.ratio:.2f}\N{MULTIPLICATION SIGN}",
                ]
                for b in legacy
            ]
            out += table(["Group", "Benchmark", f"{OURS} ops/s", f"{BASELINE} ops/s", "ours / baseline"], rows)
        return out
    out += [md(f"{t.run_size(run.size)} · {t.run_tally(run)} · file {run.file}"), ""]
    rows = [
        [
            md(r.figure),
            md(r.case),
            md(t.figure(r.value, r.unit))
            + (md(f" ({t.beside_label(r)} {t.figure(r.beside, r.unit)})") if r.beside is not None else ""),
            md(t.spread(r.q1, r.q3, r.unit)),
            md(t.target_text(r.bound, r.unit)),
            md(t.mark(r.status)) if r.status != "no_target" else "",
            md(r.note),
        ]
        for r in run.ratios
    ]
    return [*out, *table(["Figure", "Case", "Value", f"q1{t.DASH}q3", "Target", "Result", "Note"], rows)]


def _benchmarks(report: Report) -> list[str]:
    before, files, after = t.BENCH_INTRO.partition(t.BENCH_FILES)
    out = ["## Benchmarks", "", md(before) + code(files) + md(after), ""]
    if report.benchmark_headlines:
        out += _headline_table(report)
    else:
        out += ["No benchmark figures for any server.", ""]
    for status, ids in t.without_figures(report):
        listed = ", ".join(f"{md(t.column_of(report, sid).label)} ({code(sid)})" for sid in ids)
        out += [f"{md(t.BENCH_STATUS[status].capitalize())}: {listed}.", ""]
    for run in report.benchmark_runs:
        if run.status in ("figures", "no_figures"):
            out += _bench_run(report, run)
    return out


def _inputs(report: Report) -> list[str]:
    out = ["## Rejected or stale inputs", ""]
    bad = [i for i in report.inputs if i.status != "accepted"]
    if bad:
        rows = [
            [code(i.file), md(i.kind), md(i.server_id or "—"), md(t.input_status(i)), md(i.detail or "")] for i in bad
        ]
        out += ["These files were **not** used:", "", *table(["File", "Kind", "Server id", "Status", "Why"], rows)]
    else:
        out += ["None: every input file was used.", ""]
    used = ", ".join(f"{code(i.file)} ({i.kind})" for i in report.inputs if i.status == "accepted") or "none"
    return [*out, f"Used: {used}.", ""]


def render_markdown(report: Report) -> str:
    """Render the report as GitHub-flavoured Markdown."""
    version = report.handler_version or "unknown version"
    lines = [
        "# emmett-valkey compatibility report",
        "",
        md(
            f"emmett-valkey {version} · generated {report.generated_at} · {OURS} is this handler, "
            f"{BASELINE} (Emmett's) is the baseline; only {OURS} decides a verdict."
        ),
        "",
        f"**{md(t.at_a_glance(report))}**",
        "",
        *_verdicts(report),
        *_grid(report),
        *_differences(report),
        *_failures(report),
        *_provenance(report),
        *_latency(report),
        *_benchmarks(report),
        *_inputs(report),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
