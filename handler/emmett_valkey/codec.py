"""From values to stored bytes and back, and the hit/miss/refused counts that decoding makes."""

from __future__ import annotations

import logging
from typing import Any

from .serializers import SerializationError, Serializer
from .stats import Stats

log = logging.getLogger("emmett_valkey")

#: what an operation gives for a key that is not cached (a cached None is a value)
MISSING: Any = object()


class Codec:
    """A handler's serializer, its value size limit and its counters."""

    def __init__(self, serializer: Serializer, max_value_size: int | None, stats: Stats, prefix: str) -> None:
        self.serializer, self.max_value_size, self.stats, self.prefix = serializer, max_value_size, stats, prefix

    def encode(self, name: str, value: Any) -> bytes:
        """Serialize *value* for *name*; ``ValueError`` (nothing sent) when it exceeds ``max_value_size``."""
        payload = self.serializer.dumps(value)
        if self.max_value_size is not None and len(payload) > self.max_value_size:
            raise ValueError(f"{name!r}: the value takes {len(payload)} bytes, more than max_value_size="
                             f"{self.max_value_size} (the server's proto-max-bulk-len); nothing was written")
        return payload

    def decode(self, name: str, raw: bytes | None) -> Any:
        """Return the value stored as *raw*, or MISSING (absent, or refused: a logged, counted miss)."""
        if raw is None:
            self.stats.misses += 1
            return MISSING
        try:
            value = self.serializer.loads(raw)
        except SerializationError as exc:
            self.stats.refused += 1
            self.stats.misses += 1
            log.warning("emmett_valkey: treating %r as a miss: %s", name, exc)
            return MISSING
        self.stats.hits += 1
        return value

    def decode_many(self, keys: list[str], raws: list[bytes | None]) -> dict[str, Any]:
        """Return ``{key: value}`` of the keys present and decodable; the others are counted misses."""
        # one pass, counters once per batch: this loop is most of get_many's own cost
        out: dict[str, Any] = {}
        loads = self.serializer.loads
        for key, raw in zip(keys, raws, strict=True):
            if raw is not None:
                try:
                    out[key] = loads(raw)
                except SerializationError as exc:
                    self.stats.refused += 1
                    log.warning("emmett_valkey: treating %r as a miss: %s", self.prefix + key, exc)
        self.stats.hits += len(out)
        self.stats.misses += len(keys) - len(out)
        return out
