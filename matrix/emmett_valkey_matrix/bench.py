"""Benchmark figures and the targets they must meet, read from a pytest-benchmark JSON (``--benchmark-json``).

Plain JSON processing: nothing here imports Emmett, the handler or a client library. The certification benchmarks
(``certification/test_benchmarks.py``) store their paired measurements in each benchmark's ``extra_info``:

- ``role``: ``ours`` (ValkeyCache), ``raw`` (valkey-py doing the same work), ``baseline`` (RedisCache), ``control``;
- ``op``: ``get``, ``set``, ``get_many``, ``set_many``, ``clear``, ``async_concurrency``, ``get_or_set_loop``,
  ``local_get``, ``local_get_many``, ``local_miss``, ``local_mixed`` (the local cache), and on a cluster
  (``certification/test_cluster_benchmarks.py``) ``cluster_get``, ``cluster_set``, ``cluster_get_many``;
- ``paired``: ``{name: {"median", "q1", "q3", "rounds", ...}}``, each the time ratio *a*/*b* over rounds of
  A, B, B, A blocks, *a* being the benchmarked callable (below 1: *a* is faster);
- ``latency``: ``{"n", "p50_ms", "p99_ms", "max_ms"}``; ``clear`` and ``keys_del``: blocking figures of a clear;
- ``size``: ``full`` or ``check`` (a ``--benchmark-disable`` run's figures are not judged).

:func:`ratios` turns one document into :class:`Ratio` rows (pure); :func:`render` prints them; :func:`main` is the
``ratios`` command, which exits 1 when a judged figure misses its target (0 when all meet theirs, 2 for a file it
cannot read).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .targets import (
    ASYNC_CONCURRENCY_SPEEDUP,
    ASYNC_ONE_TASK_VS_ASYNCIO,
    ASYNC_VS_ASYNCIO_POOL,
    ASYNC_VS_GLIDE,
    CLEAR_SLOWEST_COMMAND_MS,
    CLEAR_WALL_VS_KEYS_DEL,
    CLEAR_WORST_PING_MS,
    CLUSTER_GET_MANY_SPEEDUP,
    CLUSTER_OURS_VS_RAW,
    CONTROL,
    GET_MANY_SPEEDUP,
    LOCAL_GET_MANY_SPEEDUP,
    LOCAL_HIT_SPEEDUP,
    LOCAL_MISS_VS_PLAIN,
    LOCAL_VS_BASELINE,
    LOCAL_VS_RAMCACHE,
    MS,
    OURS_VS_BASELINE,
    OURS_VS_RAW,
    P99_MS,
    RATIO,
    SET_MANY_SPEEDUP,
    SPEEDUP,
    SYNC_VS_SOCKET,
    Target,
)

__all__ = ["FIGURES", "Figure", "Ratio", "Target", "load", "ratios", "render", "shorten", "verdict"]


@dataclass(frozen=True)
class Figure:
    """What one kind of figure is: its stable key, how it reads, its unit and the target it must meet (if any).

    ``label`` is a format string (``{tasks}``); ``beside`` names the comparison's other side when a row carries it.
    """

    key: str
    label: str
    unit: str
    target: Target | None = None
    beside: str | None = None


#: every kind of figure by its stable key: the one home of its label, unit and target
FIGURES: dict[str, Figure] = {
    f.key: f
    for f in (
        Figure("ours_vs_raw", "ours / valkey-py", RATIO, OURS_VS_RAW),
        Figure("ours_vs_baseline", "ours / RedisCache", RATIO, OURS_VS_BASELINE),
        Figure("ours_vs_raw_same_timeout", "ours / valkey-py, same socket timeout", RATIO),
        Figure("ours_vs_single_connection", "ours / one dedicated connection", RATIO),
        Figure("baseline_vs_raw", "RedisCache / redis-py", RATIO),
        Figure("ours_p99_ms", "ours p99 ms", MS, P99_MS),
        Figure("baseline_p99_ms", "RedisCache p99 ms", MS),
        Figure("parser_default_vs_python", "default parser / Python parser", RATIO),
        Figure("get_many_speedup", "get_many speed-up (100 gets / 1 get_many)", SPEEDUP, GET_MANY_SPEEDUP),
        Figure("get_many_vs_raw", "get_many: ours / raw MGET", RATIO),
        Figure("set_many_speedup", "set_many speed-up (100 sets / 1 set_many)", SPEEDUP, SET_MANY_SPEEDUP),
        Figure("set_many_vs_raw", "set_many: ours / raw pipeline", RATIO),
        Figure("clear_worst_ping_ms", "clear: worst concurrent PING ms", MS, CLEAR_WORST_PING_MS, "KEYS+DEL"),
        Figure("clear_slowest_command_ms", "clear: slowest server command ms", MS, CLEAR_SLOWEST_COMMAND_MS,
               "KEYS+DEL"),
        Figure("clear_wall_vs_keys_del", "clear: wall time / KEYS+DEL", RATIO, CLEAR_WALL_VS_KEYS_DEL),
        Figure("async_concurrency_speedup", "{tasks} tasks / 1 sequential (speed-up)", SPEEDUP,
               ASYNC_CONCURRENCY_SPEEDUP),
        Figure("async_vs_glide", "{tasks} tasks aget: ours / GLIDE async", RATIO, ASYNC_VS_GLIDE),
        Figure("async_vs_asyncio_pool", "{tasks} tasks aget: ours / valkey.asyncio pool", RATIO,
               ASYNC_VS_ASYNCIO_POOL),
        Figure("async_one_task_vs_asyncio", "1 task aget: ours / valkey.asyncio", RATIO, ASYNC_ONE_TASK_VS_ASYNCIO),
        Figure("sync_vs_socket", "get: ours / bare socket (the floor)", RATIO, SYNC_VS_SOCKET),
        Figure("sync_vs_glide", "get: ours / GLIDE sync", RATIO),
        Figure("sync_vs_ramcache", "get: ours / RamCache", RATIO),
        Figure("cluster_ours_vs_raw", "cluster: ours / valkey-py ValkeyCluster", RATIO, CLUSTER_OURS_VS_RAW),
        Figure("cluster_get_many_speedup", "cluster: get_many speed-up (100 gets / 1 get_many)", SPEEDUP,
               CLUSTER_GET_MANY_SPEEDUP),
        Figure("cluster_get_many_vs_raw", "cluster: get_many: ours / raw mget_nonatomic", RATIO),
        Figure("control", "control pair (identical clients)", RATIO, CONTROL),
        Figure("local_hit_speedup", "local cache hit speed-up (server get / local hit)", SPEEDUP, LOCAL_HIT_SPEEDUP),
        Figure("local_vs_baseline", "ours with local cache / RedisCache", RATIO, LOCAL_VS_BASELINE),
        Figure("local_vs_ramcache", "local cache hit / RamCache.get", RATIO, LOCAL_VS_RAMCACHE),
        Figure("local_get_many_speedup", "get_many of 100 local hits speed-up (server get_many / local)", SPEEDUP,
               LOCAL_GET_MANY_SPEEDUP),
        Figure("local_miss_vs_plain", "miss: local cache on / off", RATIO, LOCAL_MISS_VS_PLAIN),
        Figure("local_mixed_speedup", "mixed 90% reads: ops/s with / without local cache", SPEEDUP),
        Figure("ours_vs_baseline_unpaired", "ours / RedisCache (unpaired)", RATIO),
    )
}
NOT_JUDGED = "check-size run: not judged"


@dataclass(frozen=True)
class Ratio:
    """One figure of one server: which (``key``), its value (with quartiles when paired) and whether it is met.

    ``metric`` is the figure's label as shown; ``met`` is None without a target or in a check-size run; ``detail``
    says what is particular to this measurement (``note`` adds that an unjudged figure is not judged).
    """

    server: str
    key: str
    metric: str
    case: str
    value: float
    q1: float | None = None
    q3: float | None = None
    met: bool | None = None
    beside: float | None = None  # the comparison's other side, e.g. the KEYS+DEL figure beside ours
    detail: str = ""

    @property
    def figure(self) -> Figure:
        """The kind of figure this is."""
        return FIGURES[self.key]

    @property
    def unit(self) -> str:
        """``ratio``, ``speedup`` or ``ms``."""
        return self.figure.unit

    @property
    def target(self) -> Target | None:
        """The bound this figure must meet, or None."""
        return self.figure.target

    @property
    def note(self) -> str:
        """The detail, and that the figure is not judged when it has a target but came from a check-size run."""
        unjudged = NOT_JUDGED if self.target is not None and self.met is None else ""
        return "; ".join(part for part in (self.detail, unjudged) if part)

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data: every field, the unit, the target as text and as data (``bound``) and the note."""
        target = self.target
        return {**asdict(self), "unit": self.unit, "target": None if target is None else str(target),
                "bound": None if target is None else asdict(target), "note": self.note}


