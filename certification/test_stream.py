"""Stream suite: the multiplexed connection of ValkeyCache's async path, against a real server.

Each test holds the server with ``CLIENT PAUSE ... WRITE`` (a paused client's commands wait, in order, until
``CLIENT UNPAUSE``) when it needs commands to be in flight: what it asserts is then a state the server cannot change,
not a race.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
import valkey
import valkey.asyncio as avalkey
from emmett_valkey import ValkeyCache
from emmett_valkey.stream import Stream

from certification.support import close_handler, make_handler
from certification.support_async import wait_until

pytestmark = [pytest.mark.async_, pytest.mark.standalone_only("the stream is the standalone topology's async path")]


def name_of(key_prefix: str) -> str:
    """A CLIENT SETNAME name unique to the test."""
    return "stream-" + key_prefix.replace(":", "-").strip("-")


@pytest.fixture
def h(server: Any, key_prefix: str) -> Iterator[ValkeyCache]:
    """A ValkeyCache named after the test, closed after it."""
    handler = make_handler("ValkeyCache", server, key_prefix, client_name=name_of(key_prefix))
    yield handler
    close_handler(handler)


@pytest.fixture
def paused(raw: valkey.Valkey) -> Iterator[Any]:
    """A function that pauses the server's write commands (for 30 s at most); unpaused after the test."""
    yield lambda: raw.execute_command("CLIENT", "PAUSE", 30000, "WRITE")
    raw.execute_command("CLIENT", "UNPAUSE")


def named(raw: valkey.Valkey, name: str) -> list[dict[str, Any]]:
    """The server's connections named *name*."""
    return [c for c in raw.client_list() if c.get("name") == name]


