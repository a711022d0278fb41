"""The app benchmark's section (``reports/benchmarks/app.json``, written by ``python -m appbench``).

:func:`read` loads the file (``None`` when there is none or it is not an ``appbench-1`` document); :func:`markdown`
and :func:`html` render its section, with a bar chart of requests/s per route in HTML; :func:`into_markdown` and
:func:`into_html` put that section at the end of a rendered report (before its footer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from .markdown import md, table

SCHEMA = "appbench-1"
FILE = "app.json"
TITLE = "End-to-end app benchmark"
ANCHOR = "app-benchmark"
HANDLERS = (("ram", "RamCache"), ("redis", "RedisCache"), ("valkey", "ValkeyCache"), ("local", "ValkeyCache+local"))
KINDS = (("response", "@cache.response"), ("value", "await cache(key, fn)"))
Doc = Mapping[str, Any]
TIMES = "\N{MULTIPLICATION SIGN}"


def read(benchmarks_dir: Path) -> dict[str, Any] | None:
    """Return ``benchmarks_dir/app.json`` when it is an app benchmark document, else ``None``."""
    path = benchmarks_dir / FILE
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == SCHEMA else None


def _about(doc: Doc) -> str:
    server, load, machine = doc["server"], doc["load"], doc["machine"]
    words = [f"{str(server['product']).capitalize()} {server['version']} ({server['source']}), {load['tool']}: "
             f"{load['connections']} connections, {load['threads']} threads, median of {load.get('rounds', 1)} rounds "
             f"of "
             f"{load['seconds']} s per route after {load['warmup_seconds']} s of warm-up; granian with 1 worker; "
             f"{machine['cpus']} CPUs, load average "
             f"{machine['loadavg_before'][0]} before and {machine['loadavg_after'][0]} after the run."]
    for link in doc["links"]:
        m = link["measured"]
        if m:
            words.append(f"Link {link['name']}: a delaying proxy on loopback that adds {m['added_p50_us'] / 1000:.2f}"
                         f" ms to a PING round trip (p50 {m['proxied_p50_us']:.0f} µs through it, "
                         f"{m['direct_p50_us']:.0f} µs direct).")
    return " ".join(words)


def _verdict(met: bool | None) -> str:
    return "not judged" if met is None else ("met" if met else "missed")


def _route_cells(r: Doc) -> list[str]:
    errors = r["socket_errors"] + r["non_2xx"] + (0 if r["body_ok"] else 1)
    return [r["link"], r["path"], f"{r['requests_per_s']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
            str(errors)]


def _ratio_cells(q: Doc) -> list[str]:
    return [q["link"], q["kind"], q["label"], f"{q['value']:.3f}{TIMES}", q["target"] or "", _verdict(q["met"])]


ROUTE_HEAD = ("link", "route", "req/s", "p50 ms", "p99 ms", "errors")
RATIO_HEAD = ("link", "route kind", "ratio of req/s", "value", "target", "")


def _closing(doc: Doc) -> str:
    return f"{doc['targets']['met']} of {doc['targets']['total']} targets met"


def markdown(doc: Doc) -> list[str]:
    """Return the section's Markdown lines."""
    return [f"## {md(TITLE)}", "", md(_about(doc)), "",
            *table([md(h) for h in ROUTE_HEAD], ([md(c) for c in _route_cells(r)] for r in doc["routes"])),
            *table([md(h) for h in RATIO_HEAD], ([md(c) for c in _ratio_cells(q)] for q in doc["ratios"])),
            f"**{md(_closing(doc))}**", ""]


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    th = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="bench-rows"><caption>{escape(caption)}</caption>'
            f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>")


def _nice(value: float) -> float:
    power = 10 ** math.floor(math.log10(value)) if value > 0 else 1
    return float(next(s * power for s in (1, 2, 2.5, 5, 10) if s * power >= value))


