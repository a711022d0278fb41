"""The app benchmark's pure parts: reading wrk's report, the ratios and their targets, what fails a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appbench import figures, wrk

DATA = Path(__file__).parent / "data" / "app"


def test_parse_reads_a_recorded_wrk_report() -> None:
    """A real ``wrk --latency`` report gives its req/s, request count and p50/p99 in ms, no errors."""
    load = wrk.parse((DATA / "wrk-ok.txt").read_text("utf-8"))
    assert load.requests_per_s == 883.79
    assert load.requests == 885
    assert (load.p50_ms, load.p99_ms) == (pytest.approx(3.97), pytest.approx(14.81))
    assert (load.socket_errors, load.non_2xx) == (0, 0)


def test_parse_counts_socket_errors_and_non_2xx() -> None:
    """The socket errors (all four kinds summed) and non-2xx answers wrk reports are counted."""
    load = wrk.parse((DATA / "wrk-errors.txt").read_text("utf-8"))
    assert (load.non_2xx, load.socket_errors) == (1064, 0)
    refused = wrk.parse((DATA / "wrk-refused.txt").read_text("utf-8"))
    assert (refused.requests, refused.socket_errors, refused.p99_ms) == (0, 2954, 0.0)


def test_parse_rejects_what_is_not_a_latency_report() -> None:
    """Output without the percentiles (wrk run without --latency) is an error that shows it."""
    with pytest.raises(ValueError, match="not a wrk --latency report"):
        wrk.parse("Running 1s test @ http://127.0.0.1:1/\nRequests/sec: 10.0\n")


def test_ratios_judge_each_link_against_its_bound() -> None:
    """ValkeyCache/RedisCache needs 2.0x on loopback and 10x over 1 ms; local/RamCache 0.95x on both."""
    def route(link: str, handler: str, kind: str, rate: float) -> dict[str, object]:
        return {"link": link, "handler": handler, "kind": kind, "requests_per_s": rate}

    routes = [route(link, h, k, rate) for link, rates in (("loopback", (10, 4, 9.4, 10)), ("1ms", (10, 1, 10, 10)))
              for h, rate in zip(("valkey", "redis", "local", "ram"), rates, strict=True) for k in figures.KINDS]
    got = {(q["link"], q["figure"], q["kind"]): (q["value"], q["met"]) for q in figures.ratios(routes)}
    assert got[("loopback", "valkey_vs_redis", "response")] == (2.5, True)
    assert got[("loopback", "local_vs_ram", "value")] == (0.94, False)
    assert got[("1ms", "valkey_vs_redis", "value")] == (10.0, True)
    assert got[("1ms", "local_vs_ram", "response")] == (1.0, True)
    assert figures.count(figures.ratios(routes)) == {"met": 6, "total": 8}


def test_failures_name_each_misbehaving_route_of_a_recorded_run() -> None:
    """A recorded run has no failure; a route with errors or a wrong body is named with what went wrong."""
    doc = json.loads((DATA / "app.json").read_text("utf-8"))
    assert figures.failures(doc["routes"]) == []
    bad = [dict(doc["routes"][0], non_2xx=3), dict(doc["routes"][1], body_ok=False),
           dict(doc["routes"][2], requests=0)]
    assert figures.failures(bad) == [f"loopback {bad[0]['path']}: 3 non-2xx answers",
                                     f"loopback {bad[1]['path']}: a wrong body",
                                     f"loopback {bad[2]['path']}: no request answered"]
    assert figures.table(doc).splitlines()[-1] == f"{doc['targets']['met']} of {doc['targets']['total']} targets met"
