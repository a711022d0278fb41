"""Markdown, HTML and JSON documents: order, escaping, chart, schema, determinism, files written."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from emmett_valkey_matrix.report import (
    Report,
    build_report,
    main,
    render_html,
    render_json,
    render_markdown,
    write_reports,
)
from emmett_valkey_matrix.report.load import read_benchmarks, read_results
from emmett_valkey_matrix.report.resources import package_text

DATA = Path(__file__).parent / "data"
X = "\N{MULTIPLICATION SIGN}"
D = "\N{EN DASH}"
NOW = "2026-11-26T02:00:00Z"


@pytest.fixture(scope="module")
def report() -> Report:
    return build_report(
        read_results(DATA / "results"),
        None,
        read_benchmarks(DATA / "benchmarks"),
        generated_at=NOW,
        handler_version="0.1.0",
    )


def test_markdown_sections_in_order(report: Report) -> None:
    """Verdicts first, then grid, differences, failures, provenance, latency, inputs."""
    md = render_markdown(report)
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads == [
        "## Verdict per server",
        "## Results by suite",
        "## Differences between versions",
        "## Failures",
        "## Provenance",
        "## Latency",
        "## Benchmarks",
        "## Rejected or stale inputs",
    ]
    assert ("| Valkey 9.1.2<br>`valkey91` | **✔ certified** | 22 passed, 1 skipped; "
            "suites without tests: local\\_cache |") in md


def test_markdown_tables_are_well_formed(report: Report) -> None:
    """Every table row has as many unescaped pipes as its header."""
    lines = render_markdown(report).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            width = len(re.findall(r"(?<!\\)\|", lines[i - 1]))
            j = i + 1
            while j < len(lines) and lines[j].startswith("| "):
                assert len(re.findall(r"(?<!\\)\|", lines[j])) == width, lines[j]
                j += 1


def test_markdown_escapes_and_fences_messages(report: Report) -> None:
    """Raw HTML never reaches the Markdown outside a code block; the rerun command is in a code block."""
    md = render_markdown(report)
    outside = re.sub(r"```.*?```", "", md, flags=re.S)
    assert not re.search(r"(?<!\\)<script>", outside)
    assert "<br>" in outside  # our own line breaks in table cells
    assert "  tox -e redis70 -- 'certification/test_integration.py::test_client_name[redis-7.0.15-ValkeyCache]'" in md
    assert "rejected: stale" in md and "superseded" in md


def _outside_code(md: str) -> str:
    """Return the Markdown without its fenced blocks and code spans (whose text is shown as it is)."""
    md = re.sub(r"^( *)(`{3,}).*?^\1\2$", "", md, flags=re.S | re.M)
    return re.sub(r"(`+).+?\1", "", md)


def test_markdown_has_no_html_entities(report: Report) -> None:
    """The .md shows "<id>" and "< 5 ms" as they read, in the file and rendered: no &lt; &gt; &amp; anywhere."""
    md = render_markdown(report)
    assert not re.findall(r"&(?:lt|gt|amp|quot|#x?[0-9a-fA-F]+);", md)
    assert "pytest-benchmark (`reports/benchmarks/<id>.json`)" in md
    assert "| clear: worst concurrent PING | < 5 ms | **28.4 ms** ○ not judged<br>" in md
    assert "| ours p99 ms | get-int-hit | 0.205 ms |  | < 1 ms | ✔ met |" in md
    # outside code, a "<" that could open a tag is either our own <br> or backslash-escaped
    outside = _outside_code(md)
    for match in re.finditer(r"(?<!\\)<(?=[A-Za-z/!?])", outside):
        assert outside.startswith("<br>", match.start()), outside[match.start() - 40 : match.start() + 40]


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("p99 < 5 ms", "p99 < 5 ms"),
        ("a <id> b", "a \\<id> b"),
        ("</script><!-- x --><?php", "\\</script><\\!-- x -->\\<?php"),
        ("Tom & Jerry &amp; &#60; &x", "Tom & Jerry \\&amp; &\\#60; &x"),
        ("> quoted", "\\> quoted"),
        ("a > b", "a > b"),
        ("*a* _b_ `c` [d](e) | #", "\\*a\\* \\_b\\_ \\`c\\` \\[d\\](e) \\| \\#"),
        ("one\ntwo", "one<br>two"),
    ],
)
def test_md_escapes_for_markdown_not_html(text: str, escaped: str) -> None:
    """md() backslash-escapes what Markdown would read as markup and leaves every other <, > and & alone."""
    from emmett_valkey_matrix.report.markdown import md

    assert md(text) == escaped


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_every_message(report: Report) -> None:
    """A test message with <script>, quotes and & is shown as text, never as markup."""
    html = render_html(report)
    parsed = _Collect()
    parsed.feed(html)
    assert "script" not in parsed.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "assert &#x27;emmett-valkey&lt;0.1.0&gt;&#x27; == &quot;emmett-valkey&quot; &amp;" in html
    assert any("<script>alert(1)</script>" in t for t in parsed.text)


def test_html_is_self_contained(report: Report) -> None:
    """No script, no external stylesheet, font, image or link target outside the page."""
    html = render_html(report)
    parsed = _Collect()
    parsed.feed(html)
    assert not {"script", "link", "img", "iframe"} & set(parsed.tags)
    for name, value in parsed.attrs:
        if name in ("href", "src"):
            assert value is not None and value.startswith("#"), value
    assert "@import" not in html and "url(http" not in html
    assert "@media print" in html and "@media (max-width" in html


def test_html_has_grid_and_latency_chart(report: Report) -> None:
    """The grid table has headers, and each operation with samples has an inline SVG chart."""
    html = render_html(report)
    assert '<table class="grid">' in html and '<th scope="colgroup" colspan="5" class="product">Valkey</th>' in html
    assert html.count('<svg class="chart"') == 4
    assert "expected p99 &lt; 1 ms" in html and "expected p99 &lt; 10 ms" in html
    assert "12.3 ✘" in html


def test_html_provenance_shows_no_zero_git_sha(report: Report) -> None:
    """The result files record git_sha 00000000 (wheel builds): the git sha row shows a dash for each column."""
    html = render_html(report)
    row = re.search(r'<tr><th scope="row">git sha</th>(.*?)</tr>', html)
    assert row is not None
    assert "0000" not in row.group(1) and row.group(1).count("<td>—</td>") == row.group(1).count("<td>")
    assert '"git_sha": null' in render_json(report) and '"git_sha": "0' not in render_json(report)


def test_json_matches_its_schema(report: Report) -> None:
    """compatibility.json validates against schemas/report-1.schema.json."""
    doc = json.loads(render_json(report))
    schema = json.loads(package_text("schemas/report-1.schema.json"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["schema"] == "emmett-valkey-report/1"
    assert [c["verdict"]["code"] for c in doc["columns"]][4] == "certified"


def test_recorded_results_match_the_input_schema() -> None:
    """The recorded files meant to be accepted validate against schemas/results-1.schema.json."""
    schema = json.loads(package_text("schemas/results-1.schema.json"))
    jsonschema.Draft202012Validator.check_schema(schema)
    for name in ("valkey91.json", "redis70.json", "redis72.json", "valkey72.json"):
        jsonschema.Draft202012Validator(schema).validate(json.loads((DATA / "results" / name).read_text()))


def test_same_input_same_bytes(report: Report) -> None:
    """Rendering twice, from a fresh build, gives identical bytes for all three documents."""
    again = build_report(
        read_results(DATA / "results"),
        None,
        read_benchmarks(DATA / "benchmarks"),
        generated_at=NOW,
        handler_version="0.1.0",
    )
    for render in (render_markdown, render_html, render_json):
        assert render(again).encode() == render(report).encode()


def _bench_section(md: str) -> str:
    return md[md.index("## Benchmarks") : md.index("## Rejected or stale inputs")]


def test_markdown_benchmark_targets(report: Report) -> None:
    """The Benchmarks section: the targets with each server's worst case marked, then every figure per server."""
    section = _bench_section(render_markdown(report))
    assert "| Figure | Target | Valkey 7.2.x<br>`valkey72` | Valkey 9.1.2<br>`valkey91` |" in section
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    labels = [line.split(" | ")[0][2:] for line in lines[1:15]]
    assert labels[:4] == [
        "ours / valkey-py: get",
        "ours / valkey-py: set",
        "ours / RedisCache: get",
        "ours / RedisCache: set",
    ]
    assert labels[-1] == "**Targets**"
    assert (
        "| ours / RedisCache: get | ≤ 0.75 | **0.800** ○ not judged<br>worst of 2: get-int-hit | "
        "**0.809** ✘ missed<br>worst of 4: get-10KB-hit |"
    ) in section
    assert (
        f"| set\\_many speed-up (100 sets → 1 set\\_many) | ≥ 6{X} | **7.42{X}** ○ not judged | **7.42{X}** ✔ met |"
        in section
    )
    assert (
        "**28.4 ms** ✘ missed<br>KEYS+DEL: 72.3 ms" in section and "**2.68 ms** ✔ met<br>KEYS+DEL: 65.5 ms" in section
    )
    assert "| **Targets** |  | ○ not judged: 13 | ✔ met: 7 · ✘ missed: 6 |" in section
    assert "No benchmark file: Valkey 8.0.x (`valkey80`)," in section and "Redis 7.0.15 (`redis70`)" in section
    assert "### Valkey 9.1.2 (`valkey91`)" in section
    assert "full-size run: figures judged against their targets · 14 met · 15 missed · file valkey91.json" in section
    assert "check-size run (--benchmark-disable): figures shown, not judged · 20 not judged" in section
    assert f"| ours / valkey-py | get-int-hit | 1.081 | 1.072{D}1.091 | ≤ 1.05 | ✘ missed |  |" in section
    assert f"| control pair (identical clients) | control | 1.003 | 0.989{D}1.018 | 1 ± 0.02 | ✔ met |  |" in section
    assert "28.4 ms (KEYS+DEL 72.3 ms)" in section
    assert "check-size run: not judged" not in section  # said once per run, not on every row
    assert "ops/s" not in section  # paired figures supersede the separate medians


