"""Emmett's duration contract, checked.

``"default"`` means the handler's ``default_expire``, ``None`` means one year (as Emmett's ``RedisCache``), a positive
finite number means seconds. Anything else raises :class:`ValueError` naming the value, before anything is written.
"""

from __future__ import annotations

import math
from typing import Any

#: What ``None`` means, as in ``emmett_core.cache.handlers.CacheHandler``.
ONE_YEAR = 60 * 60 * 24 * 365


def check_seconds(value: Any, what: str = "duration") -> float | int:
    """Return *value* if it is a positive finite number of seconds, else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a positive number of seconds, 'default' or None; got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive finite number of seconds; got {value!r}")
    return value


def to_milliseconds(duration: Any, default_expire: float | int) -> int:
    """Resolve a cache duration to whole milliseconds (at least 1), as sent with ``SET ... PX``."""
    if duration is None:
        seconds: float | int = ONE_YEAR
    elif isinstance(duration, str):
        if duration != "default":
            raise ValueError(f"duration must be a positive number of seconds, 'default' or None; got {duration!r}")
        seconds = default_expire
    else:
        seconds = check_seconds(duration)
    if isinstance(seconds, int):
        return seconds * 1000
    return max(1, math.ceil(seconds * 1000))
