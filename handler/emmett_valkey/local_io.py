"""The one command the local cache adds to a server's I/O: MGET with every name's PTTL, in one round trip.

``get_many`` with the local cache on reads the names it did not find locally this way, so that each value it
stores keeps its server TTL (as ``get`` does with ``get_pttl``). Plain subclasses of :class:`~.connections.SyncIO`
and :class:`~.connections.AsyncIO`: everything else is theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .connections import AsyncIO, SyncIO


def _split(replies: list[Any]) -> tuple[list[bytes | None], list[int]]:
    return replies[0], [int(pttl) for pttl in replies[1:]]


class TrackedSyncIO(SyncIO):
    """:class:`~.connections.SyncIO` and ``mget_pttl``."""

    def mget_pttl(self, names: Sequence[str]) -> tuple[list[bytes | None], list[int]]:
        """MGET and a PTTL per name, pipelined (no transaction): the values, and the lifetime each has left."""
        with self.connections.client.pipeline(transaction=False) as pipe:
            pipe.mget(names)
            for name in names:
                pipe.pttl(name)
            return _split(pipe.execute())  # type: ignore[no-untyped-call]


class TrackedAsyncIO(AsyncIO):
    """:class:`~.connections.AsyncIO` and ``mget_pttl``."""

    async def mget_pttl(self, names: Sequence[str]) -> tuple[list[bytes | None], list[int]]:
        """Async :meth:`TrackedSyncIO.mget_pttl`."""
        async with self.connections.aclient.pipeline(transaction=False) as pipe:
            pipe.mget(names)
            for name in names:
                pipe.pttl(name)
            return _split(await pipe.execute())
