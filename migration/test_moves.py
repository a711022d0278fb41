"""The guide's own code (docs/migration.md) on a real pair: the gradual move, the warm start and the rollback."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey_matrix import load_catalogue
from emmett_valkey_matrix.migration import has_variant_setting

from migration import dataset, moves

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "migration.md"
OLD, NEW = "redis74", "valkey91"  # the move the guide's examples describe: a Redis 7.4 cache to Valkey 9.1


def test_variant_setting_is_where_the_catalogue_says(grid: Any) -> None:
    """CONFIG GET rdb-version-check answers on exactly the servers has_variant_setting names (Valkey 8.1 and later)."""
    catalogue = load_catalogue()
    assert grid.has_setting == {sid: has_variant_setting(catalogue[sid].product, catalogue[sid].line)
                                for sid in grid.has_setting}


@pytest.fixture
def pair(grid: Any, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    missing = [sid for sid in (OLD, NEW) if sid not in grid.resolved]
    if missing:
        pytest.skip(f"{', '.join(missing)} does not resolve here: {grid.not_available.get(missing[0], '')}")
    with (grid.resolved[OLD].start(workdir=tmp_path / OLD) as old,
          grid.resolved[NEW].start(workdir=tmp_path / NEW) as new):
        yield old, new


def guide(old: Any, new: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run every python block of the guide, in order, with the old and new servers of the pair."""
    monkeypatch.setenv("OLD_CACHE_URL", f"redis://{old.host}:{old.port}/0")
    monkeypatch.setenv("NEW_CACHE_URL", f"valkey://{new.host}:{new.port}/0")
    monkeypatch.setenv("VALKEY_URL", f"valkey://{new.host}:{new.port}/0")  # the guide's fallback, read eagerly
    namespace: dict[str, Any] = {"__name__": "guide"}
    for block in re.findall(r"^```python\n(.*?)^```", GUIDE.read_text("utf-8"), re.S | re.M):
        exec(compile(block, str(GUIDE), "exec"), namespace)  # the guide's code, as a reader runs it
    return namespace


def _names(server: Any) -> set[bytes]:
    client = server.client()
    try:
        return set(client.scan_iter(match="app:*"))
    finally:
        client.close()


def test_gradual_move_routes_keys_to_their_server(pair: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """With both handlers in one Cache, a moved key family lives on the new server only, the rest on the old one."""
    old, new = pair
    ns = guide(old, new, monkeypatch)
    route = ns["handler_for"]
    route("fragments:nav").set("fragments:nav", [1, True, "x"], 600)
    route("users:7").set("users:7", 7, 600)
    # the guide's rollback block copied the new server's keys back: the old one holds everything written so far
    assert _names(new) == {b"app:pages:home", b"app:fragments:nav"}
    assert _names(old) == {b"app:sessions:42", b"app:users:7", b"app:pages:home"}
    assert route("fragments:nav").get("fragments:nav") == [1, True, "x"]
    assert ns["cache"].valkey.get("users:7") is None  # not moved yet: the new server does not have it
    # moving a family: the new handler reads what the old one wrote, in the same format
    ns["MOVED"] = (*ns["MOVED"], "sessions:")
    assert ns["warm_get"]("sessions:42") == {"user": 42}
    assert b"app:sessions:42" in _names(new)
    ns["cache"].valkey.close()
    ns["cache"].redis._cache.close()


def test_warm_start_fills_the_new_server_as_it_is_read(pair: tuple[Any, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """warm_get reads every entry of a Redis 7.4 cache through an empty Valkey 9.1 and leaves it there with its TTL."""
    old, new = pair
    ns = guide(old, new, monkeypatch)
    data = dataset.write(old.host, old.port, ns["PREFIX"] + "warm:")  # under the guide's cache prefix
    values = {key: ns["warm_get"]("warm:" + key) for key in data.values}
    assert values == data.values
    assert [type(v) for v in values.values()] == [type(v) for v in data.values.values()]
    assert dataset.check(new.host, new.port, data) == []  # every entry now on the new server, TTLs kept
    ns["cache"].valkey.close()
    ns["cache"].redis._cache.close()


def test_rollback_copies_back_where_dump_is_refused(pair: tuple[Any, Any], grid: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Valkey 9.1 to Redis 7.4: RESTORE refuses the DUMP payloads, the guide's copy_keys moves every entry back."""
    old, new = pair
    data = dataset.write(new.host, new.port)
    ns = guide(old, new, monkeypatch)
    source = moves.Source(new, data)
    client = new.client()
    try:
        source.dumps = {name: client.dump(name) for name in data.names}
    finally:
        client.close()
    outcome, details = moves.dump_restore(source, grid.resolved[OLD], None, tmp_path / "dump-target")
    assert (outcome, details) == ("refused", ["DUMP payload version or checksum are wrong"])
    src, dst = valkey.Valkey(host=new.host, port=new.port), valkey.Valkey(host=old.host, port=old.port)
    try:
        assert ns["copy_keys"](src, dst, dataset.PREFIX) == len(data.values)
    finally:
        src.close()
        dst.close()
    assert dataset.check(old.host, old.port, data) == []
    ns["cache"].valkey.close()
    ns["cache"].redis._cache.close()
    assert os.environ["OLD_CACHE_URL"].endswith(f":{old.port}/0")


def test_check_names_what_a_move_lost(grid: Any, tmp_path: Path) -> None:
    """The judge of a move names a missing entry, a changed value, a lost TTL and a counter that no longer counts."""
    sid = next(iter(grid.resolved))
    with grid.resolved[sid].start(workdir=tmp_path / sid) as server:
        data = dataset.write(server.host, server.port)
        client = server.client()
        try:
            client.delete(data.prefix + "vc:str")
            client.set(data.prefix + "rc:bytes", b"!" + pickle.dumps(b"other"), keepttl=True)
            client.persist(data.prefix + "vc:int")
            client.set(data.prefix + "vc:hits", b"!" + pickle.dumps("x"), keepttl=True)
        finally:
            client.close()
        lost = dataset.check(server.host, server.port, data)
    assert lost[0] == f"1 of {len(data.values)} entries missing (vc:str)"
    assert lost[1] == "read back different: rc:bytes, vc:hits"
    assert lost[2].startswith(f"TTL not kept within {dataset.TTL_TOLERANCE_S:g} s: vc:int inf s vs ")
    assert len(lost) == 4
    assert lost[3].startswith("counter vc:hits no longer counts: ")
    assert lost[3].endswith("value is not an integer or out of range")
