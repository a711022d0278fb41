"""The cache's commands on a cluster: an MGET per slot, a MULTI/EXEC per slot on its node, a SCAN cursor per primary.

:class:`ClusterSyncIO` and :class:`ClusterAsyncIO` have :class:`~.connections.SyncIO`'s and
:class:`~.aio.AsyncIO`'s methods; a stale slot map is reloaded once, and a transaction in a migrating slot becomes
TRYAGAIN (see :func:`_reloads_slot_map`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any

import valkey
import valkey.asyncio as avalkey
from valkey.exceptions import AskError, MovedError, ResponseError, SlotNotCoveredError, TryAgainError
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

from .aio import AsyncIO, Cursor, without_arguments
from .connections import SyncIO


def _by_slot(client: Any, names: Sequence[str]) -> dict[int, list[int]]:
    """Indexes of *names* grouped by hash slot, each group in the order given."""
    slots: dict[int, list[int]] = {}
    for index, name in enumerate(names):
        slots.setdefault(client.keyslot(name), []).append(index)
    return slots


def _next_scan(primaries: list[Any], index: int, node_cursor: int) -> Cursor:
    """Where a cluster SCAN goes on: the same primary, the next one, or nowhere (None)."""
    if node_cursor:
        return (index, node_cursor)
    return (index + 1, 0) if index + 1 < len(primaries) else None


def _primaries(client: Any) -> list[Any]:
    return sorted(client.get_primaries(), key=lambda node: node.name)


class ClusterSyncIO(SyncIO):
    """:class:`SyncIO` on a cluster: an MGET per slot, a MULTI/EXEC per slot, a SCAN cursor per primary."""

    @property
    def cluster(self) -> Any:
        """The process's ``valkey.cluster.ValkeyCluster``."""
        return self.connections.client

    def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET per slot (in parallel by valkey-py), in the order asked."""
        return self.cluster.mget_nonatomic(names)  # type: ignore[no-any-return]

    def _node(self, name: str) -> valkey.Valkey:
        client = self.cluster
        return client.get_valkey_connection(client.get_node_from_key(name))  # type: ignore[no-any-return]

    def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair: all or none within each slot (a MULTI/EXEC per slot, on the node that owns it)."""
        for indexes in _by_slot(self.cluster, [name for name, _ in items]).values():
            try:
                with self._node(items[indexes[0]][0]).pipeline(transaction=True) as pipe:
                    for index in indexes:
                        pipe.set(items[index][0], items[index][1], px=ms)
                    pipe.execute()  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                raise without_arguments(exc) from None

    def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of one primary; the cursor is (primary index, that primary's cursor)."""
        primaries = _primaries(self.cluster)
        index, node_cursor = cursor or (0, 0)
        node = self.cluster.get_valkey_connection(primaries[index])
        reply: Any = node.scan(cursor=node_cursor, match=match, count=count)
        return _next_scan(primaries, index, reply[0]), reply[1]

    def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC on the node that owns the key's slot."""
        with self._node(name).pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = pipe.execute()  # type: ignore[no-untyped-call]
        return int(value), int(pttl)


class ClusterAsyncIO(AsyncIO):
    """:class:`ClusterSyncIO`'s commands, awaited on the running loop."""

    @property
    def cluster(self) -> Any:
        """The running loop's ``valkey.asyncio.cluster.ValkeyCluster``."""
        return self.connections.aclient

    async def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET per slot, in the order asked: one pipeline per primary on its node client, all concurrently.

        Not valkey-py's ``mget_nonatomic``: its async pipeline fails with an AttributeError when a redirection
        makes the client reload its slot map mid-pipeline (seen while slots move). A slot answered with a
        redirection (MOVED, ASK, TRYAGAIN), or on a node that cannot be reached, is asked again through the cluster
        client, which follows redirections and reloads its slot map.
        """
        client = self.cluster
        await client.initialize()
        by_node: dict[tuple[str, int], list[list[int]]] = {}
        for indexes in _by_slot(client, names).values():
            node = client.get_node_from_key(names[indexes[0]])
            by_node.setdefault((node.host, node.port), []).append(indexes)

        async def on_node(address: tuple[str, int], groups: list[list[int]]) -> list[Any]:
            try:
                async with self.connections.node_aclient(*address).pipeline(transaction=False) as pipe:
                    for indexes in groups:
                        pipe.mget([names[i] for i in indexes])
                    return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]
            except (ValkeyConnectionError, ValkeyTimeoutError, OSError) as exc:
                return [exc] * len(groups)

        replies = await asyncio.gather(*(on_node(address, groups) for address, groups in by_node.items()))
        values: list[bytes | None] = [None] * len(names)
        for groups, node_replies in zip(by_node.values(), replies, strict=True):
            for indexes, reply in zip(groups, node_replies, strict=True):
                if isinstance(reply, Exception):
                    if isinstance(reply, ResponseError) and _redirection(reply) is None:
                        raise reply  # not a redirection: the same answer through the cluster client
                    reply = await client.execute_command("MGET", *(names[i] for i in indexes))
                for index, value in zip(indexes, reply, strict=True):
                    values[index] = value
        return values

    def _node(self, name: str) -> avalkey.Valkey:
        node = self.cluster.get_node_from_key(name)
        return self.connections.node_aclient(node.host, node.port)

    async def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair: all or none within each slot (a MULTI/EXEC per slot, on the node that owns it)."""
        client = self.cluster
        await client.initialize()  # the slot map, before keyslot and get_node_from_key use it
        for indexes in _by_slot(client, [name for name, _ in items]).values():
            try:
                async with self._node(items[indexes[0]][0]).pipeline(transaction=True) as pipe:
                    for index in indexes:
                        pipe.set(items[index][0], items[index][1], px=ms)
                    await pipe.execute()
            except ResponseError as exc:
                raise without_arguments(exc) from None

    async def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of one primary; the cursor is (primary index, that primary's cursor)."""
        client = self.cluster
        await client.initialize()
        primaries = _primaries(client)
        index, node_cursor = cursor or (0, 0)
        node = self.connections.node_aclient(primaries[index].host, primaries[index].port)
        reply: Any = await node.scan(cursor=node_cursor, match=match, count=count)
        return _next_scan(primaries, index, reply[0]), reply[1]

    async def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC on the node that owns the key's slot."""
        await self.cluster.initialize()
        async with self._node(name).pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = await pipe.execute()
        return int(value), int(pttl)


#: the cluster commands that route by the client's slot map
_ROUTED = ("get", "set", "mget", "set_all", "unlink", "scan_page", "incr", "pexpire", "pttl")


def _redirection(exc: BaseException) -> str | None:
    """Return MOVED, ASK or TRYAGAIN when *exc* is that answer (typed, or plain from a node client), else None."""
    if isinstance(exc, MovedError):
        return "MOVED"
    if isinstance(exc, AskError):
        return "ASK"
    if isinstance(exc, TryAgainError):
        return "TRYAGAIN"
    word = str(exc).split(" ", 1)[0]
    return word if isinstance(exc, ResponseError) and word in ("MOVED", "ASK", "TRYAGAIN") else None


def _stale(exc: BaseException) -> bool:
    return isinstance(exc, SlotNotCoveredError) or _redirection(exc) == "MOVED"


def _in_migration(exc: BaseException) -> BaseException:
    """ASK or TRYAGAIN to a transaction as TryAgainError (fail-soft serves it); any other error as it is."""
    if _redirection(exc) in ("ASK", "TRYAGAIN") and not isinstance(exc, TryAgainError):
        return TryAgainError(f"slot being migrated, a transaction cannot follow it: {exc}")  # type: ignore[no-untyped-call]
    return exc


def _reloads_slot_map(method: Callable[..., Any]) -> Callable[..., Any]:
    """Reload the slot map and try once more when it is found stale; a transaction in a migrating slot: TRYAGAIN.

    valkey-py raises SlotNotCoveredError, without asking any node, for a slot its map has no node for: a map
    loaded while slots were unassigned (CLUSTERDOWN) would refuse them for ever after they are served again. And a
    MULTI/EXEC sent to a node straight (set_many, incr) gets MOVED when the slot has moved, which valkey-py's
    cluster client never sees. ASK to a transaction (its slot is being migrated, some of its keys are gone) cannot
    be followed: it becomes TryAgainError, the server's answer to a multi-key command in a migrating slot, which
    fail-soft mode serves as a no-op.
    """

    @functools.wraps(method)
    def call(self: ClusterSyncIO, *args: Any) -> Any:
        try:
            return method(self, *args)
        except (SlotNotCoveredError, ResponseError) as exc:
            if _stale(exc):
                self.cluster.nodes_manager.initialize()
                return method(self, *args)
            raise _in_migration(exc) from None

    return call


def _areloads_slot_map(method: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`_reloads_slot_map` for :class:`ClusterAsyncIO`."""

    @functools.wraps(method)
    async def call(self: ClusterAsyncIO, *args: Any) -> Any:
        try:
            return await method(self, *args)
        except (SlotNotCoveredError, ResponseError) as exc:
            if _stale(exc):
                await self.cluster.nodes_manager.initialize()
                return await method(self, *args)
            raise _in_migration(exc) from None

    return call


for _name in _ROUTED:
    setattr(ClusterSyncIO, _name, _reloads_slot_map(getattr(ClusterSyncIO, _name)))
    setattr(ClusterAsyncIO, _name, _areloads_slot_map(getattr(ClusterAsyncIO, _name)))
