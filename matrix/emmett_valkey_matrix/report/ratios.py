"""Benchmark figures per server (``emmett_valkey_matrix.bench.ratios``) and the headline figures across servers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import bench
from .model import BenchmarkRun, Headline, HeadlineCell, RatioRow


@dataclass(frozen=True)
class _Spec:
    key: str
    label: str
    unit: str
    target: bench.Target
    match: Callable[[bench.Ratio], bool]
    beside_label: str | None = None


def _is(metric: str, prefix: str = "") -> Callable[[bench.Ratio], bool]:
    return lambda r: r.metric == metric and r.case.startswith(prefix)


def _starts(metric: str) -> Callable[[bench.Ratio], bool]:
    return lambda r: r.metric.startswith(metric)


def _ends(metric: str) -> Callable[[bench.Ratio], bool]:
    return lambda r: r.metric.endswith(metric)


# The figures the benchmark targets speak of, in the order the report shows them. Matched on the metric names
# of ``bench.ratios`` (tests/test_report_build.py checks that a full run fills every one).
HEADLINES = (
    _Spec("ours_vs_raw_get", "ours / valkey-py: get", "ratio", bench.OURS_VS_RAW, _is("ours / valkey-py", "get-")),
    _Spec("ours_vs_raw_set", "ours / valkey-py: set", "ratio", bench.OURS_VS_RAW, _is("ours / valkey-py", "set-")),
    _Spec(
        "ours_vs_baseline_get",
        "ours / RedisCache: get",
        "ratio",
        bench.OURS_VS_BASELINE,
        _is("ours / RedisCache", "get-"),
    ),
    _Spec(
        "ours_vs_baseline_set",
        "ours / RedisCache: set",
        "ratio",
        bench.OURS_VS_BASELINE,
        _is("ours / RedisCache", "set-"),
    ),
    _Spec(
        "get_many_speedup",
        "get_many speed-up (100 gets → 1 get_many)",
        "speedup",
        bench.GET_MANY_SPEEDUP,
        _starts("get_many speed-up"),
    ),
    _Spec(
        "set_many_speedup",
        "set_many speed-up (100 sets → 1 set_many)",
        "speedup",
        bench.SET_MANY_SPEEDUP,
        _starts("set_many speed-up"),
    ),
    _Spec(
        "clear_worst_ping",
        "clear: worst concurrent PING",
        "ms",
        bench.CLEAR_WORST_PING_MS,
        _is("clear: worst concurrent PING ms"),
        "KEYS+DEL",
    ),
    _Spec(
        "clear_slowest_command",
        "clear: longest server command",
        "ms",
        bench.CLEAR_SLOWEST_COMMAND_MS,
        _is("clear: slowest server command ms"),
        "KEYS+DEL",
    ),
    _Spec(
        "clear_wall_ratio",
        "clear: wall time / KEYS+DEL",
        "ratio",
        bench.CLEAR_WALL_VS_KEYS_DEL,
        _is("clear: wall time / KEYS+DEL"),
    ),
    _Spec(
        "async_speedup",
        "async: concurrent tasks vs sequential",
        "speedup",
        bench.ASYNC_CONCURRENCY_SPEEDUP,
        _ends("tasks / 1 sequential (speed-up)"),
    ),
    _Spec("control", "control pair (identical clients)", "ratio", bench.CONTROL, _starts("control pair")),
    _Spec("p99_get", "GET p99 (ours)", "ms", bench.P99_MS, _is("ours p99 ms", "get-")),
    _Spec("p99_set", "SET p99 (ours)", "ms", bench.P99_MS, _is("ours p99 ms", "set-")),
)
_ORDER = {spec.key: i for i, spec in enumerate(HEADLINES)}


def _unit(metric: str) -> str:
    if metric.endswith(" ms"):
        return "ms"
    return "speedup" if "speed-up" in metric else "ratio"


def _status(ratio: bench.Ratio) -> str:
    if ratio.target is None:
        return "no_target"
    if ratio.met is None:
        return "not_judged"
    return "met" if ratio.met else "missed"


def _headline_of(ratio: bench.Ratio) -> str | None:
    return next((spec.key for spec in HEADLINES if spec.match(ratio)), None)


def size_of(doc: Mapping[str, Any]) -> str | None:
    """``full`` when every benchmark with figures is full-size (as ``bench`` judges it), ``check`` else."""
    sizes = [
        b["extra_info"].get("size", "full")
        for b in doc.get("benchmarks") or []
        if isinstance(b, Mapping) and isinstance(b.get("extra_info"), Mapping) and b["extra_info"]
    ]
    if not sizes:
        return None
    return "full" if all(size == "full" for size in sizes) else "check"


def _rows(doc: Mapping[str, Any], server_id: str) -> tuple[RatioRow, ...]:
    rows = [
        RatioRow(
            figure=r.metric,
            case=r.case,
            unit=_unit(r.metric),
            value=r.value,
            q1=r.q1,
            q3=r.q3,
            beside=r.beside,
            target=r.target,
            met=r.met,
            status=_status(r),
            note=r.note,
            headline=_headline_of(r),
        )
        for r in bench.ratios(doc, server_id)
    ]
    # headline figures first, in the targets' order; every other figure after them, in bench's order
    indexed = sorted(enumerate(rows), key=lambda item: (_ORDER.get(item[1].headline or "", len(_ORDER)), item[0]))
    return tuple(row for _, row in indexed)


def runs(
    order: Sequence[str],
    usable: Sequence[tuple[str, Mapping[str, Any], str]],
    rejected: Sequence[str],
) -> tuple[BenchmarkRun, ...]:
    """One run per catalogued server id in ``order``: its figures, or why there are none.

    ``usable`` holds ``(server_id, pytest-benchmark document, file name)``; ``rejected`` the ids whose file was not
    used.
    """
    by_id = {sid: (doc, name) for sid, doc, name in usable}
    out = []
    for sid in order:
        if sid not in by_id:
            status = "rejected" if sid in rejected else "missing"
            out.append(BenchmarkRun(sid, None, status, None, False, 0, 0, 0, ()))
            continue
        doc, name = by_id[sid]
        rows = _rows(doc, sid)
        size = size_of(doc)
        count = {s: sum(1 for r in rows if r.status == s) for s in ("met", "missed", "not_judged")}
        out.append(
            BenchmarkRun(
                server_id=sid,
                file=name,
                status="figures" if rows else "no_figures",
                size=size,
                judged=size == "full",
                met=count["met"],
                missed=count["missed"],
                not_judged=count["not_judged"],
                ratios=rows,
            )
        )
    return tuple(out)


def _worst(spec: _Spec, rows: Sequence[RatioRow]) -> RatioRow:
    op = spec.target.op
    if op == "±":
        return max(rows, key=lambda r: abs(r.value - 1.0))
    return min(rows, key=lambda r: r.value) if op == ">=" else max(rows, key=lambda r: r.value)


def _cell(spec: _Spec, run: BenchmarkRun) -> HeadlineCell:
    rows = [r for r in run.ratios if r.headline == spec.key]
    if not rows:
        return HeadlineCell(run.server_id, None, None, None, 0, "not_measured")
    worst = _worst(spec, rows)
    statuses = {r.status for r in rows}
    status = "missed" if "missed" in statuses else ("met" if statuses == {"met"} else "not_judged")
    return HeadlineCell(run.server_id, worst.value, worst.beside, worst.case, len(rows), status)


def headlines(benchmark_runs: Sequence[BenchmarkRun]) -> tuple[Headline, ...]:
    """Return the targets' figures (worst case per server) for every server with figures; none if none has any."""
    with_figures = [run for run in benchmark_runs if run.status == "figures"]
    if not with_figures:
        return ()
    return tuple(
        Headline(
            key=spec.key,
            label=spec.label,
            unit=spec.unit,
            target=str(spec.target),
            beside_label=spec.beside_label,
            cells=tuple(_cell(spec, run) for run in with_figures),
        )
        for spec in HEADLINES
    )
