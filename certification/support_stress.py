"""Worker bodies for the stress and pattern_clear suites, importable by ``spawn`` children (no pytest here).

Every value the stress workers write carries a SHA-256 over its key, writer, sequence number and payload, so any
read that returns a torn, misrouted or corrupted entry is caught where it happens.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

SHARED_SLOTS = 32  # shared keys k:0 .. k:31, written, read and pattern-cleared by every worker
COUNTER = "ctr"  # one counter every worker increments


def checked_value(key: str, writer: str, seq: int, rnd: random.Random) -> dict[str, Any]:
    """A value that proves where it came from: payload plus a SHA-256 of key, writer, sequence and payload."""
    payload = rnd.randbytes(rnd.randint(0, 600))
    return {"key": key, "writer": writer, "seq": seq, "payload": payload, "sha256": _digest(key, writer, seq, payload)}


def _digest(key: str, writer: str, seq: int, payload: bytes) -> str:
    return hashlib.sha256(f"{key}\x00{writer}\x00{seq}\x00".encode() + payload).hexdigest()


def verify(key: str, value: Any) -> str | None:
    """None if *value* is a miss or an intact value written for *key*; else what is wrong with it."""
    if value is None:
        return None
    try:
        ok = value["key"] == key and value["sha256"] == _digest(key, value["writer"], value["seq"], value["payload"])
    except (TypeError, KeyError) as exc:
        return f"{key}: not a checked value ({exc!r}): {value!r:.200}"
    return None if ok else f"{key}: checksum or key mismatch: {value!r:.200}"


@dataclass
class WorkerReport:
    """What one worker did: counts to check against the server, and every error and corruption it saw."""

    writer: str
    kind: str
    ops: int = 0
    increments: int = 0  # sum of the deltas this worker's incr() calls added to COUNTER
    own_keys: int = 0  # own:<writer>:0 .. own:<writer>:<own_keys - 1>, written once and never cleared
    errors: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)


class Rounds:
    """Lockstep for a group of worker threads: one operation each per round, a round begins when all have ended theirs.

    A bounded pool is not fair: a thread that has just put a connection back can take it again before a waiting
    thread wakes up. Running free, a worker can do that over and over, and on a busy machine (the waiter scheduled
    late each time) leave another waiting longer than ``pool_timeout``: "No connection available", an error that
    says how the machine was loaded, not what the handler does. In lockstep a worker that has done its operation
    waits for the round instead, so every waiter of a round is served by the connections the others give back.

    The rounds end after the workers' *ops*, or at the first round that begins more than *seconds* after the first
    did: decided once for all of them, by the last worker to arrive.
    """

    def __init__(self, parties: int, seconds: float, timeout: float = 60.0) -> None:
        self.seconds, self.timeout = seconds, timeout
        self.deadline: float | None = None
        self.over = False
        self.barrier = threading.Barrier(parties, action=self._begin)

    def _begin(self) -> None:
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.seconds
        elif now > self.deadline:
            self.over = True

    def next(self) -> bool:
        """Wait until every worker has ended the round; False once the workload is over.

        Raises ``threading.BrokenBarrierError`` if a worker has not ended its round within *timeout* seconds.
        """
        self.barrier.wait(timeout=self.timeout)
        return not self.over


def work(cache: Any, writer: str, kind: str, ops: int, seconds: float, rounds: Rounds | None) -> WorkerReport:
    """Run at most *ops* mixed operations for at most *seconds* on *cache*; never raises, reports instead.

    With *rounds*, one operation per round (which also decides when the time is up), else free running.
    ValkeyCache workers get, set, get_many, get_or_set, incr and clear a pattern; RedisCache workers (the
    baseline) only get, set, get_or_set and clear a single key, the operations it has.
    """
    rnd = random.Random(writer)
    report = WorkerReport(writer, kind)
    ours = kind == "ValkeyCache"
    deadline = time.monotonic() + seconds
    for seq in range(ops):
        if rounds is not None:
            try:
                if not rounds.next():
                    break
            except threading.BrokenBarrierError:
                report.errors.append(f"a worker did not end its round within {rounds.timeout} s")
                break
        elif time.monotonic() > deadline:
            break
        key = f"k:{rnd.randrange(SHARED_SLOTS)}"
        roll = rnd.random()
        try:
            if roll < 0.35:
                _check(report, key, cache.get(key))
            elif roll < 0.60:
                cache.set(key, checked_value(key, writer, seq, rnd), 60)
            elif roll < 0.70:
                own = f"own:{writer}:{report.own_keys}"
                cache.set(own, checked_value(own, writer, seq, rnd), 120)
                report.own_keys += 1
            elif roll < 0.78:
                fresh = checked_value(key, writer, seq, rnd)
                _check(report, key, cache.get_or_set(key, lambda v=fresh: v, 60))  # type: ignore[misc]
            elif roll < 0.90 and ours:
                delta = rnd.randint(1, 3)
                cache.incr(COUNTER, delta, 120)
                report.increments += delta
            elif roll < 0.95 and ours:
                keys = [f"k:{rnd.randrange(SHARED_SLOTS)}" for _ in range(4)]
                for name, value in cache.get_many(keys).items():
                    _check(report, name, value)
            elif ours:
                cache.clear(f"k:{rnd.randrange(1, 4)}*")  # k:1, k:10..k:19 and so on: a pattern under the prefix
            else:
                cache.clear(key)
        except Exception as exc:  # reported, and the test fails on anything but the documented errors
            report.errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
        report.ops += 1
    return report


def _check(report: WorkerReport, key: str, value: Any) -> None:
    problem = verify(key, value)
    if problem is not None:
        report.corrupt.append(problem)


def run_threads(caches: list[tuple[Any, str, str]], ops: int, seconds: float) -> list[WorkerReport]:
    """One thread per ``(cache, writer, kind)``, in lockstep rounds; returns their reports once all have ended."""
    rounds = Rounds(len(caches), seconds)
    reports: list[WorkerReport | None] = [None] * len(caches)

    def target(i: int, cache: Any, writer: str, kind: str) -> None:
        reports[i] = work(cache, writer, kind, ops, seconds, rounds)

    threads = [threading.Thread(target=target, args=(i, *c), daemon=True) for i, c in enumerate(caches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    return [r if r is not None else WorkerReport(c[1], c[2], errors=["thread did not finish"])
            for r, c in zip(reports, caches, strict=True)]


def stress_process(where: dict[str, Any], prefix: str, process: int, threads: int, ops: int, seconds: float,
                   client_name: str, results: Any, seen: Any = None) -> None:
    """Child body: one ValkeyCache with a pool of 2 (pool_timeout 5 s) shared by *threads* workers.

    With *seen* (an event), its connections stay open after the workload until the parent has seen them (or 60 s).
    """
    from emmett_valkey import ValkeyCache

    cache = ValkeyCache(**where, prefix=prefix, max_connections=2, pool_timeout=5,
                        client_name=client_name)
    try:
        caches = [(cache, f"p{process}t{t}", "ValkeyCache") for t in range(threads)]
        results.put([vars(r) for r in run_threads(caches, ops, seconds)])
        if seen is not None:
            seen.wait(60)
    finally:
        cache.close()


def clear_writer(where: dict[str, Any], our_prefix: str, other_prefix: str, progress: Any, allowance: Any, stop: Any,
                 seconds: float) -> None:
    """Child body: write ``live:<n>`` under our prefix and ``o:<n>`` under another, 25 of each per round trip.

    ``progress`` (a shared int) is how many keys of each prefix the server has acknowledged: keys ``0 .. progress - 1``
    of both prefixes were written before it was read. The writer writes while ``progress < allowance`` (a shared int
    the test raises, a multiple of 25) and waits otherwise, so the test decides when writes happen and how many; it
    ends when ``stop`` is set, or after *seconds* (a safety net should the test die without setting it).
    """
    from emmett_valkey import ValkeyCache

    ours = ValkeyCache(**where, prefix=our_prefix)
    other = ValkeyCache(**where, prefix=other_prefix)
    deadline = time.monotonic() + seconds
    n = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            if n >= allowance.value:
                stop.wait(0.002)  # wakes at once when stopped
                continue
            batch = range(n, n + 25)
            ours.set_many({f"live:{i}": i for i in batch}, 120)
            other.set_many({f"o:{i}": i for i in batch}, 120)
            n += 25
            progress.value = n
    finally:
        ours.close()
        other.close()
