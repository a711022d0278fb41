"""The report's sections as neutral data: built once (``sections.py``), formatted by ``markdown.py`` and ``html.py``.

Everything a reader sees is decided here, as text: captions, headers, cell values and their words. A renderer
only formats: it escapes, styles a span by its ``role`` and a cell by its ``status`` (Markdown in bold or code,
HTML with a class), and lays a table out; it never writes a word of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A run of text and how it is styled.

    ``role``: ``""`` plain; ``code``; ``strong``; ``fig`` (the figure of a cell, bold); ``badge`` (a verdict, bold;
    ``status`` its code, ``title`` its full label); ``mark`` (met, missed ..., ``status`` which); ``outcome`` (a test
    outcome, ``status`` which); ``id`` (a server id after its label) and ``aside`` (a handler's role after its
    name), both set apart from what precedes them; ``beside`` and ``case`` (secondary to the figure, muted);
    ``folded`` (repeats a column that a narrow layout hides: shown only there, so Markdown leaves it out).
    ``href`` links to a place on the page (HTML); Markdown shows the text only.
    """

    text: str
    role: str = ""
    status: str = ""
    href: str = ""
    title: str = ""


Line = tuple[Span, ...]


def line(*parts: Span | str) -> Line:
    """Make a line of spans; a plain string is a plain span."""
    return tuple(Span(p) if isinstance(p, str) else p for p in parts)


@dataclass(frozen=True)
class Cell:
    """One table cell: lines of spans, and its state (``status``) and meaning in words (``title``) for styling.

    In a header, ``group`` names the heading that spans this cell and its neighbours of the same group (a product
    over its versions) and ``anchor`` is the place on the page that links to this column.
    """

    lines: tuple[Line, ...]
    status: str = ""
    title: str = ""
    group: str = ""
    anchor: str = ""


def cell(*parts: Span | str, **kw: str) -> Cell:
    """Make a cell of one line."""
    return Cell((line(*parts),), **kw)


@dataclass(frozen=True)
class Row:
    """A table row; its first cell names the row. ``status`` is the row's kind (a handler's role in the grid)."""

    cells: tuple[Cell, ...]
    status: str = ""


@dataclass(frozen=True)
class Table:
    """A table: what it shows (``caption``), its header, its rows and an optional footer (totals).

    ``kind`` says which table it is (``verdicts``, ``grid``, ``provenance``, ``bench-head``, ``bench-rows``) for
    a renderer that lays some out in their own way.
    """

    caption: str
    header: tuple[Cell, ...]
    rows: tuple[Row, ...]
    kind: str = ""
    footer: Row | None = None


@dataclass(frozen=True)
class Para:
    """A paragraph; ``kind`` is what it is (``legend``, ``meta``, ``nodeid``, ``label``) for styling."""

    spans: Line
    kind: str = ""


@dataclass(frozen=True)
class Pre:
    """Preformatted text shown as it is: a test's message, a command (``kind``: ``message``, ``rerun``)."""

    text: str
    kind: str = ""


@dataclass(frozen=True)
class Details:
    """A long text under a summary line (a verdict's full reason)."""

    summary: Line
    text: str


@dataclass(frozen=True)
class Charts:
    """The latency charts: drawn where a renderer can draw (HTML); the latency table carries the same figures."""


@dataclass(frozen=True)
class Part:
    """A titled part of a section: a subsection (``level`` 3) or an item in one (``level`` 4).

    ``kind`` says what an item is (``failure``) and ``status`` its kind (the handler's role); ``anchor`` is its
    place on the page.
    """

    title: Line
    blocks: tuple[Block, ...]
    anchor: str = ""
    level: int = 3
    kind: str = ""
    status: str = ""


Block = Table | Para | Pre | Details | Charts | Part


@dataclass(frozen=True)
class Section:
    """One section of the report, with its place on the page (``id``)."""

    id: str
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Glance:
    """One server at a glance: its label and its verdict as a badge."""

    label: str
    verdict: Span


@dataclass(frozen=True)
class Document:
    """The whole report as the renderers see it."""

    title: str
    window_title: str
    meta: str
    summary: str  # the verdicts in one line, servers grouped by verdict
    glance: tuple[Glance, ...]  # the same, one server at a time
    sections: tuple[Section, ...]
    footer: str
