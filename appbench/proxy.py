"""A TCP proxy on loopback that delays every byte by a fixed time each way: a link with added round trip.

Built on threads, not asyncio timers: an event loop's timeouts are rounded to whole milliseconds (epoll), so a
loop cannot add less than about 1 ms each way. Per connection and direction, a reader thread stamps each chunk it
receives with its due time (arrival + delay) and queues it; a writer thread sleeps until shortly before the due
time, spins the last :data:`SPIN` seconds (``time.sleep(0)``, which lets other threads run) and sends. Chunks keep
their order, and a reader's end of stream becomes a half-close once the chunks before it are sent.

:meth:`DelayProxy.measure` says what the proxy really adds: PING round trips to the server through it and directly,
p50 of each. The proxy's own hops (two sockets, two thread hand-offs each way) add about 0.1 ms on top of the delay;
:meth:`DelayProxy.calibrate` measures that and shortens the delay by it (up to three times), so that the round trip
added is the one asked for, and returns the last measurement.
"""

from __future__ import annotations

import queue
import socket
import statistics
import threading
import time
from types import TracebackType

HOST = "127.0.0.1"
SPIN = 0.0002  # seconds before the due time at which the writer stops sleeping and spins
CHUNK = 65536
STOP_DEADLINE = 5.0  # seconds stop() waits for each thread


def _nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DelayProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``, adding ``delay`` seconds each way (a context manager)."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        if not 0 <= delay < 1:
            raise ValueError(f"delay must be in [0, 1) seconds, got {delay!r}")
        if upstream[0] not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the proxy is for loopback only, got upstream {upstream[0]!r}")
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> DelayProxy:
        self._spawn(self._accept, "accept")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"delay-proxy-{name}", daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed: stopping
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                _nodelay(sock)
            with self._lock:
                self._sockets += [client, server]
            self._pipe(client, server, "up")
            self._pipe(server, client, "down")

    def _pipe(self, src: socket.socket, dst: socket.socket, name: str) -> None:
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        self._spawn(self._read, f"{name}-read", src, chunks)
        self._spawn(self._write, f"{name}-write", dst, chunks)

    def _read(self, src: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            chunks.put((time.perf_counter() + self.delay, data))
            if not data:
                return

    def _write(self, dst: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        while True:
            due, data = chunks.get()
            left = due - time.perf_counter()
            if left > SPIN:
                time.sleep(left - SPIN)
            while time.perf_counter() < due:
                time.sleep(0)
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def stop(self) -> None:
        """Close the listener and every connection, and wait (bounded) for the threads to end."""
        self._stopping.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(STOP_DEADLINE)

    def calibrate(self, rtt: float, pings: int = 2000, rounds: int = 3) -> dict[str, float]:
        """Set the delay so that the PING round trip through the proxy is ``rtt`` seconds over the direct one.

        Measures, takes the excess over ``rtt`` off the delay (half each way, never below zero) and measures again,
        up to ``rounds`` corrections or until within 3 % of ``rtt``; returns the last measurement, the real added
        round trip.
        """
        self.delay = rtt / 2
        measured = self.measure(pings)
        for _ in range(rounds):
            excess = measured["added_p50_us"] / 1e6 - rtt
            if abs(excess) <= 0.03 * rtt:
                break
            self.delay = max(0.0, self.delay - excess / 2)
            measured = self.measure(pings)
        return measured

    def measure(self, pings: int = 2000) -> dict[str, float]:
        """PING round trips (µs, p50) to the upstream directly and through the proxy, and the difference."""
        direct = _ping_p50(self.upstream, pings)
        proxied = _ping_p50((HOST, self.port), pings)
        return {"direct_p50_us": direct, "proxied_p50_us": proxied, "added_p50_us": proxied - direct,
                "configured_us": 2 * self.delay * 1e6}


def _ping_p50(address: tuple[str, int], pings: int) -> float:
    """Return the median PING round trip in µs over one connection (RESP inline PING, +PONG reply)."""
    with socket.create_connection(address, timeout=5) as sock:
        _nodelay(sock)
        samples = []
        for _ in range(pings):
            start = time.perf_counter()
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                part = sock.recv(64)
                if not part:
                    raise ConnectionError(f"{address}: connection closed during PING")
                reply += part
            samples.append((time.perf_counter() - start) * 1e6)
            if reply != b"+PONG\r\n":
                raise ConnectionError(f"{address}: PING answered {reply!r}")
    return statistics.median(samples)
