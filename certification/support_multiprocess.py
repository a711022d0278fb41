"""Helpers of the multiprocess suite: child bodies and a runner that starts, collects and joins them.

Children are started with the ``spawn`` method (except the fork test's own child) and build their handler inside
the child from plain arguments (kind, host, port, prefix). Each child puts exactly one ``(status, index, payload)``
on a queue; :func:`run_children` collects them to a deadline, joins every child with a timeout, kills (by its own
pid) any that is still alive, and checks that each exited with code 0.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue as queue_mod
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from certification.support import build_handler, close_handler

N_PROCESSES = 4
# seconds for a whole batch of children (spawn, import, run, exit); only reached when something is wrong. Generous:
# under `tox -m matrix -p auto` on a loaded 2-core machine, four spawned interpreters importing valkey-py, redis-py
# and Emmett took over 20 s, and children that had already sent their results were killed before they could exit.
DEADLINE = 180.0

#: values both handlers write and read the same way (bools aside: RedisCache cannot read its own, see deviations)
WIRE_VALUES: list[Any] = ["text", "ünï ✓", b"\x00\xff", 0, -12, 2**64, 1.25, None, [1, [2]], {"a": (1, 2)}, {3}, ""]


def sync_client(handler: Any) -> Any:
    """The handler's synchronous client (valkey-py for ours, redis-py for the baseline)."""
    return handler.client if hasattr(handler, "client") else handler._cache


def connection_identity(handler: Any) -> tuple[int, str]:
    """The server's CLIENT INFO ``id`` and ``addr`` (the client side's ip:port) of the handler's connection."""
    info = sync_client(handler).client_info()
    return int(info["id"]), str(info["addr"])


# -- child bodies (module level: spawn imports them by name) ------------------------------------------------------


def share_values(kind: str, where: dict[str, Any], prefix: str, index: int, n: int, barrier: Any) -> dict[str, Any]:
    """Write this child's entry, wait until every child has written, read every child's entry.

    ``where``: :meth:`ServerInfo.handler_args` (host and port; on a cluster also its startup nodes).
    """
    h = build_handler(kind, prefix=prefix, **where)
    try:
        h.set(f"from-{index}", {"index": index, "pid": os.getpid()}, 60)
        barrier.wait(DEADLINE)
        return {"pid": os.getpid(), "read": {j: h.get(f"from-{j}") for j in range(n)}}
    finally:
        close_handler(h)


def count(where: dict[str, Any], prefix: str, rounds: int, barrier: Any) -> list[int]:
    """Increment one counter *rounds* times, all children starting together; return every value INCR returned."""
    h = build_handler("ValkeyCache", prefix=prefix, **where)
    try:
        barrier.wait(DEADLINE)
        return [h.incr("counter") for _ in range(rounds)]
    finally:
        close_handler(h)


def exchange(kind: str, other: str, where: dict[str, Any], prefix: str, barrier: Any) -> list[Any]:
    """Write WIRE_VALUES under ``<kind>:<i>``, wait for the other handler's child to do the same, read its entries."""
    h = build_handler(kind, prefix=prefix, **where)
    try:
        for i, value in enumerate(WIRE_VALUES):
            h.set(f"{kind}:{i}", value, 60)
        barrier.wait(DEADLINE)
        return [h.get(f"{other}:{i}") for i in range(len(WIRE_VALUES))]
    finally:
        close_handler(h)


def forked_child(handler: Any, results: Any, rounds: int) -> None:
    """In a child forked from a parent that used *handler*: use it, then report its connection and its reads."""
    try:
        identity = connection_identity(handler)
        ok = 0
        for i in range(rounds):
            handler.set(f"child-{i}", ("child", i), 60)
            ok += handler.get(f"child-{i}") == ("child", i)
        handler.set("child-pid", os.getpid(), 60)
        gc.collect()  # run the finalizers of whatever the child dropped of its parent's connections
        results.put(("ok", identity, ok, connection_identity(handler)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        raise


# -- runner -------------------------------------------------------------------------------------------------------


def _child(target: Callable[..., Any], index: int, args: Sequence[Any], results: Any) -> None:
    try:
        payload = target(*args)
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
        raise
    results.put(("ok", index, payload))


def run_children(target: Callable[..., Any], args_list: Sequence[Sequence[Any]], deadline: float = DEADLINE
                 ) -> list[Any]:
    """Run ``target(*args)`` in one spawned child per *args*; return their results in order, or fail with theirs."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(target, i, args, results), name=f"cert-mp-{i}")
             for i, args in enumerate(args_list)]
    got: dict[int, tuple[str, Any]] = {}
    codes: list[int | None] = []
    try:
        for p in procs:
            p.start()
        end = time.monotonic() + deadline
        while len(got) < len(procs) and time.monotonic() < end:
            try:
                status, index, payload = results.get(timeout=0.2)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
                continue
            got[index] = (status, payload)
        for p in procs:
            p.join(max(0.1, end - time.monotonic()))
    finally:
        for p in procs:
            if p.pid is not None and p.is_alive():
                p.kill()
                p.join(5)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.exitcode is not None:
                p.close()
        results.close()
        results.join_thread()
    errors = {i: payload for i, (status, payload) in got.items() if status != "ok"}
    assert not errors and codes == [0] * len(procs) and len(got) == len(procs), (
        f"exit codes {codes}, results from {sorted(got)}; child errors:\n" + "\n".join(map(str, errors.values())))
    return [got[i][1] for i in range(len(procs))]
