"""The report on both topologies: <id>-cluster result files beside the standalone ones, checked, judged, rendered."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cluster_results import SLOTS, as_cluster, node_id, nodes
from emmett_valkey_matrix.report import Report, build_report, render_html, render_json, render_markdown
from emmett_valkey_matrix.report.load import read_results
from emmett_valkey_matrix.report.model import Column
from emmett_valkey_matrix.report.resources import package_text

DATA = Path(__file__).parent / "data"
NOW = "2026-11-26T02:00:00Z"
D = "\N{EN DASH}"


def _doc(name: str) -> dict[str, Any]:
    return json.loads((DATA / "results" / name).read_text())


def _named(doc: dict[str, Any], file: str, mtime: str = "2026-11-26T01:00:00Z") -> dict[str, Any]:
    return {**doc, "_origin": {"file": file, "mtime": mtime}}


def _build(results: list[dict[str, Any]]) -> Report:
    return build_report(results, None, None, generated_at=NOW, handler_version="0.1.0")


def _column(report: Report, sid: str) -> Column:
    return next(c for c in report.columns if c.id == sid)


def _inputs(report: Report) -> dict[str, tuple[str, str | None]]:
    return {i.file: (i.status, i.problem) for i in report.inputs if i.kind == "results"}


def _cluster91() -> dict[str, Any]:
    return _named(as_cluster(_doc("valkey91.json")), "valkey91-cluster.json")


@pytest.fixture(scope="module")
def both() -> Report:
    """valkey91 certified standalone and on a cluster; redis70 standalone only (it failed there)."""
    return _build([_named(_doc("valkey91.json"), "valkey91.json"), _named(_doc("redis70.json"), "redis70.json"),
                   _cluster91()])


def test_fabricated_cluster_file_is_a_valid_result_file() -> None:
    """The cluster file the tests build satisfies the results schema (id pattern, topology, nodes)."""
    schema = json.loads(package_text("schemas/results-1.schema.json"))
    jsonschema.Draft202012Validator(schema).validate(as_cluster(_doc("valkey91.json")))


def test_cluster_certified_beside_standalone(both: Report) -> None:
    """valkey91-cluster has a verdict of its own; valkey91's standalone verdict and counts are unchanged."""
    alone, cluster = _column(both, "valkey91"), _column(both, "valkey91-cluster")
    # the recorded standalone file predates the local_cache suite: its verdict says so
    assert (alone.verdict.code, alone.verdict.reason) == ("certified",
                                                          "22 passed, 1 skipped; suites without tests: local_cache")
    assert (cluster.verdict.code, cluster.topology, cluster.base_id) == ("certified", "cluster", "valkey91")
    # the faults suite is standalone-only there; the recorded file it is made from predates the local_cache suite
    assert cluster.verdict.reason == "20 passed, 3 skipped; suites without tests: local_cache"
    assert cluster.label == "Valkey 9.1.2 cluster" and cluster.source_file == "valkey91-cluster.json"
    assert _inputs(both)["valkey91-cluster.json"] == ("accepted", None)
    assert _column(both, "redis70-cluster").verdict.code == "not_run"


def test_cluster_provenance_lists_nodes_roles_and_slots(both: Report) -> None:
    """The cluster column's provenance is the build's, with every node, its role, slots and primary."""
    prov = _column(both, "valkey91-cluster").provenance
    assert prov is not None and prov.cluster is not None
    assert (prov.topology, prov.version, prov.cluster.primaries, prov.cluster.replicas) == ("cluster", "9.1.2", 3, 3)
    assert [(n.port, n.role, n.slots) for n in prov.cluster.nodes[:3]] == [
        (23001 + i, "primary", (pair,)) for i, pair in enumerate(SLOTS)
    ]
    assert [n.replica_of for n in prov.cluster.nodes[3:]] == [node_id(1), node_id(2), node_id(3)]
    standalone = _column(both, "valkey91").provenance
    assert standalone is not None and (standalone.topology, standalone.cluster) == ("standalone", None)


