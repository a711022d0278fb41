"""Reading TOML on every supported Python: :mod:`tomllib` from 3.11, its backport ``tomli`` on 3.10.

The one place that knows about the fallback: read TOML through here, not through tomllib directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    """Parse TOML text; :class:`TOMLDecodeError` when it is not valid TOML."""
    parsed: dict[str, Any] = tomllib.loads(text)
    return parsed


def read_toml(path: Path) -> dict[str, Any]:
    """Read and parse a TOML file (UTF-8); :class:`OSError` or :class:`TOMLDecodeError` when that fails."""
    return loads(path.read_text(encoding="utf-8"))
