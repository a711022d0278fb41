"""build_report on recorded result files: verdicts, grid, differences, failures, inputs, benchmark figures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix import bench
from emmett_valkey_matrix.report import Report, benchmark_figures, build_report
from emmett_valkey_matrix.report.load import read_benchmarks, read_results
from emmett_valkey_matrix.report.model import BenchmarkRun, RatioRow

DATA = Path(__file__).parent / "data"
NOW = "2026-11-26T02:00:00Z"


def _build(results: list[dict[str, Any]], **kw: Any) -> Report:
    kw.setdefault("handler_version", "0.1.0")
    return build_report(results, None, kw.pop("benchmarks", None), generated_at=NOW, **kw)


@pytest.fixture(scope="module")
def report() -> Report:
    return _build(read_results(DATA / "results"), benchmarks=read_benchmarks(DATA / "benchmarks"))


def _doc(name: str) -> dict[str, Any]:
    return json.loads((DATA / "results" / name).read_text())


def _verdicts(r: Report) -> dict[str, str]:
    return {c.id: c.verdict.code for c in r.columns}


CATALOGUE_ORDER = [
    "valkey72",
    "valkey80",
    "valkey81",
    "valkey90",
    "valkey91",
    "redis62",
    "redis70",
    "redis72",
    "redis74",
    "redis82",
]


def test_every_catalogue_id_is_a_column_in_order(report: Report) -> None:
    """All ten ids appear, Valkey first then Redis, each by release line; then the same ten on a cluster."""
    assert [c.id for c in report.columns] == CATALOGUE_ORDER + [f"{i}-cluster" for i in CATALOGUE_ORDER]
    assert [(c.base_id, c.topology) for c in report.columns] == [(i, "standalone") for i in CATALOGUE_ORDER] + [
        (i, "cluster") for i in CATALOGUE_ORDER
    ]


def test_verdicts(report: Report) -> None:
    """Certified, failed, with deviations and not run follow the rules in verdict.py; no cluster file: not run."""
    assert {sid: code for sid, code in _verdicts(report).items() if sid.endswith("-cluster")} == {
        f"{i}-cluster": "not_run" for i in CATALOGUE_ORDER
    }
    assert {sid: code for sid, code in _verdicts(report).items() if not sid.endswith("-cluster")} == {
        "valkey72": "not_run",
        "valkey80": "not_run",
        "valkey81": "not_run",
        "valkey90": "not_run",
        "valkey91": "certified",
        "redis62": "not_run",
        "redis70": "failed",
        "redis72": "certified_with_deviations",
        "redis74": "not_run",
        "redis82": "not_run",
    }
    by_id = {c.id: c for c in report.columns}
    # recorded before the local_cache suite existed: the verdict names the suite the file has no test of
    assert by_id["valkey91"].verdict.reason == "22 passed, 1 skipped; suites without tests: local_cache"
    assert by_id["redis70"].verdict.reason == "1 failed of 23 ValkeyCache tests; suites without tests: local_cache"
    assert "redis72-client-info-lib-name" in by_id["redis72"].verdict.reason
    assert by_id["valkey80"].verdict.reason == "no result file"
    assert "CERTIFY_VALKEY72_BIN" in by_id["valkey72"].verdict.reason
    assert by_id["valkey91"].label == "Valkey 9.1.2" and by_id["valkey72"].label == "Valkey 7.2.x"


def test_baseline_deviations_and_errors_do_not_change_our_verdict(report: Report) -> None:
    """valkey91's baseline has xfailed deviations and redis70's an error; only ours decides."""
    by_id = {c.id: c for c in report.columns}
    assert by_id["valkey91"].baseline.xfailed == 2 and by_id["valkey91"].verdict.code == "certified"
    assert by_id["redis70"].baseline.error == 1


def test_grid_counts(report: Report) -> None:
    """A cell counts one suite of one handler on one server; not-run servers have no counts."""
    row = {(r.suite, r.handler): {c.server_id: c for c in r.cells} for r in report.grid}
    assert len(report.grid) == 22  # 11 suites, 2 handlers
    fail = row[("integration", "ValkeyCache")]["redis70"]
    assert (fail.state, fail.counts and (fail.counts.passed, fail.counts.failed)) == ("fail", (4, 1))
    skip = row[("async_", "ValkeyCache")]["valkey91"]
    assert skip.state == "pass" and skip.counts is not None and skip.counts.skipped == 1
    dev = row[("pattern_clear", "RedisCache")]["valkey91"]
    assert dev.state == "deviation" and dev.counts is not None and dev.counts.xfailed == 1
    assert row[("unit", "ValkeyCache")]["valkey80"].state == "not_run"
    assert row[("unit", "ValkeyCache")]["valkey80"].counts is None


def test_differences_across_servers(report: Report) -> None:
    """Tests whose outcome differs across servers are keyed without the server label, ours first."""
    first = report.differences[0]
    assert first.test == "certification/test_integration.py::test_client_name[{server}-ValkeyCache]"
    assert {o.server_id: o.outcome for o in first.outcomes} == {
        "valkey91": "passed",
        "redis70": "failed",
        "redis72": "xfailed",
    }
    handlers = [d.handler for d in report.differences]
    assert handlers == sorted(handlers, key=["ValkeyCache", "RedisCache"].index)
    assert not any("test_get_set" in d.test for d in report.differences)


def test_deviations_carry_explanations(report: Report) -> None:
    """Each listed deviation has its explanation and the servers where it occurred."""
    devs = {d.id: d for d in report.deviations}
    keys = devs["redis-cache-clear-uses-keys"]
    assert keys.handler == "RedisCache" and "KEYS instead of SCAN" in (keys.explanation or "")
    assert keys.occurred_on == ("valkey91", "redis70", "redis72")
    assert devs["redis72-client-info-lib-name"].handler == "ValkeyCache"


def test_failures_have_message_and_exact_rerun(report: Report) -> None:
    """A failure names the test, its message and the one command that reruns exactly it on that server."""
    ours = [f for f in report.failures if f.handler == "ValkeyCache"]
    assert len(ours) == 1
    assert ours[0].nodeid == "certification/test_integration.py::test_client_name[redis-7.0.15-ValkeyCache]"
    assert ours[0].rerun == f"tox -e redis70 -- '{ours[0].nodeid}'"
    assert "<script>" in (ours[0].message or "")
    assert [f.outcome for f in report.failures if f.handler == "RedisCache"] == ["error"]


def test_bad_inputs_are_listed_never_merged(report: Report) -> None:
    """Malformed, foreign, stale and unknown files are rejected; the older valkey91 run is superseded."""
    status = {i.file: (i.status, i.problem) for i in report.inputs if i.kind == "results"}
    assert status == {
        "keydb63.json": ("rejected", "unknown_server"),
        "redis62-stale.json": ("rejected", "stale"),
        "truncated.json": ("rejected", "malformed"),
        "valkey81-foreign-schema.json": ("rejected", "foreign_schema"),
        "valkey91-2026-11-25.json": ("superseded", "superseded"),
        "valkey91.json": ("accepted", None),
        "redis70.json": ("accepted", None),
        "redis72.json": ("accepted", None),
        "valkey72.json": ("accepted", None),
    }
    assert not any("stale run failure" in (f.message or "") for f in report.failures)
    assert _verdicts(report)["redis62"] == "not_run" and _verdicts(report)["valkey81"] == "not_run"


def test_newest_wins_whatever_the_order() -> None:
    """Of two files for one id the later finished_at wins, whichever comes first in the input."""
    new, old = _doc("valkey91.json"), _doc("valkey91-2026-11-25.json")
    for docs in ([new, old], [old, new]):
        assert _verdicts(_build(docs))["valkey91"] == "certified"


def test_without_version_check_a_stale_file_is_used() -> None:
    """handler_version=None turns the version check off (the caller passes the installed version)."""
    assert _verdicts(_build([_doc("redis62-stale.json")], handler_version=None))["redis62"] == "failed"


def test_invalid_document_is_rejected_with_its_path() -> None:
    """A document that breaks the results schema is rejected, naming where."""
    doc = _doc("redis70.json")
    doc["tests"][3]["outcome"] = "exploded"
    (item,) = _build([doc]).inputs
    assert item.problem == "invalid" and item.detail is not None and item.detail.startswith("tests/3/outcome")


def test_server_mismatch_is_rejected() -> None:
    """A file whose server is not the catalogued product and line is rejected."""
    doc = _doc("redis70.json")
    doc["server_id"] = "redis74"
    (item,) = _build([doc]).inputs
    assert item.problem == "mismatch"


def _variant(change: dict[str, Any]) -> str:
    doc = copy.deepcopy(_doc("valkey91.json"))
    for test in doc["tests"]:
        if test["name"] == "test_get_set" and test["handler"] == "ValkeyCache":
            test.update(change)
    return _build([doc]).columns[4].verdict.code


def test_unexplained_xfail_of_ours_fails() -> None:
    """An expected failure of ours without an explained deviation is a failure."""
    assert _variant({"outcome": "xfailed", "deviation": None}) == "failed"
    assert _variant({"outcome": "xfailed", "deviation": "nobody-wrote-this-down"}) == "failed"


def test_explained_xfail_or_xpass_of_ours_is_a_deviation() -> None:
    """An explained deviation, or a listed one that did not occur, certifies with deviations."""
    assert _variant({"outcome": "xfailed", "deviation": "redis-cache-expire-zero"}) == "certified_with_deviations"
    assert _variant({"outcome": "xpassed", "deviation": "redis-cache-expire-zero"}) == "certified_with_deviations"
    assert _variant({"outcome": "error"}) == "failed"


def test_error_status_and_all_skipped() -> None:
    """A run that errored fails with its reason; a run where all of ours skipped is not run."""
    errored = {**_doc("valkey72.json"), "status": "error", "reason": "server crashed: SIGSEGV"}
    verdict = _build([errored]).columns[0].verdict
    assert (verdict.code, verdict.reason) == ("failed", "the run did not complete: server crashed: SIGSEGV")
    doc = _doc("valkey91.json")
    for test in doc["tests"]:
        if test["handler"] == "ValkeyCache":
            test["outcome"] = "skipped"
    assert _build([doc]).columns[4].verdict.code == "not_run"


def test_latency_against_expectations(report: Report) -> None:
    """p99 is compared with what is expected on loopback: GET/SET under 1 ms, pattern clear under 10 ms."""
    rows = {(r.server_id, r.handler): {o.op: o for o in r.ops} for r in report.latency}
    assert rows[("valkey91", "ValkeyCache")]["get"].met is True
    assert rows[("redis70", "ValkeyCache")]["pattern_clear"].met is False
    assert rows[("redis70", "ValkeyCache")]["get_many"].met is None
    assert ("redis72", "RedisCache") not in rows


# a pytest-benchmark file without the paired figures the benchmark suite records: no extra_info, medians only
UNPAIRED_BENCH = {
    "benchmarks": [
        {
            "group": "get",
            "name": f"test_bench_get[valkey-9.1.2-{handler}]",
            "extra_info": {},
            "params": {"server": "valkey-9.1.2", "handler": handler},
            "stats": {"median": median},
        }
        for handler, median in (("ValkeyCache", 0.000062), ("RedisCache", 0.000066))
    ]
}


def _run(r: Report, server_id: str) -> BenchmarkRun:
    return next(run for run in r.benchmark_runs if run.server_id == server_id)


def _row(run: BenchmarkRun, figure: str, case: str) -> RatioRow:
    (row,) = [r for r in run.ratios if r.figure == figure and r.case == case]
    return row


def test_benchmark_ratios_per_server(report: Report) -> None:
    """A full-size run keeps bench.ratios' rows, judged against their targets, headline figures first."""
    run = _run(report, "valkey91")
    assert (run.status, run.file, run.size, run.judged) == ("figures", "valkey91.json", "full", True)
    doc = json.loads((DATA / "benchmarks" / "valkey91.json").read_text())
    expected = bench.ratios(doc, "valkey91")
    assert len(run.ratios) == len(expected)
    assert {(r.figure, r.case, r.value, r.q1, r.q3, r.target, r.met, r.note) for r in run.ratios} == {
        (r.metric, r.case, r.value, r.q1, r.q3, None if r.target is None else str(r.target), r.met, r.note)
        for r in expected
    }
    raw = _row(run, "ours / valkey-py", "get-int-hit")
    assert (raw.value, raw.q1, raw.q3, raw.target, raw.met, raw.status, raw.unit, raw.headline) == (
        1.0815,
        1.0716,
        1.0909,
        "<= 1.05",
        False,
        "missed",
        "ratio",
        "ours_vs_raw_get",
    )
    speedup = _row(run, "set_many speed-up (100 sets / 1 set_many)", "set_many-100")
    assert (speedup.unit, speedup.status, speedup.target) == ("speedup", "met", ">= 6")
    assert speedup.value == pytest.approx(1 / 0.1347, abs=1e-3)
    ping = _row(run, "clear: worst concurrent PING ms", "test_clear_pattern[valkey91] 100000 keys")
    assert (ping.value, ping.beside, ping.unit, ping.status) == (28.412, 72.264, "ms", "missed")
    info = _row(run, "RedisCache / redis-py", "get-int-hit")
    assert (info.target, info.met, info.status, info.headline) == (None, None, "no_target", None)
    keys = [r.headline for r in run.ratios]
    first_other = keys.index(None)
    assert None not in keys[:first_other] and set(keys[first_other:]) == {None}
    assert (run.met, run.missed, run.not_judged) == (
        sum(r.met is True for r in expected),
        sum(r.met is False for r in expected),
        0,
    )


