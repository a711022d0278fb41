"""Data files shipped in ``emmett_valkey_matrix`` that the report reads: its stylesheet and the JSON schemas."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_text(relative: str) -> str:
    """Text of a data file shipped in ``emmett_valkey_matrix`` (``report/report.css``, ``schemas/...``)."""
    try:
        return resources.files("emmett_valkey_matrix").joinpath(relative).read_text("utf-8")
    except (NotADirectoryError, FileNotFoundError, TypeError):
        # a namespace package under an editable install has no resource reader; read beside this file
        return Path(__file__).resolve().parent.parent.joinpath(relative).read_text("utf-8")
