"""Two processes filling one binary cache entry at once (two envs of ``tox -m matrix -p auto``): one fill.

Neither process ever sees a half-written entry.

The processes are synchronised by events, never by sleeping: each announces when it reaches the cache's lock, and
the fill of whichever got the lock first waits (with a deadline) until the other one is at the lock too, so the
other is certainly waiting while the entry is half written.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from emmett_valkey_matrix import binary_cache

DEADLINE_S = 120.0  # generous: the machine is shared; a missed deadline fails the test, it never passes it


def _worker(me: int, root: str, at_lock: list[Any], start: Any, out: Any) -> None:
    """Run ``binary_cache.ensure`` on a fresh, shared cache root; report what it returned."""
    os.environ["EMMETT_VALKEY_CACHE"] = root
    other = at_lock[1 - me]

    class AnnouncingLock(binary_cache.FileLock):  # type: ignore[misc,name-defined]
        def acquire(self, *args: Any, **kwargs: Any) -> Any:
            at_lock[me].set()  # this process has looked the entry up, found nothing, and now waits for the lock
            return super().acquire(*args, **kwargs)

    binary_cache.FileLock = AnnouncingLock  # type: ignore[attr-defined,misc]

    def fill(dest: Path) -> dict[str, Any]:
        with open(Path(root).parent / "fills.log", "a", encoding="utf-8") as log:
            log.write(f"{me}\n")
        (dest / "part1").write_text("first half", encoding="utf-8")
        if not other.wait(DEADLINE_S):  # the other process is at the lock while this entry is half written
            raise RuntimeError("the other process never reached the lock")
        (dest / "part2").write_text("second half", encoding="utf-8")
        return {"filled_by": me}

    try:
        start.wait(DEADLINE_S)
        path, marker = binary_cache.ensure("race-entry", fill)
        out.put((me, str(path), marker, sorted(p.name for p in path.iterdir())))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        out.put((me, "error", repr(exc), []))


def test_two_processes_fill_one_entry_once(tmp_path: Path) -> None:
    """Both processes get the same complete entry; the fill ran once; no temporary directory is left."""
    ctx = multiprocessing.get_context("spawn")
    root = tmp_path / "cache"
    at_lock = [ctx.Event(), ctx.Event()]
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(me, str(root), at_lock, start, out)) for me in (0, 1)]
    for proc in procs:
        proc.start()
    try:
        results = sorted(out.get(timeout=DEADLINE_S) for _ in procs)
    finally:
        for proc in procs:
            proc.join(DEADLINE_S)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert [r[1] for r in results] == [str(root / "race-entry")] * 2, results
    fills = (tmp_path / "fills.log").read_text(encoding="utf-8").split()
    assert len(fills) == 1  # one process filled; the other waited on the lock and found the entry complete
    assert all(r[2] == {"filled_by": int(fills[0])} for r in results)
    assert all(r[3] == [binary_cache.MARKER, "part1", "part2"] for r in results)
    assert all(event.is_set() for event in at_lock)  # both really reached the lock while the entry was missing
    assert sorted(p.name for p in root.iterdir()) == ["race-entry", "race-entry.lock"]
