"""The HTML report rendered by headless Chromium: grid and chart in the DOM, screenshots kept for people."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cluster_results import as_cluster
from emmett_valkey_matrix.contract import SUITES
from emmett_valkey_matrix.report import build_report, render_html
from emmett_valkey_matrix.report.load import read_benchmarks, read_results

DATA = Path(__file__).parent / "data"
ARTIFACTS = Path(__file__).resolve().parents[2] / "reports" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium fonts-dejavu-core)"
)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = build_report(
        read_results(DATA / "results"),
        None,
        read_benchmarks(DATA / "benchmarks"),
        generated_at="2026-11-26T02:00:00Z",
        handler_version="0.1.0",
    )
    path = tmp_path_factory.mktemp("html") / "compatibility.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def test_rendered_dom_has_grid_and_chart(page: Path, tmp_path: Path) -> None:
    """Chromium's DOM holds the grid table, its headers, the verdict badges and the SVG charts."""
    dom = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert '<table class="grid">' in dom
    assert dom.count('<th scope="rowgroup"') == 11  # one per suite
    assert dom.count('<svg class="chart"') == 4 and '<rect class="bar p99"' in dom
    assert "✘ failed" in dom and "◐ certified with deviations" in dom
    assert "<script>alert(1)</script>" not in dom
    assert '<table class="bench-head">' in dom and dom.count('<table class="bench-rows">') == 2
    assert "✘ missed" in dom and "✔ met" in dom and "○ not judged" in dom


@pytest.mark.parametrize(
    ("name", "size"), [("desktop", "1400,4600"), ("phone", "390,3000"), ("benchmarks", "1400,9000")]
)
def test_screenshot(page: Path, tmp_path: Path, name: str, size: str) -> None:
    """A screenshot of the page is written under reports/artifacts/ for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"compatibility-{name}.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path / "profile", f"--screenshot={shot}", f"--window-size={size}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


_MEASURE = """<script>
const boxes = [];
for (const svg of document.querySelectorAll("svg.chart")) {
  const own = svg.getBoundingClientRect();
  const text = (sel) => [...svg.querySelectorAll(sel)].map((n) => {
    const r = n.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: n.textContent};
  });
  boxes.push({chart: svg.id || svg.getAttribute("aria-labelledby"),
              svg: {left: own.left, right: own.right, top: own.top, bottom: own.bottom},
              title: text(".chart-title")[0], expect: text(".expect-label")[0] || null,
              unit: text("text.tick").find((b) => b.text === "ms")});
}
const out = document.createElement("pre");
out.id = "boxes";
out.textContent = JSON.stringify(boxes);
document.body.appendChild(out);
</script>"""


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def _inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (inner["left"] >= outer["left"] - 0.5 and inner["right"] <= outer["right"] + 0.5
            and inner["top"] >= outer["top"] - 0.5 and inner["bottom"] <= outer["bottom"] + 0.5)


@pytest.mark.parametrize("servers", [None, ("valkey91",)], ids=["all", "one-server"])
@pytest.mark.parametrize("size", ["1400,2000", "390,2000"], ids=["desktop", "phone"])
def test_chart_title_legend_and_unit_never_overlap(tmp_path: Path, servers: tuple[str, ...] | None,
                                                   size: str) -> None:
    """As Chromium lays out each latency chart, its title, expectation label and unit are apart and inside it.

    Also for a single server, the narrowest chart ("pattern clear" above "expected p99 < 10 ms").
    """
    results = [d for d in read_results(DATA / "results") if servers is None or d.get("server_id") in servers]
    report = build_report(results, None, {}, generated_at="2026-11-26T02:00:00Z", handler_version="0.1.0")
    page = tmp_path / "charts.html"
    page.write_text(render_html(report).replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path / "profile", f"--window-size={size}", "--dump-dom", page.as_uri()).stdout
    match = re.search(r'<pre id="boxes">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    charts = json.loads(html.unescape(match.group(1)))
    assert len(charts) == 4 and any(c["expect"] and "10 ms" in c["expect"]["text"] for c in charts)
    for chart in charts:
        texts = [b for b in (chart["title"], chart["expect"], chart["unit"]) if b]
        for i, a in enumerate(texts):
            assert _inside(a, chart["svg"]), (chart["chart"], a, chart["svg"])
            for b in texts[i + 1:]:
                assert not _overlap(a, b), (chart["chart"], a, b)


def test_rendered_dom_has_both_topologies(tmp_path: Path) -> None:
    """With a cluster run beside the standalone ones, Chromium's DOM holds both grids and the cluster's nodes."""
    results = read_results(DATA / "results")
    valkey91 = next(d for d in results if d.get("_origin", {}).get("file") == "valkey91.json")
    report = build_report([*results, as_cluster(valkey91)], None, {}, generated_at="2026-11-26T02:00:00Z",
                          handler_version="0.1.0")
    page = tmp_path / "compatibility.html"
    page.write_text(render_html(report), encoding="utf-8")
    dom = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert dom.count('<table class="grid">') == 2 and dom.count('<th scope="rowgroup"') == 2 * len(SUITES)
    cluster_grid = dom[dom.index('id="grid-cluster"') :]
    cluster_grid = cluster_grid[: cluster_grid.index("</table>")]
    assert cluster_grid.count('<span class="vertical">○ not run</span>') == 9  # one cell down each column not run
    assert "valkey91-cluster" in cluster_grid and "✔ certified" in cluster_grid
    assert '<table class="cluster-nodes">' in dom and "5461\N{EN DASH}10922 (5462 slots)" in dom
