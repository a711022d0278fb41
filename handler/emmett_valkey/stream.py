"""One multiplexed connection per event loop and server: implicit pipelining, as aioredis 1.x and GLIDE do it.

A :class:`Stream` carries the commands of every coroutine of one event loop on one connection. A command is packed
into a buffer and its future joins a FIFO; the buffer leaves in one ``write`` at the end of the loop iteration (a
``call_soon`` callback), so the commands of coroutines that ran in the same iteration share a write. The transport
feeds every byte read to one ``libvalkey.Reader``, whose replies resolve the FIFO in order. Replies are read and
matched even for callers that gave up (cancelled, timed out), so the stream never loses its place.

The connection is opened by valkey-py's own async connection class (the same TCP or TLS connect, AUTH, HELLO,
CLIENT SETNAME, SELECT, with the same errors as a pooled connection), whose transport the stream then takes over.
Error replies become the same exceptions as valkey-py's (its parser's ``parse_error``). A lost connection fails
every pending command with ``valkey.exceptions.ConnectionError``; the next command connects again. At most
``limit`` commands are in flight: the next caller waits for a reply to free a place.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import libvalkey
from valkey._parsers.base import BaseParser
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import InvalidResponse
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

#: commands in flight on one stream before callers wait for replies
LIMIT = 1024
CLOSED = "Connection closed by server."
_NOT_ENOUGH = object()
_Pending = tuple["asyncio.Future[Any]", float]


def pack(args: Sequence[str | bytes | int]) -> bytes:
    """One command in RESP: an array of bulk strings (``str`` as UTF-8, ``int`` in decimal)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Stream(asyncio.Protocol):
    """Commands of one event loop, pipelined on one connection to one server (see the module docstring)."""

    def __init__(self, connect: Callable[[], Any], timeout: float | None, retries: int = 0,
                 backoff: Any = None, limit: int = LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"a stream needs room for at least one command in flight, not {limit}")
        self._connect = connect  # returns a valkey.asyncio Connection, not yet connected
        self.timeout, self.retries, self.backoff, self.limit = timeout, retries, backoff, limit
        self.loop = asyncio.get_running_loop()
        self.writes = 0  # how many writes left for the server (one per loop iteration with commands)
        self.address = "?"
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._pending: deque[_Pending] = deque()
        self._buffer: list[bytes] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._reader: Any = None
        self._writer: Any = None
        self.closed = False

    @property
    def in_flight(self) -> int:
        """Commands written or buffered whose reply has not been read yet."""
        return len(self._pending)

    @property
    def waiting(self) -> int:
        """Callers waiting for a place in flight."""
        return len(self._waiters)

    # -- callers -----------------------------------------------------------------------------------------------

    async def call(self, *args: str | bytes | int) -> Any:
        """Send one command and return its reply (an error reply raised as valkey-py's exception)."""
        return (await self.pipeline((args,)))[0]

    async def pipeline(self, commands: Sequence[Sequence[str | bytes | int]]) -> list[Any]:
        """Send the commands back to back and return their replies; a lost connection is retried ``retries`` times.

        The first error reply is raised once every reply of the batch is in.
        """
        failures = 0
        while True:
            if self._transport is None or len(self._pending) + len(commands) > self.limit:
                await self._ready(len(commands))
            futures = [self._send(c) for c in commands]
            try:
                replies = [await f for f in futures]
            except BaseException as exc:
                for f in futures:  # the batch's other outcomes: dropped, or retrieved so that none is logged
                    if not f.done():
                        f.cancel()
                    elif not f.cancelled():
                        f.exception()
                if not isinstance(exc, ValkeyConnectionError) or failures >= self.retries:
                    raise
                failures += 1
                await asyncio.sleep(self.backoff.compute(failures) if self.backoff is not None else 0)
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies

    def _send(self, command: Sequence[str | bytes | int]) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self._pending.append((future, self.loop.time()))
        if not self._buffer:
            self.loop.call_soon(self._flush)
        self._buffer.append(pack(command))
        if self._watchdog is None and self.timeout:
            self._watchdog = self.loop.call_later(self.timeout, self._expire)
        return future

    async def _ready(self, places: int) -> None:
        """Wait for a connection and for room for *places* commands (both bounded by the timeout)."""
        if self.closed:
            raise ValkeyConnectionError("the stream is closed (its event loop's connections were closed)")
        if self._transport is None:
            if self._connecting is None:
                self._connecting = self.loop.create_task(self._open())
            connecting = self._connecting
            assert connecting is not None
            await asyncio.shield(connecting)
        while len(self._pending) + places > self.limit and self._pending:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.timeout)
            except TimeoutError:
                raise ValkeyTimeoutError(f"Timeout waiting for room on the stream to {self.address}") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if self._transport is None:
                await self._ready(places)
                return

    async def _open(self) -> None:
        try:
            conn = self._connect()
            host = getattr(conn, "host", None)  # a unix socket connection has a path instead
            self.address = f"{host}:{conn.port}" if host is not None else str(getattr(conn, "path", "?"))
            await conn.connect()  # valkey-py's connect and handshake, retried by its policy, raising its errors
            # kept: a StreamWriter closes its transport when collected, and the transport is ours now
            self._writer = conn._writer
            transport = self._writer.transport
            leftover = bytes(conn._reader._buffer) if conn._reader is not None else b""
            conn._writer = conn._reader = None  # nor must the connection close it
            self._reader = libvalkey.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error,
                                            notEnoughData=_NOT_ENOUGH)
            transport.set_protocol(self)
            self._transport = transport
            if leftover:
                self.data_received(leftover)
        finally:
            self._connecting = None

    # -- the loop's callbacks -----------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._buffer:
            data, self._buffer = b"".join(self._buffer), []
            if self._transport is None:
                self._fail(ValkeyConnectionError(CLOSED))
                return
            self.writes += 1
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        """Match every complete reply to the oldest pending command; a caller that gave up has its reply dropped."""
        reader, pending = self._reader, self._pending
        reader.feed(data)
        while True:
            reply = reader.gets()
            if reply is _NOT_ENOUGH:
                break
            if not pending:
                self._abort(ValkeyConnectionError(f"Reply from {self.address} to no command: {reply!r}"))
                return
            future = pending.popleft()[0]
            if not future.done():
                future.set_result(reply)
        while self._waiters and len(pending) < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every pending command: the next one connects again."""
        reason = CLOSED if exc is None else f"Error while reading from {self.address} : {exc}"
        self._transport = None
        self._fail(ValkeyConnectionError(reason))

    def _expire(self) -> None:
        """Fail the commands older than the timeout (their replies, if they come, are dropped)."""
        self._watchdog = None
        now, timeout = self.loop.time(), self.timeout or 0
        for future, sent in self._pending:
            if future.done():
                continue
            if sent + timeout > now:
                self._watchdog = self.loop.call_at(sent + timeout, self._expire)
                break
            future.set_exception(ValkeyTimeoutError(f"Timeout reading from {self.address}"))

    def _fail(self, exc: Exception) -> None:
        pending, self._pending, self._buffer = self._pending, deque(), []
        for future, _ in pending:
            if not future.done():
                future.set_exception(exc)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _abort(self, exc: Exception) -> None:
        transport, self._transport = self._transport, None
        self._fail(exc)
        if transport is not None:
            transport.abort()

    def kill(self) -> None:
        """Drop the connection at once, failing what is pending (the next command connects again)."""
        self._abort(ValkeyConnectionError(CLOSED))

    async def aclose(self) -> None:
        """Close the connection; pending commands fail and no command is accepted after."""
        self.closed = True
        transport, self._transport = self._transport, None
        self._fail(ValkeyConnectionError("the stream was closed"))
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)  # let the transport's close callback run on this loop
