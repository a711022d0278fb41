"""The benchmark's ratios and targets, and the table it prints: pure functions of the measured routes.

The shape written to ``reports/benchmarks/app.json`` (``schema: "appbench-1"``)::

    server   {id, product, version, source}           the Valkey server both network handlers talk to
    machine  {cpus, loadavg_before, loadavg_after}   os.getloadavg() around the run (the machine may be shared)
    load     {tool, connections, threads, seconds, rounds, warmup_seconds}   seconds: per route and round
    links    [{name, added_rtt_ms, measured}]        measured: the proxy's PING p50s (µs), null on loopback
    routes   [{link, handler, kind, path, requests_per_s, rounds_requests_per_s, requests, p50_ms, p99_ms,
               socket_errors, non_2xx, body_ok}]          medians over the rounds; requests and errors: sums
    ratios   [{link, kind, figure, label, value, ours, beside, target, bound, met}]   value = ours / beside req/s
    targets  {met, total}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA = "appbench-1"
KINDS = ("response", "value")
# (figure, ours, beside, label, bound per link): req/s of our route over the peer's route of the same kind
RATIOS = (
    ("valkey_vs_redis", "valkey", "redis", "ValkeyCache / RedisCache", {"loopback": 2.0, "1ms": 10.0}),
    ("local_vs_ram", "local", "ram", "ValkeyCache(local_cache=True) / RamCache", {"loopback": 0.95, "1ms": 0.95}),
)
HANDLER_LABELS = {"ram": "RamCache", "redis": "RedisCache", "valkey": "ValkeyCache",
                  "local": "ValkeyCache+local"}


def ratios(routes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every ratio whose two routes were measured, with its target (``>= bound``) and whether it is met."""
    by = {(r["link"], r["handler"], r["kind"]): r for r in routes}
    links = list(dict.fromkeys(r["link"] for r in routes))
    out = []
    for link in links:
        for figure, ours, beside, label, bounds in RATIOS:
            for kind in KINDS:
                a, b = by.get((link, ours, kind)), by.get((link, beside, kind))
                if a is None or b is None or not b["requests_per_s"]:
                    continue
                value = a["requests_per_s"] / b["requests_per_s"]
                bound = bounds.get(link)
                out.append({"link": link, "kind": kind, "figure": figure, "label": label, "value": round(value, 3),
                            "ours": a["requests_per_s"], "beside": b["requests_per_s"],
                            "target": None if bound is None else f">= {bound}", "bound": bound,
                            "met": None if bound is None else value >= bound})
    return out


def failures(routes: Sequence[Mapping[str, Any]]) -> list[str]:
    """List what fails the run (a missed target does not): routes with socket errors, non-2xx answers, wrong bodies."""
    bad = []
    for r in routes:
        problems = [f"{r['socket_errors']} socket errors" if r["socket_errors"] else "",
                    f"{r['non_2xx']} non-2xx answers" if r["non_2xx"] else "",
                    "" if r["body_ok"] else "a wrong body", "" if r["requests"] else "no request answered"]
        if any(problems):
            bad.append(f"{r['link']} {r['path']}: {', '.join(p for p in problems if p)}")
    return bad


def table(doc: Mapping[str, Any]) -> str:
    """Render the run as text: one line per route, then the ratios, then ``N of M targets met``."""
    lines = [f"{'link':<9}{'route':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    for r in doc["routes"]:
        errors = r["socket_errors"] + r["non_2xx"] + (0 if r["body_ok"] else 1)
        lines.append(f"{r['link']:<9}{r['path']:<26}{r['requests_per_s']:>10.0f}{r['p50_ms']:>9.2f}"
                     f"{r['p99_ms']:>9.2f}{errors:>8}")
    lines.append("")
    for q in doc["ratios"]:
        verdict = "" if q["met"] is None else ("met" if q["met"] else "MISSED")
        lines.append(f"{q['link']:<9}{q['kind']:<9}{q['label']:<42}{q['value']:>7.3f}x  "
                     f"(target {q['target']}) {verdict}")
    for link in doc["links"]:
        if link["measured"]:
            m = link["measured"]
            lines.append(f"proxy {link['name']}: adds {m['added_p50_us']:.0f} µs to a PING round trip (p50 "
                         f"{m['proxied_p50_us']:.0f} µs through it, {m['direct_p50_us']:.0f} µs direct; "
                         f"its sleeps: {m['configured_us']:.0f} µs per round trip)")
    lines.append(f"{doc['targets']['met']} of {doc['targets']['total']} targets met")
    return "\n".join(lines)


def count(ratio_rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many ratios with a target are met, of how many."""
    judged = [q for q in ratio_rows if q["met"] is not None]
    return {"met": sum(1 for q in judged if q["met"]), "total": len(judged)}
