"""What the suites share besides fixtures: building and closing the two handlers, and a test's own key cleanup."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import valkey

from certification.session import ServerInfo

RUN_ID = os.environ.get("EMMETT_VALKEY_RUN_ID") or uuid.uuid4().hex[:8]


def build_handler(kind: str, host: str, port: int, prefix: str, **kwargs: Any) -> Any:
    """Build one of the two handlers (``ValkeyCache`` or ``RedisCache``) from plain arguments (also in a child)."""
    if kind == "ValkeyCache":
        from emmett_valkey import ValkeyCache

        return ValkeyCache(host=host, port=port, prefix=prefix, **kwargs)
    from emmett_core.cache.handlers import RedisCache

    return RedisCache(host=host, port=port, prefix=prefix, **kwargs)


def make_handler(kind: str, server: ServerInfo, prefix: str, **kwargs: Any) -> Any:
    """Build one of the two handlers on *server*."""
    return build_handler(kind, server.host, server.port, prefix, **kwargs)


def close_handler(handler: Any) -> None:
    """Close a handler's synchronous connections, whichever kind it is."""
    if hasattr(handler, "close"):
        handler.close()
    else:
        handler._cache.close()


def scan_delete(client: valkey.Valkey, prefix: str) -> int:
    """Delete every key under *prefix* with a full SCAN cursor loop (the test's own teardown)."""
    from emmett_valkey.keys import glob_escape

    deleted = 0
    for batch in _batched(client.scan_iter(match=glob_escape(prefix) + "*", count=1000), 1000):
        deleted += client.unlink(*batch)
    return deleted


def _batched(it: Iterator[bytes], n: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in it:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