def test_grid_and_latency_on_both_topologies(both: Report) -> None:
    """The grid has a cell per column of both topologies; each cluster's latency follows its server's."""
    cells = {(r.suite, r.handler): {c.server_id: c for c in r.cells} for r in both.grid}
    faults = cells[("faults", "ValkeyCache")]
    assert faults["valkey91"].state == "pass" and faults["valkey91-cluster"].state == "skip"
    assert cells[("unit", "ValkeyCache")]["valkey91-cluster"].state == "pass"
    assert cells[("unit", "ValkeyCache")]["redis70-cluster"].state == "not_run"
    order = [(r.server_id, r.handler) for r in both.latency if r.handler == "ValkeyCache"]
    assert order == [("valkey91", "ValkeyCache"), ("valkey91-cluster", "ValkeyCache"), ("redis70", "ValkeyCache")]
    get = {r.server_id: r.ops[0] for r in both.latency if r.handler == "ValkeyCache"}
    assert get["valkey91-cluster"].p99_ms == pytest.approx(get["valkey91"].p99_ms * 1.5, abs=1e-3)


def test_differences_stay_within_a_topology(both: Report) -> None:
    """Skips of standalone-only tests on a cluster are not 'differences between versions'."""
    for difference in both.differences:
        ids = {o.server_id for o in difference.outcomes}
        assert ids in ({"valkey91", "redis70"}, {"valkey91-cluster"}), ids
    assert not any(d.suite == "faults" and len(d.outcomes) == 1 for d in both.differences)


def test_a_failure_on_the_cluster_fails_only_the_cluster_verdict() -> None:
    """A test failing on valkey91-cluster is listed with its rerun command; valkey91 stays certified."""
    cluster = _cluster91()
    test = next(t for t in cluster["tests"] if t["handler"] == "ValkeyCache" and t["suite"] == "unit")
    test.update(outcome="failed", message="CROSSSLOT Keys in request don't hash to the same slot")
    report = _build([_named(_doc("valkey91.json"), "valkey91.json"), cluster])
    assert _column(report, "valkey91").verdict.code == "certified"
    assert _column(report, "valkey91-cluster").verdict.code == "failed"
    (failure,) = [f for f in report.failures if f.handler == "ValkeyCache"]
    assert failure.server_id == "valkey91-cluster" and failure.rerun.startswith("tox -e valkey91-cluster -- ")
    md = render_markdown(report)
    assert "### Valkey 9.1.2 cluster (`valkey91-cluster`)" in md and "CROSSSLOT" in md


def test_cluster_not_run_is_shown_not_hidden() -> None:
    """Without any cluster file each cluster verdict is '○ not run' naming its tox env; no grid, a sentence."""
    report = _build([_named(_doc("valkey91.json"), "valkey91.json")])
    cluster = _column(report, "valkey91-cluster")
    assert (cluster.verdict.code, cluster.status) == ("not_run", "missing")
    assert cluster.verdict.reason == "no result file: not run on a cluster (tox -e valkey91-cluster)"
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith("| Valkey 9.1.2<br>`valkey91`"))
    assert row.endswith(
        "| **○ not run** | no result file: not run on a cluster (tox -e valkey91-cluster) | — |"
    ), row
    assert "✘" not in row  # not run never reads as a failure
    grid = md[md.index("### On a cluster") : md.index("## Differences")]
    assert "No server has run on a cluster yet: tox -e \\<id>-cluster certifies one" in grid
    assert "| Suite |" not in grid


