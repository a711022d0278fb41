"""Inline SVG latency charts: per operation, grouped p50/p99 bars per server and the p99 expected of it.

Bars are told apart by fill *and* pattern (p50 solid, p99 hatched); a p99 over its expectation carries ``✘`` in
its label, so nothing depends on colour alone. Styling is in ``report.css`` (classes), geometry here.
"""

from __future__ import annotations

import math
from html import escape

from . import text as t
from .model import OURS, Report
from .perf import OP_LABELS, OPS

# Above the plot, one row each, so they never meet however narrow the chart: the title (baseline 16), the
# expectation's legend (baseline 31), the unit (baseline TOP - 8).
TOP, BOTTOM, LEFT, RIGHT = 54, 40, 44, 12
TITLE_Y, EXPECT_Y = 16, 31
PLOT_H = 150
GROUP_W, BAR_W, BAR_GAP = 66, 22, 4
# Generous average glyph widths (em) of the sans-serif fonts report.css names, to size the chart to its text.
_EM_BOLD, _EM = 0.68, 0.62


def _nice_max(value: float) -> float:
    """Return the smallest of 1, 2, 2.5, 5 x 10^k that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def chart(report: Report, op: str) -> str | None:
    """One chart for ``op`` over every server with a sample of our handler, or ``None`` when there is none."""
    samples = [
        (t.column_of(report, row.server_id), o)
        for row in report.latency
        if row.handler == OURS
        for o in row.ops
        if o.op == op and o.p99_ms is not None
    ]
    if not samples:
        return None
    expected = samples[0][1].expected_p99_ms
    top = _nice_max(max([o.p99_ms or 0.0 for _, o in samples] + [expected or 0.0]) * 1.15)
    name = OP_LABELS[op]
    expect_label = f"- - expected p99 < {t.ms(expected)} ms" if expected is not None else ""
    text_w = max(len(name) * 13 * _EM_BOLD, len(expect_label) * 10 * _EM)
    width = math.ceil(max(LEFT + GROUP_W * len(samples) + RIGHT, 4 + text_w + RIGHT))
    group_w = (width - LEFT - RIGHT) / len(samples)  # wider than GROUP_W when the text sets the width
    height = TOP + PLOT_H + BOTTOM
    base = TOP + PLOT_H

    def y(value: float) -> float:
        return base - PLOT_H * value / top

    sid = f"lat-{op}"
    title = f"{name} latency of {OURS} per server, p50 and p99 in ms"
    desc = "; ".join(f"{c.label}: p50 {t.ms(o.p50_ms)} ms, p99 {t.ms(o.p99_ms)} ms" for c, o in samples)
    if expected is not None:
        desc += f"; expectation: p99 under {t.ms(expected)} ms"
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{sid}-t {sid}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{sid}-t">{escape(title)}</title><desc id="{sid}-d">{escape(desc)}</desc>',
        f'<defs><pattern id="{sid}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect class="p99-bg" width="6" height="6"/>'
        '<line class="p99-line" x1="0" y1="0" x2="0" y2="6" stroke-width="3"/></pattern></defs>',
        f'<text class="chart-title" x="4" y="{TITLE_Y}">{escape(name)}</text>',
    ]
    for tick in (0.0, top / 2, top):
        ty = _num(y(tick))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{ty}" y2="{ty}"/>')
        out.append(f'<text class="tick" x="{LEFT - 4}" y="{ty}" dy="0.32em" text-anchor="end">{t.ms(tick)}</text>')
    out.append(f'<text class="tick" x="4" y="{TOP - 8}">ms</text>')
    for i, (column, o) in enumerate(samples):
        x0 = LEFT + group_w * i + (group_w - 2 * BAR_W - BAR_GAP) / 2
        for j, (kind, value) in enumerate((("p50", o.p50_ms or 0.0), ("p99", o.p99_ms or 0.0))):
            bx, by = x0 + j * (BAR_W + BAR_GAP), y(value)
            fill = f' fill="url(#{sid}-hatch)"' if kind == "p99" else ""
            out.append(
                f'<rect class="bar {kind}"{fill} x="{_num(bx)}" y="{_num(by)}" width="{BAR_W}" '
                f'height="{_num(base - by)}"><title>{escape(column.label)} {kind}: {t.ms(value)} ms</title></rect>'
            )
        p99x = x0 + BAR_W + BAR_GAP + BAR_W / 2
        over = o.met is False
        label = f"{t.ms(o.p99_ms)}{' ✘' if over else ''}"
        out.append(
            f'<text class="value{" over" if over else ""}" x="{_num(p99x)}" y="{_num(y(o.p99_ms or 0.0) - 4)}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
        cx = _num(LEFT + group_w * i + group_w / 2)
        out.append(
            f'<text class="server" x="{cx}" y="{base + 15}" text-anchor="middle">{escape(column.product_name)}'
            f'<tspan x="{cx}" dy="1.2em">{escape(column.version or column.line)}</tspan></text>'
        )
    if expected is not None:
        ey = _num(y(expected))
        out.append(f'<line class="expect" x1="{LEFT}" x2="{width - RIGHT}" y1="{ey}" y2="{ey}"/>')
        out.append(f'<text class="expect-label" x="4" y="{EXPECT_Y}">{escape(expect_label)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{width - RIGHT}" y1="{base}" y2="{base}"/>')
    out.append("</svg>")
    return "".join(out)


def charts(report: Report) -> list[str]:
    """Charts for GET, SET, get_many and pattern clear, for those that have samples."""
    return [svg for op in OPS if (svg := chart(report, op)) is not None]


def legend() -> str:
    """Draw a small SVG legend: p50 solid, p99 hatched, expectation dashed."""
    return (
        '<svg class="legend" role="img" aria-label="legend: solid bar p50, hatched bar p99, dashed line '
        'expected p99" viewBox="0 0 240 18" width="240" height="18" xmlns="http://www.w3.org/2000/svg">'
        '<defs><pattern id="legend-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect class="p99-bg" width="6" height="6"/>'
        '<line class="p99-line" x1="0" y1="0" x2="0" y2="6" stroke-width="3"/></pattern></defs>'
        '<rect class="bar p50" x="0" y="3" width="14" height="12"/><text class="tick" x="18" y="13">p50</text>'
        '<rect class="bar p99" fill="url(#legend-hatch)" x="60" y="3" width="14" height="12"/>'
        '<text class="tick" x="78" y="13">p99</text>'
        '<line class="expect" x1="120" x2="150" y1="9" y2="9"/>'
        '<text class="tick" x="156" y="13">expected p99</text></svg>'
    )
