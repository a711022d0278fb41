"""GitHub-flavoured Markdown of the report's sections (``sections.document``): escaping and layout only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .document import Block, Cell, Charts, Details, Line, Para, Part, Pre, Row, Table
from .model import Report
from .sections import document

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


def block(value: str, indent: str = "", info: str = "") -> list[str]:
    """Make a fenced code block longer than any backtick run inside ``value``."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return [indent + fence + info, *(indent + line for line in value.splitlines() or [""]), indent + fence]


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Make a GFM table from cells that are already escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _inline(spans: Line, *, in_cell: bool = False) -> str:
    out = []
    for i, s in enumerate(spans):
        if s.role == "id" and i == 0:  # on a line of its own
            out.append(code(s.text))
        elif s.role == "code":
            out.append(code(s.text))
        elif s.role in ("strong", "fig", "badge"):
            out.append(f"**{md(s.text)}**")
        elif s.role == "id":  # below its label in a table cell, in parentheses after it in text
            out.append(f"<br>{code(s.text)}" if in_cell else f" ({code(s.text)})")
        elif s.role == "aside":
            out.append(f" ({md(s.text)})")
        elif s.role != "folded":  # a table column shown again for narrow screens: here the column is always there
            out.append(md(s.text))
    return "".join(out)


def _cell(c: Cell) -> str:
    text = "<br>".join(_inline(spans, in_cell=True) for spans in c.lines)
    return f"{md(c.group)} {text}" if c.group else text


def _row(row: Row) -> list[str]:
    return [_cell(c) for c in row.cells]


def _table(t: Table) -> list[str]:
    rows = [_row(r) for r in t.rows]
    if t.footer is not None:  # no table footer in Markdown: a last row, named in bold
        first, *rest = _row(t.footer)
        rows.append([f"**{first}**", *rest])
    return [*([md(t.caption), ""] if t.caption else []), *table([_cell(c) for c in t.header], rows)]


def _blocks(blocks: Iterable[Block]) -> list[str]:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Table):
            out += _table(b)
        elif isinstance(b, Para):
            out += [_inline(b.spans), ""]
        elif isinstance(b, Pre):
            out += [*block(b.text), ""]
        elif isinstance(b, Details):
            out += [f"**{_inline(b.summary)}**:", "", *block(b.text, info="text"), ""]
        elif isinstance(b, Part) and b.level == 3:
            out += [f"### {_inline(b.title)}", "", *_blocks(b.blocks)]
        elif isinstance(b, Part):  # an item of a list, its blocks indented under it
            out += [f"- {_inline(b.title)}", "", *(f"  {x}" if x else x for x in _blocks(b.blocks))]
        else:
            assert isinstance(b, Charts)  # drawn in HTML only; the latency table has the same figures
    return out


def render_markdown(report: Report) -> str:
    """Render the report as GitHub-flavoured Markdown."""
    doc = document(report)
    lines = [f"# {md(doc.title)}", "", md(doc.meta), "", f"**{md(doc.summary)}**", ""]
    for section in doc.sections:
        lines += [f"## {md(section.title)}", "", *_blocks(section.blocks)]
    lines += [md(doc.footer)]
    return "\n".join(lines).rstrip("\n") + "\n"
