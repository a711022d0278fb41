"""The compatibility report: a pure function from result files to Markdown, HTML and JSON documents.

``build_report`` (pure) -> ``Report``; ``render_markdown`` / ``render_html`` / ``render_json`` (pure) -> text;
``write_reports`` reads ``reports/results`` and writes ``reports/compatibility.*``; ``main`` is the CLI.
"""

from .build import build_report
from .html import render_html
from .jsondoc import render_json
from .markdown import render_markdown
from .model import Report
from .write import main, write_reports

__all__ = ["Report", "build_report", "main", "render_html", "render_json", "render_markdown", "write_reports"]
