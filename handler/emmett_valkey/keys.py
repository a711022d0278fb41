"""Key names and glob patterns for SCAN MATCH."""

from __future__ import annotations

import re

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Escape the glob characters of *text* so that SCAN MATCH takes it literally."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def check_key(key: object) -> str:
    """Return *key* if it is a usable cache key, else raise an error that names it."""
    if type(key) is not str:
        if isinstance(key, str):
            return str(key)
        raise TypeError(f"cache keys must be str, got {type(key).__name__}: {key!r}")
    if not key:
        raise ValueError("cache keys must not be empty")
    return key