def shorten(text: str, limit: int = 60) -> str:
    """Return ``text`` cut to at most ``limit`` characters at a word boundary, ending with `` …`` when cut.

    ``shorten("DEL bench:clear:3162 bench:clear:10983", 30)`` -> ``"DEL bench:clear:3162 …"``; a single word longer
    than ``limit`` is cut inside it (still with the ellipsis).
    """
    if len(text) <= limit:
        return text
    head = text[: limit - 2]
    if not text[limit - 2].isspace() and not head[-1].isspace() and " " in head.strip():  # mid-word
        head = head.rstrip().rsplit(" ", 1)[0]
    return head.rstrip() + " …"


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _server_of(doc: Mapping[str, Any]) -> str:
    for bench in doc.get("benchmarks") or []:
        params = bench.get("params") if isinstance(bench, Mapping) else None
        if isinstance(params, Mapping) and params.get("server"):
            return str(params["server"])
    return "?"


def _case(bench: Mapping[str, Any]) -> str:
    return str(bench.get("group") or bench.get("name") or "?")


class _Rows:
    def __init__(self, server: str, judged: bool) -> None:
        self.server, self.judged = server, judged
        self.rows: list[Ratio] = []

    def add(self, key: str, case: str, value: float | None, *, q1: float | None = None, q3: float | None = None,
            beside: float | None = None, detail: str = "", label: Mapping[str, object] | None = None) -> None:
        if value is None:
            return
        figure = FIGURES[key]
        met = figure.target.met(value) if figure.target is not None and self.judged else None
        self.rows.append(Ratio(self.server, key, figure.label.format(**(label or {})), case, round(value, 4),
                               _round(q1), _round(q3), met, _round(beside), detail))

    def paired(self, key: str, case: str, pair: object, *, invert: bool = False, detail: str = "",
               label: Mapping[str, object] | None = None) -> None:
        if not isinstance(pair, Mapping):
            return
        median, q1, q3 = _num(pair.get("median")), _num(pair.get("q1")), _num(pair.get("q3"))
        if median is None or median <= 0:
            return
        if invert:  # a speed-up: time(b) / time(a)
            median, q1, q3 = 1 / median, _inv(q3), _inv(q1)
        self.add(key, case, median, q1=q1, q3=q3, detail=detail, label=label)


