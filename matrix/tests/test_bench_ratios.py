"""The ratios command: figures and target verdicts from pytest-benchmark JSON, without any server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix import bench


def pair(median: float, q1: float | None = None, q3: float | None = None) -> dict[str, Any]:
    return {"median": median, "q1": q1 if q1 is not None else median, "q3": q3 if q3 is not None else median,
            "rounds": 31, "block": 40}


def entry(group: str, role: str, op: str, median_s: float = 1e-4, server: str = "valkey91", **extra: Any
          ) -> dict[str, Any]:
    handler = {"ours": "ValkeyCache", "baseline": "RedisCache"}.get(role)
    params = {"server": server, **({"handler": handler} if handler else {})}
    return {"group": group, "name": f"test_x[{server}]", "params": params,
            "extra_info": {"role": role, "op": op, "size": "full", **extra}, "stats": {"median": median_s}}


def document(*benchmarks: dict[str, Any]) -> dict[str, Any]:
    return {"machine_info": {}, "commit_info": {}, "benchmarks": list(benchmarks), "version": "5.3.1"}


def figure(rows: list[bench.Ratio], metric: str, case: str | None = None) -> bench.Ratio:
    found = [r for r in rows if r.metric == metric and (case is None or r.case == case)]
    assert len(found) == 1, (metric, case, rows)
    return found[0]


GOOD = document(
    entry("get-100B-hit", "ours", "get", paired={"vs_raw": pair(1.01, 0.99, 1.03), "vs_baseline": pair(0.7),
                                                 "vs_single_connection": pair(1.4)},
          latency={"n": 3000, "p50_ms": 0.08, "p99_ms": 0.3, "max_ms": 2.0}),
    entry("get-100B-hit", "baseline", "get", paired={"vs_raw": pair(1.06)},
          latency={"n": 3000, "p50_ms": 0.1, "p99_ms": 1.4, "max_ms": 3.0}),
    entry("get-100B-hit", "raw", "get"),
    entry("set-int", "ours", "set", paired={"vs_raw": pair(1.02), "vs_baseline": pair(0.72)},
          latency={"n": 3000, "p50_ms": 0.09, "p99_ms": 0.4, "max_ms": 1.0}),
    entry("get_many-100", "ours", "get_many", paired={"vs_singles": pair(0.025, 0.02, 0.04), "vs_raw": pair(1.0)}),
    entry("set_many-100", "ours", "set_many", paired={"vs_singles": pair(0.125)}),
    entry("clear", "ours", "clear", keys=100_000,
          clear={"wall_s": 1.5, "worst_ping_ms": 3.2, "slowest_command_ms": 2.1, "slowest_command": "UNLINK a b"},
          keys_del={"wall_s": 1.0, "worst_ping_ms": 110.0, "slowest_command_ms": 95.0, "slowest_command": "KEYS x*"}),
    entry("async-asyncio", "ours", "async_concurrency", tasks=50, paired={"sequential_vs_concurrent": pair(1.5)}),
    entry("control", "control", "get", paired={"control": pair(1.004)}),
    entry("parser-10KB", "ours", "get", paired={"default_vs_python_parser": pair(0.9)},
          parser={"valkey-py": "_LibvalkeyParser", "redis-py": "_HiredisParser"}),
    entry("get_or_set_loop-uvloop", "ours", "get_or_set_loop", median_s=2e-3),
    entry("get_or_set_loop-uvloop", "baseline", "get_or_set_loop", median_s=4e-3),
)


def test_every_figure_with_a_target_is_judged() -> None:
    """A full-size document yields every figure that has a target, with that target, all met here."""
    rows = bench.ratios(GOOD)
    assert {r.server for r in rows} == {"valkey91"}
    judged = {(r.metric, r.case): str(r.target) for r in rows if r.target is not None}
    assert judged == {
        ("ours / valkey-py", "get-100B-hit"): "<= 1.05",
        ("ours / RedisCache", "get-100B-hit"): "<= 0.75",
        ("ours p99 ms", "get-100B-hit"): "< 1",
        ("ours / valkey-py", "set-int"): "<= 1.05",
        ("ours / RedisCache", "set-int"): "<= 0.75",
        ("ours p99 ms", "set-int"): "< 1",
        ("get_many speed-up (100 gets / 1 get_many)", "get_many-100"): ">= 30",
        ("set_many speed-up (100 sets / 1 set_many)", "set_many-100"): ">= 6",
        ("clear: worst concurrent PING ms", "clear 100000 keys"): "< 5",
        ("clear: slowest server command ms", "clear 100000 keys"): "< 4",
        ("clear: wall time / KEYS+DEL", "clear 100000 keys"): "<= 2",
        ("50 tasks / 1 sequential (speed-up)", "async-asyncio"): ">= 1.3",
        ("control pair (identical clients)", "control"): "1 ± 0.02",
    }
    assert all(r.met for r in rows if r.target is not None)


def test_speed_ups_invert_the_time_ratio_and_its_quartiles() -> None:
    """A time ratio of 0.025 (q1 0.02, q3 0.04) is a 40x speed-up with quartiles 25x..50x."""
    r = figure(bench.ratios(GOOD), "get_many speed-up (100 gets / 1 get_many)")
    assert (r.value, r.q1, r.q3) == (40.0, 25.0, 50.0)
    assert figure(bench.ratios(GOOD), "set_many speed-up (100 sets / 1 set_many)").value == 8.0


def test_clear_figures_carry_keys_and_del_beside_them() -> None:
    """Ours is judged on PING and SLOWLOG; the KEYS+DEL figures stand beside them; wall time is a ratio."""
    rows = bench.ratios(GOOD)
    ping = figure(rows, "clear: worst concurrent PING ms")
    assert (ping.value, ping.beside, ping.met) == (3.2, 110.0, True)
    slow = figure(rows, "clear: slowest server command ms")
    assert (slow.value, slow.beside) == (2.1, 95.0) and "KEYS x*" in slow.note
    assert figure(rows, "clear: wall time / KEYS+DEL").value == 1.5


def test_missed_targets_are_marked() -> None:
    """Figures beyond their bounds read met=False: ratio, speed-up, latency, blocking and a noisy control."""
    doc = document(
        entry("get-miss", "ours", "get", paired={"vs_raw": pair(1.2), "vs_baseline": pair(0.9)},
              latency={"n": 10, "p50_ms": 0.5, "p99_ms": 1.5, "max_ms": 2}),
        entry("get_many-100", "ours", "get_many", paired={"vs_singles": pair(0.05)}),
        entry("clear", "ours", "clear", keys=10, clear={"wall_s": 3, "worst_ping_ms": 9, "slowest_command_ms": 4},
              keys_del={"wall_s": 1, "worst_ping_ms": 90, "slowest_command_ms": 80}),
        entry("control", "control", "get", paired={"control": pair(0.95)}),
    )
    rows = bench.ratios(doc)
    missed = {r.metric for r in rows if r.met is False}
    assert missed == {"ours / valkey-py", "ours / RedisCache", "ours p99 ms",
                      "get_many speed-up (100 gets / 1 get_many)", "clear: worst concurrent PING ms",
                      "clear: slowest server command ms", "clear: wall time / KEYS+DEL",
                      "control pair (identical clients)"}


def test_baseline_figures_are_informative_only() -> None:
    """RedisCache's own overhead over redis-py and its p99 are shown without a target."""
    rows = bench.ratios(GOOD)
    assert figure(rows, "RedisCache / redis-py").target is None
    assert figure(rows, "RedisCache p99 ms").value == 1.4 and figure(rows, "RedisCache p99 ms").met is None


