"""Result files gathered from several machines (CI runners) in one report.

The report names each column's machine and says when latency across columns compares machines; stale, foreign and
partial inputs are refused exactly as from one machine.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
from emmett_valkey_matrix.report import Report, build_report, main, render_html, render_json, render_markdown
from emmett_valkey_matrix.report.load import read_results
from emmett_valkey_matrix.report.resources import package_text

DATA = Path(__file__).parent / "data"
NOW = "2026-11-26T02:00:00Z"
RUNNER_A = {"host": "runner-a", "platform": "Linux-6.8.0-1021-azure-x86_64-with-glibc2.36", "machine": "x86_64",
            "cpus": 4, "python": "3.11.11"}
RUNNER_B = {"host": "runner-b", "platform": "Linux-6.1.0-28-amd64-x86_64-with-glibc2.36", "machine": "x86_64",
            "cpus": 2, "python": "3.11.7"}


def _on(name: str, machine: dict[str, Any], *, file: str | None = None) -> dict[str, Any]:
    """Return a recorded result file as if written on ``machine``: its environment block replaced, nothing else."""
    doc = json.loads((DATA / "results" / name).read_text())
    doc["environment"] = {**doc["environment"], **machine}
    doc["_origin"] = {"file": file or name, "mtime": doc["finished_at"]}
    return doc


def _build(results: list[dict[str, Any]]) -> Report:
    return build_report(results, None, None, generated_at=NOW, handler_version="0.1.0")


def _col(report: Report, sid: str) -> Any:
    return next(c for c in report.columns if c.id == sid)


def test_each_column_names_the_machine_its_file_came_from() -> None:
    """valkey91 from runner-a, redis70 and redis72 from runner-b: two machines, in column order, each with its ids."""
    report = _build([_on("valkey91.json", RUNNER_A), _on("redis70.json", RUNNER_B), _on("redis72.json", RUNNER_B)])
    assert [(m.name, m.host, m.cpus, m.python, m.columns) for m in report.machines] == [
        ("runner-a", "runner-a", 4, "3.11.11", ("valkey91",)),
        ("runner-b", "runner-b", 2, "3.11.7", ("redis70", "redis72")),
    ]
    assert report.machines[0].platform == RUNNER_A["platform"] and report.machines[1].arch == "x86_64"
    assert {c.id: c.machine for c in report.columns if c.machine} == {
        "valkey91": "runner-a", "redis70": "runner-b", "redis72": "runner-b"}
    provenance = _col(report, "redis70").provenance
    assert (provenance.host, provenance.cpus, provenance.machine) == ("runner-b", 2, "runner-b")
    assert _col(report, "valkey80").machine is None  # no result file, no machine
    # the verdicts are those of the same files from one machine: where a file came from changes no verdict
    one = _build([_on(n, RUNNER_B) for n in ("valkey91.json", "redis70.json", "redis72.json")])
    assert [c.verdict for c in report.columns] == [c.verdict for c in one.columns]


def test_the_documents_say_when_columns_come_from_more_than_one_machine() -> None:
    """Markdown and HTML carry the machines note (provenance and latency); the JSON has the machines and validates."""
    report = _build([_on("valkey91.json", RUNNER_A), _on("redis70.json", RUNNER_B)])
    note = ("The result files come from 2 machines: runner-a (Linux-6.8.0-1021-azure-x86_64-with-glibc2.36, 4 CPUs, "
            "Python 3.11.11): valkey91; runner-b (Linux-6.1.0-28-amd64-x86_64-with-glibc2.36, 2 CPUs, Python 3.11.7): "
            "redis70. Latency figures and durations compare the machines as much as the servers")
    md = render_markdown(report).replace("\\_", "_")  # Markdown escapes the underscores of x86_64
    assert md.count(note) == 2  # in the provenance section and in the latency section
    assert md.index("## Provenance") < md.index(note) < md.index("## Latency") < md.rindex(note)
    assert "| Machine | runner-a | runner-b |" in md and "| Host | runner-a | runner-b |" in md
    assert "| CPUs | 4 | 2 |" in md
    assert note in render_html(report)
    doc = json.loads(render_json(report))
    jsonschema.Draft202012Validator(json.loads(package_text("schemas/report-1.schema.json"))).validate(doc)
    assert [(m["name"], m["columns"]) for m in doc["machines"]] == [("runner-a", ["valkey91"]),
                                                                   ("runner-b", ["redis70"])]
    assert {c["id"]: c["machine"] for c in doc["columns"] if c["machine"]} == {"valkey91": "runner-a",
                                                                              "redis70": "runner-b"}


def test_one_machine_has_no_note() -> None:
    """Every file from one machine: one machine named, no caution about comparing columns."""
    report = _build([_on("valkey91.json", RUNNER_B), _on("redis70.json", RUNNER_B)])
    assert [m.name for m in report.machines] == ["runner-b"]
    assert "come from" not in render_markdown(report)


def test_files_without_a_host_are_told_apart_by_their_environment() -> None:
    """Files written before the host was recorded: machines differ by platform, CPUs or Python, named by number."""
    older = {"platform": "Linux-5.15-x86_64", "cpus": 8}
    a, b = _on("valkey91.json", older), _on("redis70.json", {})
    for doc in (a, b):
        doc["environment"].pop("host", None)
    report = _build([a, b])
    assert [(m.name, m.host, m.columns) for m in report.machines] == [("machine 1", None, ("valkey91",)),
                                                                      ("machine 2", None, ("redis70",))]
    assert "come from 2 machines: machine 1 (Linux-5.15-x86\\_64, 8 CPUs" in render_markdown(report)


def test_one_host_with_two_environments_is_two_machines() -> None:
    """The same host with another Python (two tox runs) is two environments: host #1, host #2."""
    report = _build([_on("valkey91.json", RUNNER_A), _on("redis70.json", {**RUNNER_A, "python": "3.12.8"})])
    assert [m.name for m in report.machines] == ["runner-a #1", "runner-a #2"]