def test_markdown_benchmarks_without_files() -> None:
    """Without any benchmark file the section says so, per server."""
    results = read_results(DATA / "results")
    bare = _bench_section(render_markdown(build_report(results, None, None, generated_at=NOW)))
    assert "No benchmark figures for any server." in bare and "No benchmark file: Valkey 7.2.x (`valkey72`)" in bare


def test_html_benchmark_targets(report: Report) -> None:
    """The HTML section: a headline table (met, missed and not judged cells) and one figure table per run."""
    html = render_html(report)
    section = html[html.index('<section id="benchmarks">') : html.index('<section id="inputs">')]
    assert '<table class="bench-head">' in section and section.count('<table class="bench-rows">') == 2
    assert '<td class="r-missed"><span class="fig">0.809</span> <span class="unmet">✘ missed</span>' in section
    assert f'<td class="r-met"><span class="fig">7.42{X}</span> <span class="met">✔ met</span></td>' in section
    assert '<span class="notjudged">○ not judged</span>' in section
    assert '<span class="beside">KEYS+DEL: 72.3 ms</span>' in section
    assert 'href="#bench-valkey91"' in section and 'id="bench-valkey91"' in section
    assert "No benchmark file: Valkey 8.0.x" in section
    assert '<a href="#benchmarks">Benchmarks</a>' in html