def test_unpaired_groups_get_a_median_ratio() -> None:
    """A group with ours and baseline rows but no paired figure gets ours/RedisCache from the two medians."""
    r = figure(bench.ratios(GOOD), "ours / RedisCache (unpaired)")
    assert (r.case, r.value, r.target) == ("get_or_set_loop-uvloop", 0.5, None)


def test_parser_figure_names_the_default_parser() -> None:
    """The parser comparison says which parser the process used by default."""
    r = figure(bench.ratios(GOOD), "default parser / Python parser")
    assert r.value == 0.9 and "_LibvalkeyParser" in r.note


def test_check_size_runs_are_not_judged() -> None:
    """Figures of a --benchmark-disable sized run are printed but never counted as met or missed."""
    doc = document(entry("get-miss", "ours", "get", paired={"vs_raw": pair(3.0)}))
    doc["benchmarks"][0]["extra_info"]["size"] = "check"
    (r,) = bench.ratios(doc)
    assert r.met is None and "not judged" in r.note


def test_foreign_benchmarks_are_ignored() -> None:
    """Benchmarks without our extra_info (or with malformed pairs) produce no rows and no errors."""
    doc = document({"group": "x", "name": "t", "stats": {"median": 1.0}},
                   entry("get-miss", "ours", "get", paired={"vs_raw": "nonsense", "vs_baseline": {"median": 0}}))
    assert bench.ratios(doc) == []


def test_command_prints_a_table_and_fails_on_a_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints one table per file; it exits 1 when a judged figure misses its target, naming it."""
    good, bad = tmp_path / "valkey91.json", tmp_path / "redis70.json"
    good.write_text(json.dumps(GOOD))
    bad.write_text(json.dumps(document(entry("get-miss", "ours", "get", server="redis70",
                                             paired={"vs_raw": pair(1.3)}))))
    assert bench.main([str(good)]) == 0
    out = capsys.readouterr().out
    assert "== valkey91" in out and "ours / RedisCache" in out and "1 ± 0.02" in out
    assert bench.main([str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "== redis70" in captured.out and "missed: redis70 ours / valkey-py [get-miss]" in captured.err
    assert bench.main([str(bad), "--strict"]) == 1  # the old spelling still works, and means the same
    assert bench.main([str(bad), "--json"]) == 1


def test_command_exits_0_when_nothing_is_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A check-size run (--benchmark-disable) judges no figure, so a figure over its target does not fail."""
    doc = document(entry("get-miss", "ours", "get", paired={"vs_raw": pair(1.3)}))
    doc["benchmarks"][0]["extra_info"]["size"] = "check"
    path = tmp_path / "valkey91.json"
    path.write_text(json.dumps(doc))
    assert bench.main([str(path)]) == 0
    assert "missed" not in capsys.readouterr().err