def test_one_write_per_iteration(h: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """50 coroutines started in one loop iteration send their commands in one write, on one connection."""
    assert h.set_many({f"k{i}": i for i in range(50)})
    h.close()  # the synchronous connections: only the loop's are counted
    deadline = time.monotonic() + 5
    while named(raw, name_of(key_prefix)) and time.monotonic() < deadline:
        time.sleep(0.005)

    async def main() -> tuple[int, list[Any], int]:
        await h.aset("warm", 0)
        stream = h.connections.astream
        before = stream.writes
        got = await asyncio.gather(*(h.aget(f"k{i}") for i in range(50)))
        return stream.writes - before, got, len(named(raw, name_of(key_prefix)))

    writes, got, connections = asyncio.run(main())
    assert got == list(range(50))
    assert (writes, connections) == (1, 1)


def test_replies_in_order_under_concurrency(h: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """300 tasks setting then reading their own distinct values each get their own value back."""

    async def one(i: int) -> Any:
        await h.aset(f"k{i}", {"i": i, "s": "x" * (i % 7)})
        await asyncio.sleep(0)
        return await h.aget(f"k{i}")

    async def main() -> list[Any]:
        return await asyncio.gather(*(one(i) for i in range(300)))

    assert asyncio.run(main()) == [{"i": i, "s": "x" * (i % 7)} for i in range(300)]
    assert len(raw.keys(key_prefix + "k*")) == 300


def test_cancelled_caller_leaves_the_stream_in_step(h: ValkeyCache, raw: valkey.Valkey, paused: Any,
                                                    key_prefix: str) -> None:
    """A caller cancelled while its command is on the wire has its reply dropped: the next callers get theirs."""
    raw.set(key_prefix + "a", b"A")
    raw.set(key_prefix + "b", b"B")

    async def main() -> tuple[list[Any], int, int]:
        stream = h.connections.astream
        conn_id = await stream.call("CLIENT", "ID")
        paused()
        writes = stream.writes
        doomed = asyncio.create_task(stream.call("SET", key_prefix + "c", b"C"))
        await wait_until(lambda: stream.writes > writes, what="the SET written")
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        later = asyncio.gather(stream.call("GET", key_prefix + "a"), stream.call("GET", key_prefix + "b"))
        await wait_until(lambda: stream.in_flight == 3, what="the GETs in flight behind the cancelled SET")
        raw.execute_command("CLIENT", "UNPAUSE")
        return [*await later, doomed.cancelled()], conn_id, await stream.call("CLIENT", "ID")

    got, before, after = asyncio.run(main())
    assert got == [b"A", b"B", True]
    assert before == after, "the connection was replaced"
    assert raw.get(key_prefix + "c") == b"C", "the cancelled SET was not sent"


def test_killed_connection_fails_pending_then_reconnects(server: Any, raw: valkey.Valkey, paused: Any,
                                                         key_prefix: str) -> None:
    """CLIENT KILL fails every pending command with ConnectionError; the next command connects again."""
    h = make_handler("ValkeyCache", server, key_prefix, client_name=name_of(key_prefix), retries=0)

    async def main() -> tuple[list[Any], int, int, Any]:
        stream = h.connections.astream
        conn_id = await stream.call("CLIENT", "ID")
        paused()
        pending = asyncio.gather(*(h.aset(f"p{i}", i) for i in range(5)), return_exceptions=True)
        await wait_until(lambda: stream.in_flight == 5 and not stream._buffer, what="5 SETs on the wire")
        raw.execute_command("CLIENT", "KILL", "ID", conn_id)
        failed = await pending
        raw.execute_command("CLIENT", "UNPAUSE")
        await h.aset("after", "ok")
        return failed, conn_id, await stream.call("CLIENT", "ID"), await h.aget("after")

    try:
        failed, before, after, value = asyncio.run(main())
    finally:
        close_handler(h)
    assert [type(e) for e in failed] == [valkey.exceptions.ConnectionError] * 5
    assert str(failed[0]) == "Connection closed by server."
    assert before != after and value == "ok"


def test_timeout_keeps_the_stream_in_step(server: Any, raw: valkey.Valkey, paused: Any, key_prefix: str) -> None:
    """A command past socket_timeout raises TimeoutError; its late reply is dropped and the next ones match."""
    h = make_handler("ValkeyCache", server, key_prefix, socket_timeout=0.3)
    raw.set(key_prefix + "a", b"A")

    async def main() -> tuple[str, Any, int, int]:
        stream = h.connections.astream
        conn_id = await stream.call("CLIENT", "ID")
        paused()
        with pytest.raises(valkey.exceptions.TimeoutError) as info:
            await h.aset("slow", 1)
        raw.execute_command("CLIENT", "UNPAUSE")
        return str(info.value), await stream.call("GET", key_prefix + "a"), conn_id, await stream.call("CLIENT", "ID")

    try:
        message, got, before, after = asyncio.run(main())
    finally:
        close_handler(h)
    assert message == f"Timeout reading from {server.host}:{server.port}"
    assert (got, before) == (b"A", after)


def test_back_pressure_bounds_commands_in_flight(server: Any, raw: valkey.Valkey, paused: Any,
                                                 key_prefix: str) -> None:
    """With room for 4 commands, 10 callers put 4 on the wire and wait; all complete once the server answers."""

    async def main() -> tuple[list[Any], int, int, int]:
        stream = Stream(lambda: avalkey.Connection(host=server.host, port=server.port), timeout=30, limit=4)
        await stream.call("PING")
        paused()
        calls = asyncio.gather(*(stream.call("SET", f"{key_prefix}b{i}", i) for i in range(10)))
        most = 0

        def parked() -> bool:
            nonlocal most
            most = max(most, stream.in_flight)
            return stream.in_flight == 4 and stream.waiting == 6

        await wait_until(parked, what="4 commands in flight and 6 callers waiting")
        in_flight, waiting = stream.in_flight, stream.waiting
        raw.execute_command("CLIENT", "UNPAUSE")
        got = await calls
        await stream.aclose()
        return got, max(most, in_flight), waiting, stream.writes

    got, most, waiting, writes = asyncio.run(main())
    assert got == [b"OK"] * 10
    assert (most, waiting) == (4, 6)
    assert writes >= 3, "10 commands with room for 4 need at least 3 writes"
    assert [raw.get(f"{key_prefix}b{i}") for i in range(10)] == [str(i).encode() for i in range(10)]


def test_error_replies_raise_valkey_py_classes(h: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """An error reply on the stream raises the exception valkey.asyncio raises, with the same message."""
    raw.rpush(key_prefix + "list", b"x")

    async def main() -> tuple[BaseException, BaseException]:
        ours = await asyncio.gather(h.connections.astream.call("GET", key_prefix + "list"), return_exceptions=True)
        theirs = avalkey.Valkey(host=h.connections.settings.connection["host"],
                                port=h.connections.settings.connection["port"])
        try:
            peer = await asyncio.gather(theirs.get(key_prefix + "list"), return_exceptions=True)
        finally:
            await theirs.aclose()
        return ours[0], peer[0]

    ours, theirs = asyncio.run(main())
    assert isinstance(ours, valkey.exceptions.ResponseError)
    assert (type(ours), str(ours)) == (type(theirs), str(theirs))


def _child_roundtrip(h: ValkeyCache, parent_id: int) -> None:
    async def main() -> tuple[Any, int]:
        await h.aset("child", "from-child")
        return await h.aget("child"), await h.connections.astream.call("CLIENT", "ID")

    got, conn_id = asyncio.run(main())
    raise SystemExit(0 if got == "from-child" and conn_id != parent_id else 3)


def test_forked_child_opens_its_own_stream(h: ValkeyCache) -> None:
    """A child forked after the parent used its stream opens its own connection; the parent's keeps working."""
    loop = asyncio.new_event_loop()
    try:
        async def parent_use() -> int:
            await h.aset("parent", 1)
            return int(await h.connections.astream.call("CLIENT", "ID"))

        parent_id = loop.run_until_complete(parent_use())
        child = multiprocessing.get_context("fork").Process(target=_child_roundtrip, args=(h, parent_id))
        child.start()
        child.join(30)
        assert child.exitcode == 0, f"the child failed (exit code {child.exitcode})"

        async def parent_again() -> tuple[Any, Any, int]:
            return (await h.aget("parent"), await h.aget("child"),
                    int(await h.connections.astream.call("CLIENT", "ID")))

        assert loop.run_until_complete(parent_again()) == (1, "from-child", parent_id)
        loop.run_until_complete(h.aclose())
    finally:
        loop.close()