def test_benchmark_text_is_escaped() -> None:
    """A benchmark group or note with markup stays text in both documents."""
    doc = json.loads((DATA / "benchmarks" / "valkey91.json").read_text())
    for b in doc["benchmarks"]:
        if b["extra_info"].get("op") == "set":
            b["group"] = b["group"].replace("set-", "set-<script>alert(2)</script>|`")
    r = build_report(read_results(DATA / "results"), None, {"valkey91": doc}, generated_at=NOW)
    html = render_html(r)
    parsed = _Collect()
    parsed.feed(html)
    assert "script" not in parsed.tags and "set-&lt;script&gt;alert(2)&lt;/script&gt;|`int" in html
    md = _bench_section(render_markdown(r))
    assert not re.search(r"(?<!\\)<script>", md) and "set-\\<script>alert(2)\\</script>\\|\\`int" in md


def test_json_carries_benchmark_ratios(report: Report) -> None:
    """compatibility.json has every run (one per column) with its ratio rows and the headline figures."""
    doc = json.loads(render_json(report))
    runs = {run["server_id"]: run for run in doc["benchmark_runs"]}
    assert list(runs) == [c["id"] for c in doc["columns"]]
    assert runs["redis70"] == {
        "server_id": "redis70",
        "file": None,
        "status": "missing",
        "size": None,
        "judged": False,
        "met": 0,
        "missed": 0,
        "not_judged": 0,
        "ratios": [],
    }
    first = runs["valkey91"]["ratios"][0]
    assert first == {
        "figure": "ours / valkey-py",
        "key": "ours_vs_raw",
        "case": "get-int-hit",
        "unit": "ratio",
        "value": 1.0815,
        "q1": 1.0716,
        "q3": 1.0909,
        "beside": None,
        "target": "<= 1.05",
        "bound": {"op": "<=", "limit": 1.05},
        "met": False,
        "status": "missed",
        "note": "",
        "headline": "ours_vs_raw_get",
    }
    assert runs["valkey72"]["size"] == "check" and runs["valkey72"]["judged"] is False
    head = doc["benchmark_headlines"][6]
    assert (head["key"], head["target"], head["beside_label"]) == ("clear_worst_ping", "< 5", "KEYS+DEL")
    assert head["cells"][1] == {
        "server_id": "valkey91",
        "value": 28.412,
        "beside": 72.264,
        "case": "test_clear_pattern[valkey91] 100000 keys",
        "cases": 1,
        "status": "missed",
    }


