"""Benchmark figures per server (``emmett_valkey_matrix.bench.ratios``) and the headline figures across servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import bench
from ..targets import Target
from .model import BenchmarkRun, Headline, HeadlineCell, RatioRow


@dataclass(frozen=True)
class _Spec:
    """A headline: the worst case of one figure (``bench.FIGURES`` key) over the cases whose name starts so."""

    key: str
    label: str
    figure: str
    case_prefix: str = ""

    @property
    def target(self) -> Target:
        target = bench.FIGURES[self.figure].target
        assert target is not None, self.figure  # every headline figure has a target
        return target


# The figures with a target, in the order the report shows them (tests/test_report_build.py checks that a full
# run fills every one).
HEADLINES = (
    _Spec("ours_vs_raw_get", "ours / valkey-py: get", "ours_vs_raw", "get-"),
    _Spec("ours_vs_raw_set", "ours / valkey-py: set", "ours_vs_raw", "set-"),
    _Spec("ours_vs_baseline_get", "ours / RedisCache: get", "ours_vs_baseline", "get-"),
    _Spec("ours_vs_baseline_set", "ours / RedisCache: set", "ours_vs_baseline", "set-"),
    _Spec("get_many_speedup", "get_many speed-up (100 gets → 1 get_many)", "get_many_speedup"),
    _Spec("set_many_speedup", "set_many speed-up (100 sets → 1 set_many)", "set_many_speedup"),
    _Spec("clear_worst_ping", "clear: worst concurrent PING", "clear_worst_ping_ms"),
    _Spec("clear_slowest_command", "clear: longest server command", "clear_slowest_command_ms"),
    _Spec("clear_wall_ratio", "clear: wall time / KEYS+DEL", "clear_wall_vs_keys_del"),
    _Spec("async_speedup", "async: concurrent tasks vs sequential", "async_concurrency_speedup"),
    _Spec("control", "control pair (identical clients)", "control"),
    _Spec("p99_get", "GET p99 (ours)", "ours_p99_ms", "get-"),
    _Spec("p99_set", "SET p99 (ours)", "ours_p99_ms", "set-"),
)
_ORDER = {spec.key: i for i, spec in enumerate(HEADLINES)}


def _status(ratio: bench.Ratio) -> str:
    if ratio.target is None:
        return "no_target"
    if ratio.met is None:
        return "not_judged"
    return "met" if ratio.met else "missed"


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


def _headline_of(ratio: bench.Ratio) -> str | None:
    return next((s.key for s in HEADLINES if s.figure == ratio.key and ratio.case.startswith(s.case_prefix)), None)


def _rows(doc: Mapping[str, Any], server_id: str) -> tuple[RatioRow, ...]:
    rows = [
        RatioRow(
            figure=r.metric,
            key=r.key,
            case=r.case,
            unit=r.unit,
            value=r.value,
            q1=r.q1,
            q3=r.q3,
            beside=r.beside,
            target=None if r.target is None else str(r.target),
            bound=r.target,
            met=r.met,
            status=_status(r),
            note=r.detail,
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
            unit=bench.FIGURES[spec.figure].unit,
            target=str(spec.target),
            bound=spec.target,
            beside_label=bench.FIGURES[spec.figure].beside,
            cells=tuple(_cell(spec, run) for run in with_figures),
        )
        for spec in HEADLINES
    )
