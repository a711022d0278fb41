"""Tools of the async suite: a loopback proxy that delays (or holds) the server's replies, and an event-loop lag meter.

``DelayProxy`` runs on its own thread with its own event loop, so a client that blocks the test's loop cannot stall
it: every chunk the server sends is held for ``delay`` seconds (chunks keep their order and are not serialized behind
each other), while the client's bytes pass at once. With :meth:`DelayProxy.hold` a chunk is then also held at a gate
until the test releases it, so that "the reply has not arrived yet" is a fact the test controls, not a race it hopes
to win. ``LoopLag`` ticks on the test's loop and keeps the longest gap between ticks beyond the tick interval: what a
blocking call inside a coroutine costs every other task.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType
from typing import Any

_STOP: Any = object()


class DelayProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream``, holding every server->client chunk for ``delay`` seconds."""

    def __init__(self, upstream_host: str, upstream_port: int, delay: float) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()
        self._replies = 0
        self._accepted = 0
        self._holding = False  # the gate: while True, every chunk waits for release() (or the fallback)
        self._fallback: float | None = None
        self._held = 0
        self._released = 0
        self._forced = 0
        self._waiters: list[asyncio.Future[bool]] = []  # the held chunks' gates (the proxy loop's only)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)

    @property
    def replies(self) -> int:
        """How many chunks the server has sent so far (counted when the proxy receives them, before the delay)."""
        with self._lock:
            return self._replies

    @property
    def accepted(self) -> int:
        """How many client connections the proxy has accepted."""
        with self._lock:
            return self._accepted

    @property
    def held(self) -> int:
        """How many chunks are waiting at the gate right now."""
        with self._lock:
            return self._held

    @property
    def released(self) -> int:
        """How many chunks passed the gate because :meth:`release` let them."""
        with self._lock:
            return self._released

    @property
    def forced(self) -> int:
        """How many chunks passed the gate because nobody released them within the fallback."""
        with self._lock:
            return self._forced

    def hold(self, fallback: float | None = None) -> None:
        """Close the gate: from now on every chunk (after its delay) waits until :meth:`release` or :meth:`open`.

        With *fallback* seconds, a chunk nobody released by then passes anyway, is counted in :attr:`forced`, and the
        gate opens for good: a client that cannot run the code that would release it (it blocks the loop that code
        runs on) still gets its replies, and the test sees that it did not.
        """
        with self._lock:
            self._holding, self._fallback = True, fallback

    def release(self) -> None:
        """Let the chunks held at the gate right now pass (the gate stays closed for the next ones)."""
        self._call(lambda: self._wake(True))

    def open(self) -> None:
        """Open the gate for good, letting every held chunk pass."""
        with self._lock:
            self._holding = False
        self._call(lambda: self._wake(False))

    def _call(self, fn: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(fn)

    def _wake(self, released: bool) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(released)

    def start(self, timeout: float = 5.0) -> DelayProxy:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the delay proxy did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the delay proxy failed to start: {self._error!r}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the delay proxy did not stop in time")

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy's own thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start(); the thread must not die silently
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        writers: list[asyncio.StreamWriter] = []

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            writers.append(client_w)
            with self._lock:
                self._accepted += 1
            try:
                server_r, server_w = await asyncio.open_connection(*self.upstream)
            except OSError:
                client_w.close()
                return
            writers.append(server_w)
            held: asyncio.Queue[Any] = asyncio.Queue()
            hold = asyncio.create_task(self._hold(server_r, held))
            pumps = [
                asyncio.create_task(self._forward(client_r, server_w)),
                asyncio.create_task(self._release(held, client_w)),
            ]
            try:
                # the client hung up (nobody to deliver to), or every held chunk and the server's EOF were delivered
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                pumps.append(hold)
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                for w in (client_w, server_w):
                    w.close()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await handle(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(on_connect, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in writers:
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
            await server.wait_closed()

    @staticmethod
    async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    async def _hold(self, reader: asyncio.StreamReader, held: asyncio.Queue[Any]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(65536):
                with self._lock:
                    self._replies += 1
                held.put_nowait((loop.time() + self.delay, chunk))
        except OSError:
            pass
        held.put_nowait((loop.time() + self.delay, _STOP))

    async def _release(self, held: asyncio.Queue[Any], writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while True:
                due, chunk = await held.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if chunk is _STOP:
                    return
                await self._gate(loop)
                writer.write(chunk)
                await writer.drain()

    async def _gate(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if not self._holding:
                return
            fallback = self._fallback
            self._held += 1
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        try:
            released = await asyncio.wait_for(asyncio.shield(waiter), fallback)
        except asyncio.TimeoutError:
            with self._lock:
                self._forced += 1
                self._holding = False
            self._wake(False)
        else:
            if released:
                with self._lock:
                    self._released += 1
        finally:
            with self._lock:
                self._held -= 1


class LoopLag:
    """Async context manager: ticks every ``interval`` seconds on the running loop and records the worst lag."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.max_lag = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self, first: asyncio.Event) -> None:
        last = time.perf_counter()
        first.set()
        while True:
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self.max_lag = max(self.max_lag, now - last - self.interval)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> LoopLag:
        first = asyncio.Event()
        self._task = asyncio.create_task(self._tick(first))
        await first.wait()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        await asyncio.sleep(self.interval * 2)  # one more tick: a block that ended the measured code is counted too
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def wait_until(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll *predicate* on the running loop until it is true, failing after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)
