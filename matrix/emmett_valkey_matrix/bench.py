"""The benchmark figures the issue's targets speak of, read from a pytest-benchmark JSON (``--benchmark-json``).

Plain JSON processing: nothing here imports Emmett, the handler or a client library. The certification benchmarks
(``certification/test_benchmarks.py``) store their paired measurements in each benchmark's ``extra_info``:

- ``role``: ``ours`` (ValkeyCache), ``raw`` (valkey-py doing the same work), ``baseline`` (RedisCache), ``control``;
- ``op``: ``get``, ``set``, ``get_many``, ``set_many``, ``clear``, ``async_concurrency``, ``get_or_set_loop``;
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
import operator
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet: ``value <op> limit`` (or ``|value - 1| <= limit`` for ``"±"``)."""

    op: str
    limit: float

    def met(self, value: float) -> bool:
        """Whether *value* meets the bound."""
        if self.op == "±":
            return abs(value - 1.0) <= self.limit
        return _COMPARE[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"1 ± {self.limit:g}" if self.op == "±" else f"{self.op} {self.limit:g}"


# The targets (paired medians; latency on loopback).
OURS_VS_RAW = Target("<=", 1.05)
OURS_VS_BASELINE = Target("<=", 0.75)
GET_MANY_SPEEDUP = Target(">=", 30.0)
SET_MANY_SPEEDUP = Target(">=", 6.0)
CLEAR_WORST_PING_MS = Target("<", 5.0)
CLEAR_SLOWEST_COMMAND_MS = Target("<", 4.0)
CLEAR_WALL_VS_KEYS_DEL = Target("<=", 2.0)
ASYNC_CONCURRENCY_SPEEDUP = Target(">=", 1.3)
P99_MS = Target("<", 1.0)
CONTROL = Target("±", 0.02)


@dataclass(frozen=True)
class Ratio:
    """One figure of one server: what it compares, its value (with quartiles when paired) and its target."""

    server: str
    metric: str
    case: str
    value: float
    q1: float | None = None
    q3: float | None = None
    target: str | None = None
    met: bool | None = None
    beside: float | None = None  # the comparison's other side, e.g. the KEYS+DEL figure beside ours
    note: str = ""


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

    def add(self, metric: str, case: str, value: float | None, target: Target | None = None, *,
            q1: float | None = None, q3: float | None = None, beside: float | None = None, note: str = "") -> None:
        if value is None:
            return
        met = target.met(value) if target is not None and self.judged else None
        if target is not None and not self.judged:
            note = (note + "; " if note else "") + "check-size run: not judged"
        self.rows.append(Ratio(self.server, metric, case, round(value, 4), _round(q1), _round(q3),
                               None if target is None else str(target), met, _round(beside), note))

    def paired(self, metric: str, case: str, pair: object, target: Target | None = None, *, invert: bool = False,
               note: str = "") -> None:
        if not isinstance(pair, Mapping):
            return
        median, q1, q3 = _num(pair.get("median")), _num(pair.get("q1")), _num(pair.get("q3"))
        if median is None or median <= 0:
            return
        if invert:  # a speed-up: time(b) / time(a)
            median, q1, q3 = 1 / median, _inv(q3), _inv(q1)
        self.add(metric, case, median, target, q1=q1, q3=q3, note=note)


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
            out.add("ours / RedisCache (unpaired)", case, by_role["ours"] / by_role["baseline"],
                    note="ratio of separate medians")


def ratios(doc: Mapping[str, Any], server: str | None = None) -> list[Ratio]:
    """Every figure of one pytest-benchmark document, in the order the issue lists them."""
    sid = server or _server_of(doc)
    benches = list(_benchmarks(doc))
    judged = all(info.get("size", "full") == "full" for _, info in benches)
    out = _Rows(sid, judged)
    for bench, info in benches:
        role, op, case, pairs = info.get("role"), info.get("op"), _case(bench), info.get("paired") or {}
        if not isinstance(pairs, Mapping):
            pairs = {}
        if op in ("get", "set") and role == "ours" and not case.startswith("parser-"):
            out.paired("ours / valkey-py", case, pairs.get("vs_raw"), OURS_VS_RAW)
            out.paired("ours / RedisCache", case, pairs.get("vs_baseline"), OURS_VS_BASELINE)
            out.paired("ours / valkey-py, same socket timeout", case, pairs.get("vs_raw_same_timeout"),
                       note="the handler's own overhead (socket_timeout=5 costs a poll per read)")
            out.paired("ours / one dedicated connection", case, pairs.get("vs_single_connection"),
                       note="what holding one connection per thread would change")
        elif op in ("get", "set") and role == "baseline":
            out.paired("RedisCache / redis-py", case, pairs.get("vs_raw"))
        if op in ("get", "set") and role in ("ours", "baseline") and isinstance(info.get("latency"), Mapping):
            lat = info["latency"]
            name = "ours" if role == "ours" else "RedisCache"
            out.add(f"{name} p99 ms", case, _num(lat.get("p99_ms")), P99_MS if role == "ours" else None,
                    note=f"p50 {lat.get('p50_ms')} ms, n={lat.get('n')}")
        if case.startswith("parser-"):
            parsers = info.get("parser")
            parser = parsers.get("valkey-py", "?") if isinstance(parsers, Mapping) else "?"
            out.paired("default parser / Python parser", case, pairs.get("default_vs_python_parser"),
                       note=f"default: {parser}")
        if op == "get_many":
            out.paired("get_many speed-up (100 gets / 1 get_many)", case, pairs.get("vs_singles"), GET_MANY_SPEEDUP,
                       invert=True)
            out.paired("get_many: ours / raw MGET", case, pairs.get("vs_raw"))
        if op == "set_many":
            out.paired("set_many speed-up (100 sets / 1 set_many)", case, pairs.get("vs_singles"), SET_MANY_SPEEDUP,
                       invert=True)
            out.paired("set_many: ours / raw pipeline", case, pairs.get("vs_raw"))
        if op == "clear":
            _clear(info, case, out)
        if op == "async_concurrency":
            out.paired(f"{info.get('tasks', 50)} tasks / 1 sequential (speed-up)", case,
                       pairs.get("sequential_vs_concurrent"), ASYNC_CONCURRENCY_SPEEDUP)
        if role == "control":
            out.paired("control pair (identical clients)", case, pairs.get("control"), CONTROL)
    _unpaired(doc, out)
    return out.rows


def _clear(info: Mapping[str, Any], case: str, out: _Rows) -> None:
    ours, base = info.get("clear"), info.get("keys_del")
    if not isinstance(ours, Mapping) or not isinstance(base, Mapping):
        return
    keys = f"{case} {info.get('keys', '?')} keys"
    slowest = f"ours: {ours.get('slowest_command')}; KEYS+DEL: {base.get('slowest_command')}"
    out.add("clear: worst concurrent PING ms", keys, _num(ours.get("worst_ping_ms")), CLEAR_WORST_PING_MS,
            beside=_num(base.get("worst_ping_ms")), note="beside: KEYS+DEL")
    out.add("clear: slowest server command ms", keys, _num(ours.get("slowest_command_ms")), CLEAR_SLOWEST_COMMAND_MS,
            beside=_num(base.get("slowest_command_ms")), note=slowest)
    wall, base_wall = _num(ours.get("wall_s")), _num(base.get("wall_s"))
    if wall and base_wall:
        out.add("clear: wall time / KEYS+DEL", keys, wall / base_wall, CLEAR_WALL_VS_KEYS_DEL,
                note=f"{wall:.3f} s vs {base_wall:.3f} s")


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
            lines.append(f"{r.metric:<44} {r.case:<22} {r.value:>9.3f} {spread:>17} {beside:>9} "
                         f"{r.target or '':>9}  {met:<3} {r.note}".rstrip())
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
        print(json.dumps([asdict(r) for r in rows], indent=1))
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