def test_markdown_shows_both_verdicts_grids_and_nodes(both: Report) -> None:
    """One verdict row per id with both verdicts, a grid per topology, the nodes table, latency side by side."""
    md = render_markdown(both)
    assert (
        "| Valkey 9.1.2<br>`valkey91` | **✔ certified** | 22 passed, 1 skipped; suites without tests: local\\_cache "
        "| ✔ 22 · ⊘ 1 | ✔ 19 · ≈ 2 · ⊘ 1 "
        "| **✔ certified** | 20 passed, 3 skipped; suites without tests: local\\_cache | ✔ 20 · ⊘ 3 |"
    ) in md
    assert md.count("| Suite | Handler |") == 2
    cluster_grid = md[md.index("### On a cluster") : md.index("## Differences")]
    assert "`valkey91-cluster`<br>**✔ certified**" in cluster_grid
    assert "`redis70-cluster`<br>**○ not run**" in cluster_grid
    assert "| faults | ValkeyCache (ours) |" in cluster_grid
    assert "| Topology | standalone | standalone | cluster: 3 primaries, 3 replicas |" in md
    assert "### Cluster nodes: Valkey 9.1.2 cluster (`valkey91-cluster`)" in md
    assert f"| `1111111111` | `127.0.0.1:23001` | primary | 0{D}5460 (5461 slots) | — | valkey 9.1.2 |" in md
    assert "| `4444444444` | `127.0.0.1:23004` | replica | — | 1111111111 (:23001) | valkey 9.1.2 |" in md
    latency = md[md.index("## Latency") : md.index("## Benchmarks")]
    rows = [line.split(" | ")[0] for line in latency.splitlines() if line.endswith("|") and "ValkeyCache" in line]
    assert rows == ["| Valkey 9.1.2", "| Valkey 9.1.2 cluster", "| Redis 7.0.15"]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_shows_both_topologies(both: Report) -> None:
    """The page has both grids, the cluster verdict badges and the nodes table, all as escaped text."""
    html = render_html(both)
    assert html.count('<table class="grid">') == 2 and 'id="grid-cluster"' in html
    assert 'id="nodes-valkey91-cluster"' in html and '<table class="cluster-nodes">' in html
    assert 'id="prov-valkey91-cluster"' in html
    parsed = _Text()
    parsed.feed(html)
    text = " ".join(parsed.text)
    assert "On a cluster" in text and "Valkey 9.1.2 cluster" in text and f"0{D}5460 (5461 slots)" in text
    assert "no result file: not run on a cluster (tox -e redis70-cluster)" in text


def test_json_columns_carry_topology_and_the_ci_check_reads_them(both: Report) -> None:
    """compatibility.json validates; each column has topology and base_id; the cluster one its nodes."""
    doc = json.loads(render_json(both))
    jsonschema.Draft202012Validator(json.loads(package_text("schemas/report-1.schema.json"))).validate(doc)
    columns = {c["id"]: c for c in doc["columns"]}
    assert [c["id"] for c in doc["columns"]][:10] == [c["base_id"] for c in doc["columns"]][10:]
    cluster = columns["valkey91-cluster"]
    assert (cluster["topology"], cluster["base_id"], cluster["verdict"]["code"]) == ("cluster", "valkey91", "certified")
    assert cluster["provenance"]["topology"] == "cluster"
    assert cluster["provenance"]["cluster"]["nodes"][0] == {
        "node_id": node_id(1), "host": "127.0.0.1", "port": 23001, "role": "primary", "slots": [[0, 5460]],
        "replica_of": None, "product": "valkey", "version": "9.1.2",
    }
    assert columns["valkey91"]["topology"] == "standalone" and columns["valkey91"]["provenance"]["cluster"] is None
    # what .ci/run checks: the ids it is given are certified, none has an attempt beside it, every input used
    verdicts = {c["id"]: c["verdict"]["code"] for c in doc["columns"]}
    assert verdicts["valkey91-cluster"].startswith("certified") and columns["valkey91-cluster"]["attempt"] is None
    assert {i["status"] for i in doc["inputs"]} == {"accepted"}