def test_check_size_run_is_not_judged(report: Report) -> None:
    """A --benchmark-disable run shows its figures, every target not judged."""
    run = _run(report, "valkey72")
    assert (run.status, run.size, run.judged, run.met, run.missed) == ("figures", "check", False, 0, 0)
    targeted = [r for r in run.ratios if r.target is not None]
    assert targeted and run.not_judged == len(targeted)
    assert {(r.met, r.status) for r in targeted} == {(None, "not_judged")}


def test_headline_figures_worst_case_per_server(report: Report) -> None:
    """Each target has one cell per server with figures: the worst case, missed if any case missed."""
    heads = {h.key: h for h in report.benchmark_headlines}
    assert list(heads) == [spec.key for spec in benchmark_figures.HEADLINES]
    assert all(len(h.cells) == 2 for h in heads.values())
    full = {key: h.cells[1] for key, h in heads.items()}
    assert {c.server_id for c in full.values()} == {"valkey91"}
    assert "not_measured" not in {c.status for c in full.values()}  # bench's metric names still match
    base = full["ours_vs_baseline_get"]
    assert (base.value, base.case, base.cases, base.status) == (0.8091, "get-10KB-hit", 4, "missed")
    assert (full["clear_worst_ping"].value, full["clear_worst_ping"].beside) == (28.412, 72.264)
    assert (full["async_speedup"].value, full["async_speedup"].status) == (2.4234, "met")
    assert (heads["get_many_speedup"].target, heads["control"].target) == (">= 30", "1 ± 0.02")
    assert {c.status for c in (h.cells[0] for h in heads.values())} == {"not_judged"}