def _inv(value: float | None) -> float | None:
    return 1 / value if value else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _benchmarks(doc: Mapping[str, Any]) -> Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    for bench in doc.get("benchmarks") or []:
        if isinstance(bench, Mapping) and isinstance(bench.get("extra_info"), Mapping):
            yield bench, bench["extra_info"]


def _unpaired(doc: Mapping[str, Any], out: _Rows) -> None:
    """Add ours/RedisCache for groups with both rows but no paired figure: a ratio of medians (less reliable)."""
    medians: dict[str, dict[str, float]] = {}
    for bench, info in _benchmarks(doc):
        median = _num((bench.get("stats") or {}).get("median"))
        if median and info.get("op") == "get_or_set_loop" and info.get("role") in ("ours", "baseline"):
            medians.setdefault(_case(bench), {})[str(info["role"])] = median
    for case, by_role in sorted(medians.items()):
        if "ours" in by_role and "baseline" in by_role:
            out.add("ours_vs_baseline_unpaired", case, by_role["ours"] / by_role["baseline"],
                    detail="ratio of separate medians")


def ratios(doc: Mapping[str, Any], server: str | None = None) -> list[Ratio]:
    """Every figure of one pytest-benchmark document, in the order of its benchmarks (see :data:`FIGURES`)."""
    sid = server or _server_of(doc)
    benches = list(_benchmarks(doc))
    judged = all(info.get("size", "full") == "full" for _, info in benches)
    out = _Rows(sid, judged)
    for bench, info in benches:
        role, op, case, pairs = info.get("role"), info.get("op"), _case(bench), info.get("paired") or {}
        if not isinstance(pairs, Mapping):
            pairs = {}
        if op in ("get", "set") and role == "ours" and not case.startswith("parser-"):
            out.paired("ours_vs_raw", case, pairs.get("vs_raw"))
            out.paired("ours_vs_baseline", case, pairs.get("vs_baseline"))
            out.paired("ours_vs_raw_same_timeout", case, pairs.get("vs_raw_same_timeout"),
                       detail="the handler's own overhead (socket_timeout=5 costs a poll per read)")
            out.paired("ours_vs_single_connection", case, pairs.get("vs_single_connection"),
                       detail="what holding one connection per thread would change")
        elif op in ("get", "set") and role == "baseline":
            out.paired("baseline_vs_raw", case, pairs.get("vs_raw"))
        if op in ("get", "set") and role in ("ours", "baseline") and isinstance(info.get("latency"), Mapping):
            lat = info["latency"]
            out.add("ours_p99_ms" if role == "ours" else "baseline_p99_ms", case, _num(lat.get("p99_ms")),
                    detail=f"p50 {lat.get('p50_ms')} ms, n={lat.get('n')}")
        if case.startswith("parser-"):
            parsers = info.get("parser")
            parser = parsers.get("valkey-py", "?") if isinstance(parsers, Mapping) else "?"
            out.paired("parser_default_vs_python", case, pairs.get("default_vs_python_parser"),
                       detail=f"default: {parser}")
        if op == "get_many":
            out.paired("get_many_speedup", case, pairs.get("vs_singles"), invert=True)
            out.paired("get_many_vs_raw", case, pairs.get("vs_raw"))
        if op == "set_many":
            out.paired("set_many_speedup", case, pairs.get("vs_singles"), invert=True)
            out.paired("set_many_vs_raw", case, pairs.get("vs_raw"))
        if op in ("cluster_get", "cluster_set") and role == "ours":
            out.paired("cluster_ours_vs_raw", case, pairs.get("vs_raw"))
        if op == "cluster_get_many":
            out.paired("cluster_get_many_speedup", case, pairs.get("vs_singles"), invert=True)
            out.paired("cluster_get_many_vs_raw", case, pairs.get("vs_raw"))
        if op == "clear":
            _clear(info, case, out)
        if op == "async_concurrency":
            out.paired("async_concurrency_speedup", case, pairs.get("sequential_vs_concurrent"),
                       label={"tasks": info.get("tasks", 50)})
        if op == "async_peers":
            _async_peers(info, case, pairs, out)
        if op == "sync_peers":
            detail = f"ours {info.get('latency_us')} µs per get"
            out.paired("sync_vs_socket", case, pairs.get("vs_socket"), detail=detail)
            out.paired("ours_vs_raw", case, pairs.get("vs_raw"))
            out.paired("ours_vs_baseline", case, pairs.get("vs_baseline"))
            out.paired("sync_vs_glide", case, pairs.get("vs_glide_sync"))
            out.paired("sync_vs_ramcache", case, pairs.get("vs_ramcache"))
        if op == "async_one_task":
            out.paired("async_one_task_vs_asyncio", case, pairs.get("vs_asyncio"),
                       detail=f"ours {info.get('latency_us')} µs per aget")
        if role == "control":
            out.paired("control", case, pairs.get("control"))
        if op == "local_get":
            out.paired("local_hit_speedup", case, pairs.get("vs_server_get"), invert=True)
            out.paired("local_vs_baseline", case, pairs.get("vs_baseline"))
            out.paired("local_vs_ramcache", case, pairs.get("vs_ramcache"))
        if op == "local_get_many":
            out.paired("local_get_many_speedup", case, pairs.get("vs_server_get_many"), invert=True)
        if op == "local_miss":
            out.paired("local_miss_vs_plain", case, pairs.get("vs_without"))
        if op == "local_mixed":
            out.paired("local_mixed_speedup", case, pairs.get("vs_without"), invert=True)
    _unpaired(doc, out)
    return out.rows