def _attempt(doc: dict[str, Any], status: str, finished_at: str, **extra: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.update(status=status, finished_at=finished_at, **extra)
    out["_origin"] = {"file": f"{out['server_id']}.attempt.json", "mtime": finished_at}
    return out


def test_a_partial_cluster_attempt_is_partial_not_certified() -> None:
    """valkey91-cluster.attempt.json alone: the cluster verdict is partial; the standalone one untouched."""
    partial = _attempt(_cluster91(), "partial", "2026-11-26T01:00:00Z", reason="a selection of tests: -k get",
                       selection={"ran": 2, "of": 46, "why": ["a selection of tests: -k get"]})
    partial["tests"] = [t for t in partial["tests"] if t["outcome"] == "passed"][:2]
    report = _build([_named(_doc("valkey91.json"), "valkey91.json"), partial])
    cluster = _column(report, "valkey91-cluster")
    assert (cluster.verdict.code, cluster.status) == ("partial", "partial")
    assert cluster.verdict.reason.startswith("partial (2 of 46 tests): not a certification")
    assert _column(report, "valkey91").verdict.code == "certified" and _column(report, "valkey91").attempt is None
    assert _inputs(report)["valkey91-cluster.attempt.json"] == ("accepted", None)
    row = next(line for line in render_markdown(report).splitlines() if line.startswith("| Valkey 9.1.2<br>"))
    assert "| **◔ partial** | partial (2 of 46 tests): not a certification" in row


def test_a_newer_cluster_attempt_stands_beside_the_cluster_certification() -> None:
    """A newer partial cluster run never replaces the cluster certification; the JSON names it for the CI."""
    full = _cluster91()
    newer = _attempt(full, "partial", "2099-01-01T00:00:00Z", reason="-k get",
                     selection={"ran": 1, "of": 46, "why": ["-k get"]})
    report = _build([full, newer])
    cluster = _column(report, "valkey91-cluster")
    assert cluster.verdict.code == "certified" and cluster.attempt is not None
    assert "valkey91-cluster.attempt.json" in cluster.verdict.reason
    assert json.loads(render_json(report))["columns"][14]["attempt"]["status"] == "partial"


def _refused(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    (item,) = [i for i in _build([doc]).inputs if i.kind == "results"]
    return item.problem, item.detail


def test_a_cluster_file_of_another_build_is_refused() -> None:
    """A valkey91-cluster file whose server is Valkey 8.0.1 is rejected as a mismatch, never merged."""
    doc = _cluster91()
    doc["server"]["version"] = "8.0.1"
    problem, detail = _refused(doc)
    assert problem == "mismatch" and detail == "valkey91-cluster is Valkey 9.1.x but the file records valkey 8.0.1"
    assert _column(_build([doc]), "valkey91-cluster").verdict.code == "not_run"


def test_a_cluster_node_of_another_build_is_refused() -> None:
    """One node running another product or line than the catalogue's build rejects the whole file."""
    doc = _cluster91()
    doc["server"]["cluster"]["nodes"][4].update(product="redis", version="7.4.1")
    problem, detail = _refused(doc)
    assert problem == "mismatch"
    assert detail == f"valkey91-cluster is a cluster of Valkey 9.1.x but node {node_id(5)} records redis 7.4.1"


def test_a_cluster_node_of_another_binary_is_refused() -> None:
    """Nodes that record their binary's sha256 must have run the server's binary."""
    doc = _cluster91()
    binary = doc["server"]["binary_sha256"]
    for node in doc["server"]["cluster"]["nodes"]:
        node["binary_sha256"] = binary
    assert _inputs(_build([doc]))["valkey91-cluster.json"] == ("accepted", None)
    doc["server"]["cluster"]["nodes"][2]["binary_sha256"] = "0" * 64
    problem, detail = _refused(doc)
    assert problem == "mismatch" and detail is not None and f"node {node_id(3)} ran another" in detail


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda d: d["server"].update(topology="standalone"),
         "valkey91-cluster is a cluster run but the file records a standalone server"),
        (lambda d: (d["server"].pop("topology"), d["server"].pop("cluster")),
         "valkey91-cluster is a cluster run but the file records a standalone server"),
        (lambda d: d["server"]["cluster"].update(nodes=[]),
         "valkey91-cluster is a cluster run but the file records no cluster nodes"),
        (lambda d: d.update(server_id="valkey91"),
         "valkey91 is a standalone run but the file records a cluster server"),
    ],
    ids=["says-standalone", "older-file-shape", "no-nodes", "standalone-id-with-cluster"],
)
def test_a_file_whose_topology_is_not_its_ids_is_refused(change: Any, detail: str) -> None:
    """The topology an id names and the one its file records must agree."""
    doc = _cluster91()
    change(doc)
    assert _refused(doc) == ("mismatch", detail)