def test_write_reports_and_cli(tmp_path: Path) -> None:
    """write_reports and main write the three documents from reports/results and reports/benchmarks."""
    shutil.copytree(DATA / "results", tmp_path / "reports" / "results")
    shutil.copytree(DATA / "benchmarks", tmp_path / "reports" / "benchmarks")
    paths = write_reports(
        tmp_path / "reports" / "results", tmp_path / "reports", handler_version="0.1.0", generated_at=NOW
    )
    assert [p.name for p in paths] == ["compatibility.md", "compatibility.html", "compatibility.json"]
    first = [p.read_bytes() for p in paths]
    out = tmp_path / "cli"
    assert (
        main(
            [
                "--results",
                str(tmp_path / "reports" / "results"),
                "--out",
                str(out),
                "--handler-version",
                "0.1.0",
                "--generated-at",
                NOW,
            ]
        )
        == 0
    )
    assert [(out / p.name).read_bytes() for p in paths] == first
    assert not list(out.glob("*.partial"))


def test_empty_results_dir_reports_every_id_not_run(tmp_path: Path) -> None:
    """With no result file at all, every id is 'not run: no result file', standalone and on a cluster."""
    paths = write_reports(tmp_path / "missing", tmp_path, handler_version="0.1.0", generated_at=NOW)
    doc = json.loads(paths[2].read_text())
    standalone = [c for c in doc["columns"] if c["topology"] == "standalone"]
    cluster = [c for c in doc["columns"] if c["topology"] == "cluster"]
    assert {c["verdict"]["reason"] for c in standalone} == {"no result file"}
    assert {(c["verdict"]["code"], c["verdict"]["reason"]) for c in cluster} == {
        ("not_run", f"no result file: not run on a cluster (tox -e {c['base_id']}-cluster)") for c in standalone
    }
    assert len(standalone) == len(cluster) == 10