def _async_peers(info: Mapping[str, Any], case: str, pairs: Mapping[str, Any], out: _Rows) -> None:
    """Ours / GLIDE and ours / valkey.asyncio's pool, each with both ops/s (no GLIDE row where it was skipped)."""
    label, ours = {"tasks": info.get("tasks", 50)}, _num(info.get("ops_s"))
    for key, name, peer in (("async_vs_glide", "vs_glide", "GLIDE"), ("async_vs_asyncio_pool", "vs_asyncio_pool",
                                                                     "valkey.asyncio")):
        pair = pairs.get(name)
        median = _num(pair.get("median")) if isinstance(pair, Mapping) else None
        detail = f"ours {ours:,.0f} ops/s, {peer} {ours * median:,.0f}" if ours and median else ""
        out.paired(key, case, pair, detail=detail, label=label)


def _clear(info: Mapping[str, Any], case: str, out: _Rows) -> None:
    ours, base = info.get("clear"), info.get("keys_del")
    if not isinstance(ours, Mapping) or not isinstance(base, Mapping):
        return
    keys = f"{case} {info.get('keys', '?')} keys"
    slowest = f"ours: {ours.get('slowest_command')}; KEYS+DEL: {base.get('slowest_command')}"
    out.add("clear_worst_ping_ms", keys, _num(ours.get("worst_ping_ms")), beside=_num(base.get("worst_ping_ms")))
    out.add("clear_slowest_command_ms", keys, _num(ours.get("slowest_command_ms")),
            beside=_num(base.get("slowest_command_ms")), detail=slowest)
    wall, base_wall = _num(ours.get("wall_s")), _num(base.get("wall_s"))
    if wall and base_wall:
        out.add("clear_wall_vs_keys_del", keys, wall / base_wall, detail=f"{wall:.3f} s vs {base_wall:.3f} s")


