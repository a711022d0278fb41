"""One self-contained HTML page of the report's sections (``sections.document``); layout only, the words are theirs.

Inline CSS and SVG, no script, no external resource; every text escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from . import svg
from .document import Block, Cell, Charts, Details, Document, Line, Para, Part, Pre, Row, Span, Table
from .model import OURS, Report
from .resources import package_text
from .sections import document


def e(value: object) -> str:
    """Escape text for HTML content and attribute values (quotes included)."""
    return escape(str(value), quote=True)


def _attrs(**values: object) -> str:
    """`` name="value"`` for every value that is not empty (``class_`` is ``class``; ``_`` reads as ``-``)."""
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{e(value)}"'
        for name, value in values.items()
        if value not in ("", None)
    )


_MARK_CLASS = {
    "met": "met",
    "missed": "unmet",
    "not_judged": "notjudged",
    "not_measured": "notjudged",
    "no_target": "notarget",
}


def _span(s: Span, first: bool = False) -> str:
    text = e(s.text)
    if s.role == "code":
        html = f"<code>{text}</code>"
    elif s.role == "strong":
        html = f"<strong>{text}</strong>"
    elif s.role == "badge":
        html = f'<span class="badge v-{e(s.status)}"{_attrs(title=s.title)}>{text}</span>'
    elif s.role == "mark":
        html = f'<span class="{_MARK_CLASS[s.status]}">{text}</span>'
    elif s.role == "outcome":
        html = f'<span class="o-{e(s.status)}">{text}</span>'
    elif s.role == "id":  # set apart from the label before it, unless on a line of its own
        html = f'{"" if first else " "}<span class="id">{text}</span>'
    elif s.role == "aside":
        html = f' <span class="role">{text}</span>'
    elif s.role == "folded":  # report.css shows it on narrow screens, where the column it repeats is hidden
        html = f'<span class="tgt-inline">{text}</span>'
    elif s.role:  # fig, beside, case
        html = f'<span class="{e(s.role)}">{text}</span>'
    else:
        html = text
    return f'<a href="{e(s.href)}">{html}</a>' if s.href else html


def _inline(spans: Line) -> str:
    return "".join(_span(s, i == 0) for i, s in enumerate(spans))


def _content(c: Cell) -> str:
    return "<br>".join(_inline(spans) for spans in c.lines)


# the class of a cell with a status, per kind of table (report.css)
_CELL_CLASS = {"grid": "cell s-{}", "bench-head": "r-{}"}


def _class(c: Cell, kind: str) -> str:
    return _CELL_CLASS.get(kind, "{}").format(c.status) if c.status else ""


def _td(c: Cell, kind: str, **extra: object) -> str:
    return f"<td{_attrs(class_=_class(c, kind), title=c.title, **extra)}>{_content(c)}</td>"


def _tr(row: Row, kind: str) -> str:
    first, *rest = row.cells
    return f'<tr><th scope="row">{_content(first)}</th>{"".join(_td(c, kind) for c in rest)}</tr>'


def _table(t: Table) -> str:
    if t.kind == "grid":
        return _grid(t)
    head = "".join(
        f'<th scope="col"{_attrs(id=c.anchor, class_=_class(c, t.kind))}>{_content(c)}</th>' for c in t.header
    )
    body = "".join(_tr(r, t.kind) for r in t.rows)
    foot = f"<tfoot>{_tr(t.footer, t.kind)}</tfoot>" if t.footer is not None else ""
    caption = f"<caption>{e(t.caption)}</caption>" if t.caption else ""
    return (
        f'<div class="scroll"><table{_attrs(class_=t.kind)}>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody>{foot}</table></div>"
    )


def _runs(values: Iterable[str]) -> list[tuple[str, int]]:
    """Consecutive equal values and how many: ``a a b`` -> ``[("a", 2), ("b", 1)]``."""
    out: list[tuple[str, int]] = []
    for value in values:
        if out and out[-1][0] == value:
            out[-1] = (value, out[-1][1] + 1)
        else:
            out.append((value, 1))
    return out


def _grid(t: Table) -> str:
    """Lay the grid out: servers under their product, each suite's rows together, a server not run as one cell."""
    top = "".join(
        f'<th scope="colgroup" colspan="{n}" class="product">{e(group)}</th>'
        if group
        else f'<td colspan="{n}" class="corner"></td>'
        for group, n in _runs(c.group for c in t.header)
    )
    second = "".join(
        f'<th scope="col"{_attrs(class_=f"server v-{c.status}" if c.status else "", aria_label=c.title)}>'
        f"{_content(c)}</th>"
        for c in t.header
    )
    whole = {  # columns whose every cell is "not run": one cell down the whole column
        j for j in range(2, len(t.header)) if all(r.cells[j].status == "not_run" for r in t.rows)
    }
    rowspans: list[int] = []
    for _, n in _runs(_content(r.cells[0]) for r in t.rows):
        rowspans += [n] + [0] * (n - 1)
    body = []
    for i, row in enumerate(t.rows):
        name, handler, *cells = row.cells
        suite = (
            f'<th scope="rowgroup" rowspan="{rowspans[i]}" class="suite">{_content(name)}</th>' if rowspans[i] else ""
        )
        tds = []
        for j, c in enumerate(cells, start=2):
            if j not in whole:
                tds.append(_td(c, t.kind))
            elif i == 0:  # once, down the whole column
                attrs = _attrs(class_=_class(c, t.kind), title=c.title, rowspan=len(t.rows))
                tds.append(f'<td{attrs}><span class="vertical">{_content(c)}</span></td>')
        body.append(
            f'<tr class="h-{e(row.status)}">{suite}<th scope="row" class="handler">{_content(handler)}</th>'
            f"{''.join(tds)}</tr>"
        )
    return (
        f'<div class="scroll"><table class="grid"><caption>{e(t.caption)}</caption>'
        f"<thead><tr>{top}</tr><tr>{second}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _blocks(blocks: Iterable[Block], charts: str) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Table):
            out.append(_table(b))
        elif isinstance(b, Para):
            out.append(f"<p{_attrs(class_=b.kind)}>{_inline(b.spans)}</p>")
        elif isinstance(b, Pre):
            out.append(f"<pre{_attrs(class_=b.kind)}>{e(b.text)}</pre>")
        elif isinstance(b, Details):
            out.append(
                f'<details class="reason" open><summary>{_inline(b.summary)}</summary><pre>{e(b.text)}</pre></details>'
            )
        elif isinstance(b, Part) and b.level == 3:
            out.append(
                f"<section{_attrs(id=b.anchor)}><h3>{_inline(b.title)}</h3>{_blocks(b.blocks, charts)}</section>"
            )
        elif isinstance(b, Part):
            cls = " ".join(x for x in (b.kind, f"h-{b.status}" if b.status else "") if x)
            out.append(f"<article{_attrs(class_=cls)}><h4>{_inline(b.title)}</h4>{_blocks(b.blocks, charts)}</article>")
        else:
            assert isinstance(b, Charts)
            out.append(charts)
    return "".join(out)


def _charts(report: Report) -> str:
    boxes = "".join(f'<div class="chart-box">{s}</div>' for s in svg.charts(report))
    return (
        f'<figure class="charts"><figcaption>{OURS} latency per server {svg.legend()}</figcaption>'
        f'<div class="chart-grid">{boxes}</div></figure>'
    )


def _glance(doc: Document) -> str:
    items = "".join(
        f'<li class="glance-item v-{e(g.verdict.status)}"><span class="glance-name">{e(g.label)}</span> '
        f"{_span(g.verdict)}</li>"
        for g in doc.glance
    )
    return f'<ul class="glance" aria-label="verdict per server">{items}</ul>'


def render_html(report: Report) -> str:
    """Render the report as one self-contained HTML page."""
    doc = document(report)
    charts = _charts(report)
    nav = "".join(f'<a href="#{e(s.id)}">{e(s.title)}</a>' for s in doc.sections)
    body = "".join(
        f'<section id="{e(s.id)}"><h2>{e(s.title)}</h2>{_blocks(s.blocks, charts)}</section>' for s in doc.sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(doc.window_title)}</title>"
        f"<style>{package_text('report/report.css')}</style></head><body>"
        f'<header><h1>{e(doc.title)}</h1><p class="meta">{e(doc.meta)}</p>{_glance(doc)}'
        f'<nav aria-label="sections">{nav}</nav></header><main>{body}</main>'
        f"<footer>{e(doc.footer)}</footer>"
        "</body></html>\n"
    )