def test_stale_foreign_and_partial_inputs_from_another_machine_are_refused_as_ever() -> None:
    """Another machine's stale, foreign-schema or partial file is treated as from this one: rejected or beside."""
    stale = _on("redis62-stale.json", RUNNER_A)
    foreign = _on("valkey81-foreign-schema.json", RUNNER_A)
    full = _on("valkey91.json", RUNNER_B)
    partial = copy.deepcopy(_on("valkey91.json", RUNNER_A, file="valkey91.attempt.json"))
    partial.update(status="partial", finished_at="2099-01-01T00:00:00Z", reason="a selection of tests: -k get",
                   selection={"ran": 2, "of": 458, "why": ["a selection of tests: -k get"]})
    report = _build([stale, foreign, full, partial])
    assert {i.file: (i.status, i.problem) for i in report.inputs} == {
        "redis62-stale.json": ("rejected", "stale"),
        "valkey81-foreign-schema.json": ("rejected", "foreign_schema"),
        "valkey91.json": ("accepted", None),
        "valkey91.attempt.json": ("accepted", None),
    }
    column = _col(report, "valkey91")
    assert column.verdict.code == "certified" and column.attempt is not None and column.attempt.status == "partial"
    # the column is the certification's: its machine is the one that certified, not the one of the newer attempt
    assert column.machine == "runner-b" and [m.name for m in report.machines] == ["runner-b"]
    assert _col(report, "redis62").verdict.code == "not_run" and _col(report, "redis62").machine is None


def test_gathered_directory_from_two_machines(tmp_path: Path) -> None:
    """The report command on one directory of files from two runners (as the CI report job downloads them)."""
    results = tmp_path / "results"
    results.mkdir()
    for name, machine in (("valkey91.json", RUNNER_A), ("redis70.json", RUNNER_B)):
        doc = _on(name, machine)
        doc.pop("_origin")
        (results / name).write_text(json.dumps(doc), encoding="utf-8")
    shutil.copy(DATA / "results" / "redis62-stale.json", results / "redis62.json")
    assert len(read_results(results)) == 3
    out = tmp_path / "out"
    assert main(["--results", str(results), "--out", str(out)]) == 0
    doc = json.loads((out / "compatibility.json").read_text())
    assert [m["name"] for m in doc["machines"]] == ["runner-a", "runner-b"]
    assert {i["file"]: i["problem"] for i in doc["inputs"] if i["status"] == "rejected"} == {"redis62.json": "stale"}
    assert "The result files come from 2 machines" in (out / "compatibility.md").read_text()
