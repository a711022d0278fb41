"""One self-contained HTML page: inline CSS and SVG, no script, no external resource; every text escaped."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from html import escape

from . import svg
from . import text as t
from .model import BASELINE, OURS, BenchmarkRun, Column, Headline, HeadlineCell, Report
from .perf import OP_LABELS, OPS
from .servers import package_text


def e(value: object) -> str:
    """Escape text for HTML content and attribute values (quotes included)."""
    return escape(str(value), quote=True)


def _code(value: object) -> str:
    return f"<code>{e(value)}</code>"


def _table(caption: str, header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(rows_cell) + "</tr>" for rows_cell in ([_cell(c, i) for i, c in enumerate(r)] for r in rows)
    )
    return (
        f'<div class="scroll"><table class="{cls}"><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _cell(content: str, index: int) -> str:
    return f'<th scope="row">{content}</th>' if index == 0 else f"<td>{content}</td>"


def _badge(column: Column, *, short: bool = False) -> str:
    words = t.SHORT_VERDICTS[column.verdict.code] if short else column.verdict.label
    label = f"{t.VERDICT_SYMBOLS[column.verdict.code]} {words}"
    return f'<span class="badge v-{column.verdict.code}" title="{e(column.verdict.label)}">{e(label)}</span>'


def _server_head(c: Column) -> str:
    return f'<a href="#prov-{e(c.id)}">{e(c.label)}</a> <span class="id">{e(c.id)}</span>'


def _glance(report: Report) -> str:
    items = "".join(
        f'<li class="glance-item v-{c.verdict.code}"><span class="glance-name">{e(c.label)}</span> {_badge(c)}</li>'
        for c in report.columns
    )
    return f'<ul class="glance" aria-label="verdict per server">{items}</ul>'


def _verdicts(report: Report) -> str:
    rows = [
        [
            _server_head(c),
            _badge(c),
            e(t.reason_first_line(c.verdict.reason)),
            e(t.counts_short(c.ours)) if c.ours.total else "—",
            e(t.counts_short(c.baseline)) if c.baseline.total else "—",
        ]
        for c in report.columns
    ]
    header = ["Server", "Verdict", "Why", f"{OURS} (ours)", f"{BASELINE} (baseline)"]
    details = "".join(
        f'<details class="reason" open><summary>{e(c.label)} <code>{e(c.id)}</code></summary><pre>{e(reason)}</pre>'
        "</details>"
        for c, reason in t.long_reasons(report.columns)
    )
    return _table("May I run emmett-valkey on my server? Only ValkeyCache decides.", header, rows, "verdicts") + details


def _grid(report: Report) -> str:
    groups: list[tuple[str, int]] = []
    for c in report.columns:
        if groups and groups[-1][0] == c.product_name:
            groups[-1] = (c.product_name, groups[-1][1] + 1)
        else:
            groups.append((c.product_name, 1))
    top = (
        '<tr><td colspan="2" class="corner"></td>'
        + "".join(f'<th scope="colgroup" colspan="{n}" class="product">{e(name)}</th>' for name, n in groups)
        + "</tr>"
    )
    second = (
        '<tr><th scope="col">Suite</th><th scope="col">Handler</th>'
        + "".join(
            f'<th scope="col" class="server v-{c.verdict.code}" aria-label="{e(c.label)}">'
            f'<a href="#prov-{e(c.id)}">{e(c.version or c.line + ".x")}</a><br>'
            f'<span class="id">{e(c.id)}</span><br>{_badge(c, short=True)}</th>'
            for c in report.columns
        )
        + "</tr>"
    )
    body = []
    for i, row in enumerate(report.grid):
        suite = (
            f'<th scope="rowgroup" rowspan="2" class="suite">{e(t.suite_label(row.suite))}</th>' if i % 2 == 0 else ""
        )
        cells = []
        for cell in row.cells:
            if cell.state == "not_run":
                if i == 0:
                    cells.append(
                        f'<td class="cell s-not_run" rowspan="{len(report.grid)}" title="not run">'
                        '<span class="vertical">○ not run: see verdict</span></td>'
                    )
                continue
            content = e(t.counts_short(cell.counts, not_run=cell.state == "not_run"))
            if cell.state == "fail":
                content = f'<a href="#fail-{e(cell.server_id)}">{content}</a>'
            label = f"{t.STATE_WORDS[cell.state]}: {t.counts_long(cell.counts)}"
            cells.append(f'<td class="cell s-{cell.state}" title="{e(label)}">{content}</td>')
        role = t.HANDLER_ROLES[row.handler]
        body.append(
            f'<tr class="h-{role}">{suite}<th scope="row" class="handler">{e(row.handler)} '
            f'<span class="role">{role}</span></th>{"".join(cells)}</tr>'
        )
    return (
        f'<p class="legend-text">{e(t.legend())}</p><div class="scroll"><table class="grid">'
        "<caption>Tests per suite and server: ours (ValkeyCache) above the baseline (RedisCache)</caption>"
        f"<thead>{top}{second}</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _differences(report: Report) -> str:
    out = []
    if report.differences:
        ids = [o.server_id for o in report.differences[0].outcomes]
        header = ["Test", "Handler", *(e(t.column_of(report, s).label) for s in ids)]
        rows = [
            [
                _code(d.test),
                e(d.handler),
                *(f'<span class="o-{e(o.outcome or "absent")}">{e(o.outcome or "absent")}</span>' for o in d.outcomes),
            ]
            for d in report.differences
        ]
        out.append(_table("Tests whose outcome is not the same on every server that ran them", header, rows))
    else:
        out.append("<p>Every test had the same outcome on every server that ran it.</p>")
    if report.deviations:
        rows = [
            [
                _code(d.id),
                f"{e(d.handler)} ({t.HANDLER_ROLES[d.handler]})",
                e(d.explanation or "no explanation given"),
                e(", ".join(d.occurred_on) or "—"),
                e(", ".join(d.not_occurred_on) or "—"),
            ]
            for d in report.deviations
        ]
        header = ["Deviation", "Handler", "Explanation", "Occurred on", "Did not occur on"]
        out.append(_table("Listed deviations and their explanations", header, rows))
    return "".join(out)


def _failures(report: Report) -> str:
    if not report.failures:
        return "<p>No test failed.</p>"
    out, current = [], None
    for f in report.failures:
        if f.server_id != current:
            if current is not None:
                out.append("</section>")
            current = f.server_id
            c = t.column_of(report, f.server_id)
            out.append(f'<section id="fail-{e(c.id)}"><h3>{e(c.label)} <span class="id">{e(c.id)}</span></h3>')
        role = t.HANDLER_ROLES[f.handler]
        out.append(
            f'<article class="failure h-{role}"><h4><span class="o-{e(f.outcome)}">✘ {e(f.outcome)}</span> '
            f'{e(t.suite_label(f.suite))} · {e(f.handler)} <span class="role">{role}</span></h4>'
            f'<p class="nodeid">{_code(f.nodeid)}</p>'
            + (f'<pre class="message">{e(f.message)}</pre>' if f.message else "")
            + f'<p class="rerun-label">Rerun exactly this test on this server:</p><pre class="rerun">{e(f.rerun)}</pre>'
            "</article>"
        )
    out.append("</section>")
    return "".join(out)


def _provenance(report: Report) -> str:
    cols = [c for c in report.columns if c.provenance is not None]
    if not cols:
        return "<p>No completed run.</p>"
    fields: list[tuple[str, list[str]]] = []

    def add(name: str, values: Iterable[object], code: bool = False) -> None:
        fields.append(
            (name, [_code(v) if code and v not in (None, "") else e(v if v not in (None, "") else "—") for v in values])
        )

    ps = [c.provenance for c in cols if c.provenance is not None]
    add("Product", (f"{p.product} {p.version}" for p in ps))
    add("Build id", (p.build_id for p in ps), code=True)
    add("git sha", (p.git_sha for p in ps), code=True)
    add("malloc", (p.malloc for p in ps))
    add("TLS", ("—" if p.tls is None else ("yes" if p.tls else "no") for p in ps))
    add("Source", (" ".join(x for x in (p.source_kind, p.source_detail) if x) for p in ps))
    add("Source sha256", (p.source_sha256 for p in ps), code=True)
    add("Binary sha256 / URL", (p.binary_sha256 or p.url for p in ps), code=True)
    add("Server options", (shlex.join(p.options) for p in ps), code=True)
    add("Server started", (p.server_started_at for p in ps))
    add("Run finished", (p.run_finished_at for p in ps))
    add("Duration (s)", (p.duration_s for p in ps))
    add("Command", (shlex.join(p.command) for p in ps), code=True)
    add("Python", (p.python for p in ps))
    for package in sorted({k for p in ps for k in p.packages}):
        label = {"valkey": "valkey-py", "redis": "redis-py"}.get(package, package)
        add(label, (p.packages.get(package) for p in ps))
    add("Platform", (p.platform for p in ps))
    add("Result file", (c.source_file for c in cols), code=True)
    head = "".join(
        f'<th scope="col" id="prov-{e(c.id)}">{e(c.label)} <span class="id">{e(c.id)}</span></th>' for c in cols
    )
    body = "".join(f'<tr><th scope="row">{e(n)}</th>{"".join(f"<td>{v}</td>" for v in vs)}</tr>' for n, vs in fields)
    return (
        '<div class="scroll"><table class="provenance"><caption>Where each column comes from</caption>'
        f'<thead><tr><th scope="col">Field</th>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _latency(report: Report) -> str:
    intro = (
        "<p>Expectations from the original design: GET and SET p99 under 1 ms, pattern clear p99 under 10 ms. "
        "Cells show p50 / p99 in ms; ✔ met, ✘ not met.</p>"
    )
    if not report.latency:
        return intro + "<p>No latency samples.</p>"
    charts = "".join(f'<div class="chart-box">{s}</div>' for s in svg.charts(report))
    figure = (
        f'<figure class="charts"><figcaption>{OURS} latency per server {svg.legend()}</figcaption>'
        f'<div class="chart-grid">{charts}</div></figure>'
    )
    rows = []
    for row in report.latency:
        by_op = {o.op: o for o in row.ops}
        cells = [t.column_of(report, row.server_id).label, row.handler]
        html_cells = [e(x) for x in cells]
        for op in OPS:
            o = by_op.get(op)
            if o is None:
                html_cells.append("—")
                continue
            mark = ""
            if o.met is not None:
                mark = (
                    ' <span class="met">✔ met</span>'
                    if o.met
                    else f' <span class="unmet">✘ over {e(t.ms(o.expected_p99_ms))} ms</span>'
                )
            html_cells.append(f"{e(t.ms(o.p50_ms))} / {e(t.ms(o.p99_ms))}{mark}")
        rows.append(html_cells)
    table = _table(
        "p50 / p99 latency (ms) per server and handler", ["Server", "Handler", *(OP_LABELS[op] for op in OPS)], rows
    )
    return intro + figure + table


_MARK_CLASS = {"met": "met", "missed": "unmet", "not_judged": "notjudged", "not_measured": "notjudged"}


def _mark(status: str) -> str:
    if status == "no_target":
        return '<span class="notarget">no target</span>'
    return f'<span class="{_MARK_CLASS[status]}">{e(t.mark(status))}</span>'


def _headline_cell(h: Headline, cell: HeadlineCell) -> str:
    if cell.status == "not_measured":
        return f'<td class="r-not_measured">{_mark(cell.status)}</td>'
    parts = [f'<span class="fig">{e(t.figure(cell.value, h.unit))}</span> {_mark(cell.status)}']
    if h.beside_label and cell.beside is not None:
        parts.append(f'<span class="beside">{e(h.beside_label)}: {e(t.figure(cell.beside, h.unit))}</span>')
    if cell.cases > 1:
        parts.append(f'<span class="case">worst of {cell.cases}: {e(cell.case)}</span>')
    return f'<td class="r-{e(cell.status)}">{"<br>".join(parts)}</td>'


def _headline_table(report: Report) -> str:
    heads = report.benchmark_headlines
    servers = [t.column_of(report, c.server_id) for c in heads[0].cells]
    head = '<th scope="col">Figure</th><th scope="col" class="target">Target</th>' + "".join(
        f'<th scope="col"><a href="#bench-{e(c.id)}">{e(c.label)}</a> <span class="id">{e(c.id)}</span></th>'
        for c in servers
    )
    body = "".join(
        f'<tr><th scope="row">{e(h.label)}<span class="tgt-inline">target {e(t.target_text(h.bound, h.unit))}</span>'
        f'</th><td class="target">{e(t.target_text(h.bound, h.unit))}</td>'
        + "".join(_headline_cell(h, c) for c in h.cells)
        + "</tr>"
        for h in heads
    )
    tally = "".join(f"<td>{e(t.headline_tally(heads, i))}</td>" for i in range(len(servers)))
    return (
        '<div class="scroll"><table class="bench-head"><caption>The benchmark targets, worst case per server'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        f'<tfoot><tr><th scope="row">Targets</th><td class="target"></td>{tally}</tr></tfoot></table></div>'
    )


def _bench_run(report: Report, run: BenchmarkRun) -> str:
    c = t.column_of(report, run.server_id)
    title = f'<h3 id="bench-{e(c.id)}">{e(c.label)} <span class="id">{e(c.id)}</span></h3>'
    if run.status != "figures":
        out = f"{title}<p>{e(t.BENCH_STATUS[run.status])}.</p>"
        legacy = [b for b in report.benchmarks if b.server_id == run.server_id]
        if legacy:
            rows = [
                [
                    e(b.group),
                    _code(b.name),
                    e(t.ops(b.ours_ops)),
                    e(t.ops(b.baseline_ops)),
                    "—" if b.ratio is None else e(f"{b.ratio:.2f}{t.TIMES}"),
                ]
                for b in legacy
            ]
            out += _table(
                "Median operations per second (separate medians, not paired)",
                ["Group", "Benchmark", f"{OURS} ops/s", f"{BASELINE} ops/s", "ours / baseline"],
                rows,
            )
        return out
    rows = []
    for r in run.ratios:
        value = e(t.figure(r.value, r.unit))
        if r.beside is not None:
            value += f' <span class="beside">({e(t.beside_label(r))} {e(t.figure(r.beside, r.unit))})</span>'
        rows.append(
            [
                e(r.figure),
                e(r.case),
                value,
                e(t.spread(r.q1, r.q3, r.unit)),
                e(t.target_text(r.bound, r.unit)),
                _mark(r.status),
                e(r.note),
            ]
        )
    meta = f'<p class="run-meta">{e(t.run_size(run.size))} · {e(t.run_tally(run))} · file {_code(run.file)}</p>'
    table = _table(
        f"Every figure of {e(c.label)}: headline figures first",
        ["Figure", "Case", "Value", f"q1{t.DASH}q3", "Target", "Result", "Note"],
        rows,
        "bench-rows",
    )
    return title + meta + table


def _benchmarks(report: Report) -> str:
    before, files, after = t.BENCH_INTRO.partition(t.BENCH_FILES)
    out = [f"<p>{e(before)}{_code(files)}{e(after)}</p>"]
    if report.benchmark_headlines:
        out.append(_headline_table(report))
    else:
        out.append("<p>No benchmark figures for any server.</p>")
    for status, ids in t.without_figures(report):
        listed = ", ".join(f'{e(t.column_of(report, sid).label)} <span class="id">{e(sid)}</span>' for sid in ids)
        out.append(f'<p class="no-bench">{e(t.BENCH_STATUS[status].capitalize())}: {listed}.</p>')
    out += [_bench_run(report, run) for run in report.benchmark_runs if run.status in ("figures", "no_figures")]
    return "".join(out)


def _inputs(report: Report) -> str:
    bad = [i for i in report.inputs if i.status != "accepted"]
    used = ", ".join(f"{_code(i.file)} ({e(i.kind)})" for i in report.inputs if i.status == "accepted") or "none"
    if not bad:
        return f"<p>None: every input file was used.</p><p>Used: {used}.</p>"
    rows = [
        [
            _code(i.file),
            e(i.kind),
            e(i.server_id or "—"),
            f'<span class="o-failed">✘ {e(t.input_status(i))}</span>',
            e(i.detail or ""),
        ]
        for i in bad
    ]
    return _table("These files were not used", ["File", "Kind", "Server id", "Status", "Why"], rows) + (
        f"<p>Used: {used}.</p>"
    )


def render_html(report: Report) -> str:
    """Render the report as one self-contained HTML page."""
    version = e(report.handler_version or "unknown version")
    sections = [
        ("verdict", "Verdict per server", _verdicts(report)),
        ("grid", "Results by suite", _grid(report)),
        ("differences", "Differences between versions", _differences(report)),
        ("failures", "Failures", _failures(report)),
        ("provenance", "Provenance", _provenance(report)),
        ("latency", "Latency", _latency(report)),
        ("benchmarks", "Benchmarks", _benchmarks(report)),
        ("inputs", "Rejected or stale inputs", _inputs(report)),
    ]
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{e(title)}</h2>{content}</section>' for sid, title, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>emmett-valkey {version} compatibility report</title>"
        f"<style>{package_text('report/report.css')}</style></head><body>"
        f"<header><h1>emmett-valkey compatibility report</h1>"
        f'<p class="meta">emmett-valkey {version} · generated {e(report.generated_at)} · {OURS} is this handler, '
        f"{BASELINE} (Emmett's) is the baseline.</p>{_glance(report)}"
        f'<nav aria-label="sections">{nav}</nav></header><main>{body}</main>'
        f"<footer>Document schema {e(report.schema)}; the same data is in compatibility.json.</footer>"
        "</body></html>\n"
    )
