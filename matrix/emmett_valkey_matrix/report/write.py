"""The impure edge: read ``reports/results`` (+ ``reports/benchmarks``, app.json too), write the documents; a CLI."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..catalogue import Entry
from ..results import RESULTS_DIR
from . import app_bench
from .build import build_report
from .html import render_html
from .jsondoc import render_json
from .load import read_benchmarks, read_results
from .markdown import render_markdown
from .model import DISTRIBUTION


def _now() -> str:
    """Now in UTC, or ``SOURCE_DATE_EPOCH`` when set, for byte-identical rebuilds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def installed_version() -> str | None:
    """Version of the installed ``emmett-valkey`` distribution, or ``None`` when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def write_reports(
    results_dir: Path,
    out_dir: Path,
    *,
    benchmarks_dir: Path | None = None,
    catalogue: Mapping[str, Entry] | None = None,
    handler_version: str | None = None,
    generated_at: str | None = None,
) -> list[Path]:
    """Write ``compatibility.md``, ``.html`` and ``.json`` into ``out_dir``; return their paths.

    ``benchmarks_dir`` defaults to ``<results_dir>/../benchmarks``; ``handler_version`` to the installed
    ``emmett-valkey``; ``generated_at`` to now (or ``SOURCE_DATE_EPOCH``).
    """
    bench_dir = benchmarks_dir if benchmarks_dir is not None else results_dir.parent / "benchmarks"
    report = build_report(
        read_results(results_dir),
        catalogue,
        read_benchmarks(bench_dir),
        generated_at=generated_at or _now(),
        handler_version=handler_version if handler_version is not None else installed_version(),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    app = app_bench.read(bench_dir)  # the app benchmark's section, when python -m appbench wrote its file
    documents = (("md", app_bench.into_markdown(render_markdown(report), app)),
                 ("html", app_bench.into_html(render_html(report), app)), ("json", render_json(report)))
    for suffix, text in documents:
        path = out_dir / f"compatibility.{suffix}"
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``emmett-valkey-matrix report [--results DIR] [--out DIR] ...``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="emmett-valkey-matrix report",
        description="Turn reports/results/*.json into reports/compatibility.{md,html,json}.",
    )
    parser.add_argument("--results", type=Path, default=Path(RESULTS_DIR), help="result files directory")
    parser.add_argument("--benchmarks", type=Path, default=None, help="pytest-benchmark JSON directory")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="where to write the documents")
    parser.add_argument("--handler-version", default=None, help="accept result files of this emmett-valkey version")
    parser.add_argument("--generated-at", default=None, help="timestamp to print (default: now)")
    args = parser.parse_args(argv)
    paths = write_reports(
        args.results,
        args.out,
        benchmarks_dir=args.benchmarks,
        handler_version=args.handler_version,
        generated_at=args.generated_at,
    )
    for path in paths:
        print(path)
    return 0