def test_console_script_exit_status(tmp_path: Path) -> None:
    """Through the real CLI (`python -m emmett_valkey_matrix ratios`): 1 on a miss, 0 all met, 2 unreadable."""
    import subprocess
    import sys

    met, missed = tmp_path / "met.json", tmp_path / "missed.json"
    met.write_text(json.dumps(document(entry("get-miss", "ours", "get", paired={"vs_raw": pair(1.0)}))))
    missed.write_text(json.dumps(document(entry("get-miss", "ours", "get", paired={"vs_raw": pair(1.3)}))))

    def status(*paths: Path) -> int:
        argv = [sys.executable, "-m", "emmett_valkey_matrix", "ratios", *map(str, paths)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False).returncode

    assert (status(met), status(missed), status(met, missed), status(tmp_path / "absent.json")) == (0, 1, 1, 2)


def test_command_json_output_and_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object per figure; a file that is not pytest-benchmark JSON exits 2."""
    path = tmp_path / "valkey91.json"
    path.write_text(json.dumps(GOOD))
    assert bench.main([str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"server", "metric", "case", "value", "q1", "q3", "target", "met", "beside", "note"} <= set(rows[0])
    (tmp_path / "junk.json").write_text('{"schema": "emmett-valkey-results/1"}')
    assert bench.main([str(tmp_path / "junk.json")]) == 2
    assert "not a pytest-benchmark JSON" in capsys.readouterr().err


def test_server_id_falls_back_to_the_file_name(tmp_path: Path) -> None:
    """Without a server parameter in the benchmarks, the id is the file's stem (reports/benchmarks/<id>.json)."""
    doc = document(entry("control", "control", "get", paired={"control": pair(1.0)}))
    doc["benchmarks"][0]["params"] = None
    path = tmp_path / "redis82.json"
    path.write_text(json.dumps(doc))
    assert {r.server for r in bench.load(path)} == {"redis82"}


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("UNLINK a b", 60, "UNLINK a b"),
        ("DEL bench:clear:3162 bench:clear:10983 bench:clear:45692 bench:clear:7", 60,
         "DEL bench:clear:3162 bench:clear:10983 bench:clear:45692 …"),
        ("DEL aaaa bbbb cccc", 12, "DEL aaaa …"),
        ("DEL aaaa bbbb cccc", 11, "DEL aaaa …"),
        ("DEL aaaa bbbb cccc", 10, "DEL aaaa …"),
        ("DEL aaaa bbbb cccc", 9, "DEL …"),
        ("SCAN 0 MATCH bench:clear:* COUNT 1000", 37, "SCAN 0 MATCH bench:clear:* COUNT 1000"),
        ("x" * 80, 10, "xxxxxxxx …"),
    ],
)
def test_shorten_cuts_on_a_word_boundary(text: str, limit: int, shown: str) -> None:
    """A command too long for a note is cut after a whole word and marked with an ellipsis, never mid-word."""
    assert bench.shorten(text, limit) == shown
    assert len(bench.shorten(text, limit)) <= limit



def test_peer_figures_carry_both_sides_and_their_targets() -> None:
    """The async and sync peer rows are judged against the issue's targets, with both clients' ops/s beside ours."""
    doc = document(
        entry("async-peers-asyncio", "ours", "async_peers", tasks=50, ops_s=30_000.0,
              paired={"vs_glide": pair(0.5), "vs_asyncio_pool": pair(0.6)}),
        entry("async-one-task-asyncio", "ours", "async_one_task", latency_us=90.0, paired={"vs_asyncio": pair(1.2)}),
        entry("sync-peers", "ours", "sync_peers", latency_us=80.0,
              paired={"vs_socket": pair(1.05), "vs_glide_sync": pair(0.7), "vs_ramcache": pair(20.0)}),
    )
    rows = bench.ratios(doc)
    glide = figure(rows, "50 tasks aget: ours / GLIDE async")
    pool = figure(rows, "50 tasks aget: ours / valkey.asyncio pool")
    one = figure(rows, "1 task aget: ours / valkey.asyncio")
    floor = figure(rows, "get: ours / bare socket (the floor)")
    assert (glide.met, str(glide.target), glide.detail) == (True, "<= 1", "ours 30,000 ops/s, GLIDE 15,000")
    assert (pool.met, str(pool.target), pool.detail) == (False, "<= 0.5", "ours 30,000 ops/s, valkey.asyncio 18,000")
    assert (one.met, str(one.target)) == (False, "<= 1.1")
    assert (floor.met, figure(rows, "get: ours / GLIDE sync").target, figure(rows, "get: ours / RamCache").value) == (
        True, None, 20.0)