def chart(doc: Doc, link: str) -> str | None:
    """Draw requests/s per handler on ``link``, one bar per route kind (solid: response, hatched: value)."""
    by = {(r["handler"], r["kind"]): r for r in doc["routes"] if r["link"] == link}
    if not by:
        return None
    left, top, plot_h, group_w, bar_w = 52, 40, 150, 96, 28
    width, base = left + group_w * len(HANDLERS) + 12, top + plot_h
    peak = _nice(max(r["requests_per_s"] for r in by.values()) * 1.15)
    sid = f"app-{escape(link)}"
    desc = "; ".join(f"{label} {k}: {by[(h, k)]['requests_per_s']:.0f} req/s" for h, label in HANDLERS
                     for k, _ in KINDS if (h, k) in by)
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {base + 34}" width="{width}" height="{base + 34}" '
           f'aria-labelledby="{sid}-t {sid}-d" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="{sid}-t">requests/s per route, link {escape(link)}</title>'
           f'<desc id="{sid}-d">{escape(desc)}</desc>',
           f'<defs><pattern id="{sid}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect class="p99-bg" width="6" height="6"/>'
           '<line class="p99-line" x1="0" y1="0" x2="0" y2="6" stroke-width="3"/></pattern></defs>',
           f'<text class="chart-title" x="4" y="16">link: {escape(link)}</text>',
           f'<text class="tick" x="4" y="{top - 8}">req/s</text>']
    for tick in (0.0, peak / 2, peak):
        ty = base - plot_h * tick / peak
        out.append(f'<line class="grid" x1="{left}" x2="{width - 12}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
                   f'<text class="tick" x="{left - 4}" y="{ty:.1f}" dy="0.32em" text-anchor="end">{tick:.0f}</text>')
    for i, (handler, label) in enumerate(HANDLERS):
        x0 = left + group_w * i + (group_w - 2 * bar_w - 4) / 2
        for j, (kind, kind_label) in enumerate(KINDS):
            r = by.get((handler, kind))
            if r is None:
                continue
            h = plot_h * r["requests_per_s"] / peak
            bx = x0 + j * (bar_w + 4)
            style = ("p99", f' fill="url(#{sid}-hatch)"') if kind == "value" else ("p50", "")
            out.append(f'<rect class="bar {style[0]}"{style[1]} x="{bx:.1f}" y="{base - h:.1f}" width="{bar_w}" '
                       f'height="{h:.1f}"><title>{escape(label)}, {escape(kind_label)}: '
                       f'{r["requests_per_s"]:.0f} req/s, p99 {r["p99_ms"]:.2f} ms</title></rect>'
                       f'<text class="value" x="{bx + bar_w / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle">'
                       f'{r["requests_per_s"] / 1000:.1f}k</text>')
        out.append(f'<text class="server" x="{left + group_w * i + group_w / 2:.1f}" y="{base + 15}" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{width - 12}" y1="{base}" y2="{base}"/></svg>')
    return "".join(out)


def html(doc: Doc) -> str:
    """Return the section's HTML: what was run, the charts (one per link), the routes and the ratios."""
    boxes = "".join(f'<div class="chart-box">{svg}</div>' for link in doc["links"]
                    if (svg := chart(doc, link["name"])) is not None)
    return (f'<section id="{ANCHOR}"><h2>{escape(TITLE)}</h2><p class="run-meta">{escape(_about(doc))}</p>'
            f'<figure class="charts"><figcaption>requests/s per route: solid bars {escape(KINDS[0][1])}, hatched '
            f'bars {escape(KINDS[1][1])}</figcaption><div class="chart-grid">{boxes}</div></figure>'
            + _html_table(ROUTE_HEAD, [_route_cells(r) for r in doc["routes"]], "per route")
            + _html_table(RATIO_HEAD, [_ratio_cells(q) for q in doc["ratios"]], "ratios and targets")
            + f"<p><strong>{escape(_closing(doc))}</strong></p></section>")


def into_markdown(text: str, doc: Doc | None) -> str:
    """Put the section before the last line of a rendered Markdown report (its footer)."""
    if doc is None:
        return text
    body, _, footer = text.rstrip("\n").rpartition("\n")
    return "\n".join([body, *markdown(doc), footer]) + "\n"


def into_html(text: str, doc: Doc | None) -> str:
    """Put the section at the end of a rendered HTML report's ``<main>``, and its link in the ``<nav>``."""
    if doc is None:
        return text
    at = text.rindex("</main>")
    text = text[:at] + html(doc) + text[at:]
    nav = text.index("</nav>")
    return text[:nav] + f'<a href="#{ANCHOR}">{escape(TITLE)}</a>' + text[nav:]
