"""The HTML report rendered by headless Chromium: grid and chart in the DOM, screenshots kept for people."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
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
    assert dom.count('<th scope="rowgroup"') == 9
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