def test_servers_without_benchmark_figures(report: Report) -> None:
    """No file, a rejected file, a file without paired figures: each run says which, with no rows."""
    assert _run(report, "redis70").status == "missing" and _run(report, "redis70").ratios == ()
    assert len(report.benchmark_runs) == len(report.columns)
    r = _build(
        read_results(DATA / "results"),
        benchmarks={"valkey91": UNPAIRED_BENCH, "redis70": {"_origin": {"file": "redis70.json", "error": "bad"}}},
    )
    unpaired = _run(r, "valkey91")
    assert (unpaired.status, unpaired.size, unpaired.ratios) == ("no_figures", None, ())
    assert _run(r, "redis70").status == "rejected"
    assert r.benchmark_headlines == ()


def test_pure_and_deterministic(report: Report) -> None:
    """The same inputs give an equal report, and the inputs are not modified."""
    results = read_results(DATA / "results")
    before = copy.deepcopy(results)
    again = _build(results, benchmarks=read_benchmarks(DATA / "benchmarks"))
    assert results == before
    assert again == report


def _certification() -> dict[str, Any]:
    return {**_doc("valkey91.json"), "_origin": {"file": "valkey91.json", "mtime": "2026-11-26T01:00:00Z"}}


def _attempt(base: dict[str, Any], status: str, finished_at: str, **extra: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    doc.update(status=status, finished_at=finished_at, **extra)
    doc["_origin"] = {"file": f"{doc['server_id']}.attempt.json", "mtime": finished_at}
    if status != "partial":
        doc.update(server=None, tests=[])
    return doc


def test_a_partial_run_alone_is_partial_never_certified() -> None:
    """A selection of tests that all passed is "partial (N of M tests)", not certified."""
    full = _doc("valkey91.json")
    partial = _attempt(full, "partial", "2026-11-26T01:00:00Z", reason="a selection of tests: x.py",
                       selection={"ran": 2, "of": 458, "why": ["a selection of tests: x.py"]})
    partial["tests"] = [t for t in partial["tests"] if t["outcome"] == "passed"][:2]
    column = next(c for c in _build([partial]).columns if c.id == "valkey91")
    assert column.verdict.code == "partial" and column.status == "partial"
    assert column.verdict.reason.startswith("partial (2 of 458 tests): not a certification; a selection of tests")
    assert column.attempt is None


@pytest.mark.parametrize("status", ["partial", "not_run", "refused"])
def test_a_newer_attempt_never_replaces_a_certification(status: str) -> None:
    """A newer partial, not-run or refused attempt is shown beside the certification it does not replace."""
    full = _certification()
    extra = {"selection": {"ran": 1, "of": 458, "why": ["-k x"]}} if status == "partial" else {}
    newer = _attempt(full, status, "2099-01-01T00:00:00Z", reason="why it was less", **extra)
    report = _build([full, newer])
    column = next(c for c in report.columns if c.id == "valkey91")
    assert column.verdict.code == "certified" and column.status == "completed"
    assert column.attempt is not None and column.attempt.status == status
    assert "valkey91.attempt.json" in column.verdict.reason and "not a certification: why it was less" in \
        column.verdict.reason
    assert {i.file: i.status for i in report.inputs if i.server_id == "valkey91"} == {
        "valkey91.json": "accepted", "valkey91.attempt.json": "accepted"}


def test_an_attempt_older_than_the_certification_is_superseded() -> None:
    """A certification run after an attempt is shown alone; the attempt is listed as superseded."""
    full = _certification()
    older = _attempt(full, "not_run", "2000-01-01T00:00:00Z", reason="no server")
    report = _build([older, full])
    column = next(c for c in report.columns if c.id == "valkey91")
    assert column.verdict.code == "certified" and column.attempt is None
    assert {i.file: i.status for i in report.inputs if i.server_id == "valkey91"}["valkey91.attempt.json"] == \
        "superseded"


@pytest.mark.parametrize(("recorded", "shown"), [("00000000", None), ("0", None), ("", None), (None, None),
                                                 ("a1b2c3d4", "a1b2c3d4"), ("00a0", "00a0")])
def test_an_all_zero_git_sha_is_no_sha(recorded: str | None, shown: str | None) -> None:
    """Builds outside a git checkout report sha 00000000 (or 0): the report shows no sha, not a fake one."""
    doc = _doc("valkey91.json")
    doc["server"]["git_sha"] = recorded
    column = next(c for c in _build([doc]).columns if c.id == "valkey91")
    assert column.provenance is not None and column.provenance.git_sha == shown