def render(rows: Sequence[Ratio]) -> str:
    """Render the rows as a plain-text table per server."""
    lines: list[str] = []
    for server in dict.fromkeys(r.server for r in rows):
        lines += [f"== {server}", f"{'figure':<44} {'case':<22} {'value':>9} {'q1-q3':>17} {'beside':>9} "
                  f"{'target':>9}  met"]
        for r in (r for r in rows if r.server == server):
            spread = f"{r.q1:.3f}-{r.q3:.3f}" if r.q1 is not None and r.q3 is not None else ""
            beside = f"{r.beside:.3f}" if r.beside is not None else ""
            met = {True: "yes", False: "NO", None: ""}[r.met]
            besides = f"beside: {r.figure.beside}" if r.beside is not None and r.figure.beside else ""
            note = "; ".join(part for part in (besides, r.note) if part)
            lines.append(f"{r.metric:<44} {r.case:<22} {r.value:>9.3f} {spread:>17} {beside:>9} "
                         f"{r.target or ''!s:>9}  {met:<3} {note}".rstrip())
        lines.append("")
    return "\n".join(lines)


def verdict(rows: Sequence[Ratio]) -> list[str]:
    """One line per judged figure, met or missed, then a count: the closing summary of a benchmark run."""
    judged = [r for r in rows if r.met is not None]
    lines = [f"{'✔ met' if r.met else '✘ MISSED':<9} {r.server:<9} {r.metric} [{r.case}]: {r.value:.3g} "
             f"(target {r.target})" for r in judged]
    missed = sum(1 for r in judged if not r.met)
    unjudged = len([r for r in rows if r.target is not None]) - len(judged)
    tail = f"; {unjudged} not judged (check-size run)" if unjudged else ""
    lines.append(f"{len(judged) - missed} of {len(judged)} targets met, {missed} missed{tail}")
    return lines


def load(path: Path) -> list[Ratio]:
    """Read one ``--benchmark-json`` file; the server id is the file's stem (``reports/benchmarks/<id>.json``)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, Mapping) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON document (no 'benchmarks' list)")
    server = _server_of(doc)
    return ratios(doc, path.stem if server == "?" else server)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``ratios`` command's arguments to *parser* (the CLI's subparser)."""
    parser.add_argument("paths", nargs="+", type=Path, metavar="JSON", help="pytest-benchmark --benchmark-json files")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    # --strict was once needed for the exit status below; it is the default now and accepted for old scripts.
    parser.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Print the figures of every file; return 1 if a judged figure misses its target, 2 on an unreadable file.

    0 when every judged figure meets its target (figures of a check-size run are not judged).
    """
    rows: list[Ratio] = []
    for path in args.paths:
        try:
            rows += load(path)
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=1))
    else:
        print(render(rows))
    missed = [r for r in rows if r.met is False]
    for r in missed:
        print(f"missed: {r.server} {r.metric} [{r.case}] = {r.value:g} (target {r.target})", file=sys.stderr)
    return 1 if missed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emmett_valkey_matrix.bench JSON...``: the ratios command on its own."""
    parser = argparse.ArgumentParser(
        prog="emmett-valkey-matrix ratios", description=__doc__.splitlines()[0],
        epilog="exit status: 0 every judged figure meets its target (a check-size run judges none), 1 a judged "
               "figure misses its target (each is named on stderr), 2 a file cannot be read")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
