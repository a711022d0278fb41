"""Per-process counters behind ``ValkeyCache.stats()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Stats:
    """Counts since the handler was made (or :meth:`reset`), in this process.

    ``refused`` counts stored entries the serializer would not decode (served as misses); ``errors`` counts
    connection and timeout errors (and, on writes, a full server's OOM refusal) that fail-soft mode
    (``on_error="miss"``) served as a miss or a no-op.
    Increments are not locked: under heavy thread contention a count can come out slightly low.
    """

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    refused: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a plain dict."""
        return asdict(self)

    def reset(self) -> None:
        """Set every count back to zero."""
        for name in self.as_dict():
            setattr(self, name, 0)