@pytest.mark.parametrize(
    ("server_id", "problem"),
    [("keydb63-cluster", "unknown_server"), ("valkey91-sentinel", "invalid"), ("valkey91-cluster-cluster", "invalid")],
)
def test_unknown_cluster_ids_are_refused(server_id: str, problem: str) -> None:
    """A cluster of an id not in the catalogue, or a topology the matrix does not know, is rejected."""
    doc = _cluster91()
    doc["server_id"] = server_id
    assert _refused(doc)[0] == problem


def test_a_stale_cluster_file_is_refused() -> None:
    """A cluster file written by another emmett-valkey version is stale, like a standalone one."""
    doc = _cluster91()
    doc["handler"]["version"] = "0.0.9"
    assert _refused(doc)[0] == "stale"


def test_files_on_disk_by_name(tmp_path: Path) -> None:
    """<id>-cluster.json and <id>-cluster.attempt.json read from a results directory are used by their names."""
    (tmp_path / "valkey91.json").write_text(json.dumps(_doc("valkey91.json")))
    cluster = as_cluster(_doc("valkey91.json"))
    (tmp_path / "valkey91-cluster.json").write_text(json.dumps(cluster))
    redis = as_cluster(_doc("redis70.json"))
    redis.update(status="not_run", server=None, tests=[], reason="no cluster: the server refused cluster-enabled")
    (tmp_path / "redis70-cluster.attempt.json").write_text(json.dumps(redis))
    report = _build(read_results(tmp_path))
    assert _inputs(report) == {
        "valkey91.json": ("accepted", None),
        "valkey91-cluster.json": ("accepted", None),
        "redis70-cluster.attempt.json": ("accepted", None),
    }
    not_run = _column(report, "redis70-cluster")
    assert (not_run.verdict.code, not_run.verdict.reason) == (
        "not_run", "no cluster: the server refused cluster-enabled")
    assert _column(report, "redis70").verdict.reason == "no result file"


def test_nodes_helper_splits_every_slot_once() -> None:
    """The fabricated primaries cover the 16384 slots exactly once (the shape the matrix builds)."""
    covered = [slot for n in nodes("valkey", "9.1.2") for start, end in n["slots"] for slot in range(start, end + 1)]
    assert sorted(covered) == list(range(16384))


def test_markdown_tables_stay_well_formed(both: Report) -> None:
    """Every table row, the nodes tables included, has as many unescaped pipes as its header."""
    lines = render_markdown(both).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            width = len(re.findall(r"(?<!\\)\|", lines[i - 1]))
            for row in lines[i + 1 :]:
                if not row.startswith("| "):
                    break
                assert len(re.findall(r"(?<!\\)\|", row)) == width, row


def test_benchmark_files_of_a_cluster_are_read_by_their_id() -> None:
    """reports/benchmarks/<id>-cluster.json gives the cluster column its figures; an unknown id's is rejected."""
    figures = json.loads((DATA / "benchmarks" / "valkey91.json").read_text())
    report = build_report([_cluster91()], None, {"valkey91-cluster": figures, "keydb63-cluster": figures},
                          generated_at=NOW, handler_version="0.1.0")
    run = next(r for r in report.benchmark_runs if r.server_id == "valkey91-cluster")
    assert run.status == "figures" and run.ratios
    assert [r.server_id for r in report.benchmark_runs] == [c.id for c in report.columns]
    assert {i.server_id: i.problem for i in report.inputs if i.kind == "benchmarks"} == {
        "valkey91-cluster": None, "keydb63-cluster": "unknown_server"}
