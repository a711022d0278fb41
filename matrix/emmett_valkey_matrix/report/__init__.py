"""The compatibility report: a pure function from result files to Markdown, HTML and JSON documents."""

from .build import build_report
from .model import Report

__all__ = ["Report", "build_report"]
