"""The async commands: on the running loop's pooled client (:class:`AsyncIO`) or its stream (:class:`StreamIO`).

:class:`StreamIO`, the standalone topology's, sends every command that needs no connection of its own on the loop's
multiplexed :class:`~.stream.Stream`; a MULTI/EXEC (``set_all``, ``incr``) holds a connection, so it keeps using the
loop's valkey-py pool. :class:`LoopClients` holds one loop's clients and closes them when the loop shuts down.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from valkey.exceptions import ResponseError

from .stream import Stream

if TYPE_CHECKING:
    from .connections import Connections

#: a SCAN position: None before the first page and after the last
Cursor = Any


@dataclass(eq=False)
class LoopClients:
    """One event loop's async clients: the pooled client, the stream, a cluster's node clients; each made on use."""

    client: Any = None
    stream: Stream | None = None
    nodes: dict[tuple[str, int], Any] = field(default_factory=dict)
    guard: AsyncGenerator[None, None] | None = None

    def guard_loop(self) -> None:
        """Close the clients when the running loop shuts down (``asyncio.run`` finalizes async generators first)."""
        self.guard = guard = self._close_at_loop_shutdown()
        try:  # start it without awaiting: it registers with the loop and stops at its only yield
            guard.__anext__().send(None)
        except StopIteration:
            pass

    async def _close_at_loop_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self._close()

    async def aclose(self) -> None:
        """Close the clients now, through the guard (awaited: asyncio.run would cancel a finalizer's task)."""
        if self.guard is not None:
            await self.guard.aclose()
        else:
            await self._close()

    async def _close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.aclose()
        nodes, self.nodes = list(self.nodes.values()), {}
        client, self.client = self.client, None
        for node in [*nodes, client]:
            if node is not None:
                await node.aclose()
                pool = getattr(node, "connection_pool", None)  # a cluster client closes its nodes' pools itself
                if pool is not None:
                    await pool.disconnect()  # the client does not own a pool it was given


def without_arguments(exc: ResponseError) -> ResponseError:
    """Drop the command arguments valkey-py writes into a pipeline error: they hold cached values."""
    if exc.args and isinstance(exc.args[0], str) and exc.args[0].startswith("Command # "):
        number, _, rest = exc.args[0].partition(" (")
        exc.args = (f"{number} of pipeline caused error: {rest.partition(' caused error: ')[2]}", *exc.args[1:])
    return exc



class AsyncIO:
    """The cache's commands on one server, on the running event loop's client: :class:`SyncIO`'s, awaited."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    async def get(self, name: str) -> bytes | None:
        """GET."""
        return await self.connections.aclient.get(name)  # type: ignore[no-any-return]

    async def get_pttl(self, name: str) -> tuple[bytes | None, int]:
        """GET and PTTL in one round trip."""
        async with self.connections.aclient.pipeline(transaction=False) as pipe:
            pipe.get(name)
            pipe.pttl(name)
            raw, pttl = await pipe.execute()
        return raw, int(pttl)

    async def set(self, name: str, payload: bytes, ms: int) -> None:
        """SET with a lifetime in milliseconds."""
        await self.connections.aclient.set(name, payload, px=ms)

    async def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET, in the order asked."""
        return await self.connections.aclient.mget(names)  # type: ignore[no-any-return]

    async def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair, all or none (MULTI/EXEC); an error names no value."""
        try:
            async with self.connections.aclient.pipeline(transaction=True) as pipe:
                for name, payload in items:
                    pipe.set(name, payload, px=ms)
                await pipe.execute()
        except ResponseError as exc:
            raise without_arguments(exc) from None

    async def unlink(self, names: Sequence[str | bytes]) -> int:
        """UNLINK the names; how many existed."""
        return int(await self.connections.aclient.unlink(*names))

    async def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of names matching *match*, and where the next one starts (None: no more)."""
        reply: Any = await self.connections.aclient.scan(cursor=cursor or 0, match=match, count=count)
        return reply[0] or None, reply[1]

    async def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC: the new value, and the lifetime left (-1: none)."""
        async with self.connections.aclient.pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = await pipe.execute()
        return int(value), int(pttl)

    async def pexpire(self, name: str, ms: int) -> bool:
        """PEXPIRE; False when the name does not exist."""
        return bool(await self.connections.aclient.pexpire(name, ms))

    async def pttl(self, name: str) -> int:
        """PTTL (-2: no such name, -1: no lifetime)."""
        return int(await self.connections.aclient.pttl(name))


class StreamIO(AsyncIO):
    """:class:`AsyncIO` on the running loop's stream, but for the transactions (on its pool)."""

    async def get(self, name: str) -> bytes | None:
        """GET."""
        return await self.connections.astream.call("GET", name)  # type: ignore[no-any-return]

    async def get_pttl(self, name: str) -> tuple[bytes | None, int]:
        """GET and PTTL back to back."""
        raw, pttl = await self.connections.astream.pipeline((("GET", name), ("PTTL", name)))
        return raw, int(pttl)

    async def set(self, name: str, payload: bytes, ms: int) -> None:
        """SET with a lifetime in milliseconds."""
        await self.connections.astream.call("SET", name, payload, "PX", ms)

    async def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET, in the order asked."""
        return await self.connections.astream.call("MGET", *names)  # type: ignore[no-any-return]

    async def unlink(self, names: Sequence[str | bytes]) -> int:
        """UNLINK the names; how many existed."""
        return int(await self.connections.astream.call("UNLINK", *names))

    async def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of names matching *match*, and where the next one starts (None: no more)."""
        reply = await self.connections.astream.call("SCAN", cursor or 0, "MATCH", match, "COUNT", count)
        return int(reply[0]) or None, reply[1]

    async def pexpire(self, name: str, ms: int) -> bool:
        """PEXPIRE; False when the name does not exist."""
        return bool(await self.connections.astream.call("PEXPIRE", name, ms))

    async def pttl(self, name: str) -> int:
        """PTTL (-2: no such name, -1: no lifetime)."""
        return int(await self.connections.astream.call("PTTL", name))
