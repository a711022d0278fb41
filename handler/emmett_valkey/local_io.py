"""The one command the local cache adds to a server's I/O: MGET with every name's PTTL, in one round trip.

``get_many`` with the local cache on reads the names it did not find locally this way, so that each value it
stores keeps its server TTL (as ``get`` does with ``get_pttl``). Plain subclasses of :class:`~.connections.SyncIO`
and :class:`~.aio.StreamIO`: everything else is theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .aio import StreamIO
from .connections import SyncIO


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


class TrackedAsyncIO(StreamIO):
    """:class:`~.aio.StreamIO` and ``mget_pttl``."""

    async def mget_pttl(self, names: Sequence[str]) -> tuple[list[bytes | None], list[int]]:
        """Async :meth:`TrackedSyncIO.mget_pttl`, back to back on the loop's stream."""
        return _split(await self.connections.astream.pipeline((("MGET", *names), *(("PTTL", n) for n in names))))
