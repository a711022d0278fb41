"""The app benchmark's section in the report, from a recorded reports/benchmarks/app.json (no server)."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from emmett_valkey_matrix.report import app_bench, write_reports

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "app" / "app.json"
NOW = "2026-12-04T22:00:00Z"


@pytest.fixture
def written(tmp_path: Path) -> dict[str, str]:
    """Write the three documents from the recorded results, the recorded benchmarks and app.json."""
    bench = tmp_path / "benchmarks"
    shutil.copytree(DATA / "benchmarks", bench)
    shutil.copy(RECORDED, bench / "app.json")
    paths = write_reports(DATA / "results", tmp_path / "out", benchmarks_dir=bench, handler_version="0.1.0",
                          generated_at=NOW)
    return {p.suffix: p.read_text("utf-8") for p in paths}


def test_markdown_has_the_app_section_with_every_route_and_ratio(written: dict[str, str]) -> None:
    """The Markdown report ends with the app section: one row per route, one per ratio, the closing count."""
    doc = json.loads(RECORDED.read_text("utf-8"))
    md = written[".md"]
    section = md[md.index(f"## {app_bench.TITLE}"):]
    for r in doc["routes"]:
        assert f"| {r['link']} | {r['path']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} |" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and app_bench.TIMES in line]
    assert len(rows) == len(doc["ratios"]) == 8
    assert f"**{doc['targets']['met']} of {doc['targets']['total']} targets met**" in section
    assert md.rstrip("\n").splitlines()[-1].startswith("Document schema")  # the footer stays last


def test_html_has_one_chart_per_link_and_parses(written: dict[str, str]) -> None:
    """The HTML report has the section, linked from the nav, with a bar per route in one SVG chart per link."""
    html = written[".html"]
    section = html[html.index(f'<section id="{app_bench.ANCHOR}">'):html.index("</main>")]
    assert section.count('<svg class="chart"') == 2
    assert section.count('<rect class="bar') == 16
    assert f'<a href="#{app_bench.ANCHOR}">' in html[:html.index("</nav>")]
    tags: list[str] = []

    class Balance(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in ("meta", "br", "rect", "line", "path"):
                tags.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if tag not in ("rect", "line", "path"):
                assert tags.pop() == tag

    Balance().feed(html)
    assert tags == []


def test_app_json_is_no_rejected_benchmark_input(written: dict[str, str]) -> None:
    """app.json is read by the app section only, so the JSON report lists no input for it."""
    inputs = json.loads(written[".json"])["inputs"]
    assert all(i["file"] != "app.json" for i in inputs)


def test_no_app_section_without_the_file_or_with_another_document(tmp_path: Path) -> None:
    """Without app.json, or with a file that is not an appbench-1 document, the report has no app section."""
    assert app_bench.read(tmp_path) is None
    (tmp_path / "app.json").write_text('{"benchmarks": []}', encoding="utf-8")
    assert app_bench.read(tmp_path) is None
    paths = write_reports(DATA / "results", tmp_path / "out", benchmarks_dir=tmp_path, handler_version="0.1.0",
                          generated_at=NOW)
    assert all(app_bench.TITLE not in p.read_text("utf-8") for p in paths)
