"""The three ways a cache moves from one running server to a new one, each giving an outcome and the server's words.

A source is prepared once per id (:class:`Source`): the dataset written, every key DUMPed, SAVEd to an RDB file; each
target is a new server of its own, so cells never see each other's data. ``refused`` details quote the target's
own error text (its RESTORE error, or the warning lines of its log).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import valkey
from emmett_valkey_matrix import LocalServer, Resolved, ServerOptions, StartError
from emmett_valkey_matrix.migration import VARIANT_SETTING

from migration import dataset

SYNC_DEADLINE_S = 30.0
RDB_NAME = "dump.rdb"
#: a warning line of the server log: "<pid>:<role> <date> # <message>"
_WARNING = re.compile(r"^\d+:[A-Z] .*? # (.*)$")


@dataclass
class Source:
    """A running source server with its dataset, the dataset's DUMP payloads and its RDB file."""

    server: Any
    data: dataset.Dataset
    dumps: dict[str, bytes] = field(default_factory=dict)
    rdb: Path | None = None


def prepare(resolved: Resolved, workdir: Path) -> Source:
    """Start the source, write the dataset once, DUMP every key and SAVE the RDB file (per-source artifacts)."""
    server = resolved.start(ServerOptions(), workdir=workdir)
    try:
        data = dataset.write(server.host, server.port)
        client = server.client()
        try:
            pipe = client.pipeline(transaction=False)
            for name in data.names:
                pipe.dump(name)
            dumps = dict(zip(data.names, pipe.execute(), strict=True))
            client.save()
            # a replica's full sync starts at once (Redis 7+ waits 5 s for more replicas before a diskless sync)
            client.config_set("repl-diskless-sync-delay", 0)
            rdb = workdir / RDB_NAME
            shutil.copyfile(server.data_dir / str(client.config_get("dbfilename")["dbfilename"]), rdb)
        finally:
            client.close()
    except BaseException:
        server.stop()
        raise
    return Source(server, data, dumps, rdb)


def target_options(variant: str | None, *extra: tuple[str, str]) -> ServerOptions:
    """Target options: the variant's ``rdb-version-check`` (strict or relaxed) where the target has one."""
    setting = ((VARIANT_SETTING, variant),) if variant else ()
    return ServerOptions(extra=(*setting, *extra))


def warnings(log: str) -> list[str]:
    """The warning lines of a server log (its own words), without the pid/date prefix."""
    return [m.group(1).strip() for line in log.splitlines() if (m := _WARNING.match(line))]


def dump_restore(source: Source, resolved: Resolved, variant: str | None, workdir: Path) -> tuple[str, list[str]]:
    """RESTORE every DUMP payload on a new target with the TTL the key has left; returns (outcome, details)."""
    with resolved.start(target_options(variant), workdir=workdir) as target:
        client = target.client()
        errors: dict[str, str] = {}
        try:
            now_ms = time.time() * 1000
            for name, payload in source.dumps.items():
                ttl = int(source.data.expire_at_ms[name[len(source.data.prefix):]] - now_ms)
                try:
                    client.restore(name, max(ttl, 1), payload)
                except valkey.ResponseError as exc:
                    errors[name] = str(exc)
        finally:
            client.close()
        if len(errors) == len(source.dumps):
            return "refused", sorted(set(errors.values()))
        return _judged(target, source, [f"RESTORE refused for {k}: {v}" for k, v in errors.items()])


def rdb_file(source: Source, resolved: Resolved, variant: str | None, workdir: Path) -> tuple[str, list[str]]:
    """Start a new target with ``--dir``/``--dbfilename`` on a copy of the source's RDB file."""
    assert source.rdb is not None
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.rdb, workdir / "data" / RDB_NAME)
    try:
        target = resolved.start(target_options(variant, ("dbfilename", RDB_NAME)), workdir=workdir)
    except StartError:
        log = (workdir / "server.log").read_text(errors="replace")
        return "refused", [w for w in warnings(log) if _is_failure(w)] or log.strip().splitlines()[-1:]
    with target:
        return _judged(target, source, [])


def replication(source: Source, resolved: Resolved, variant: str | None, workdir: Path) -> tuple[str, list[str]]:
    """Make a new target a replica of the source, wait for the sync (polling INFO), then promote it."""
    with resolved.start(target_options(variant), workdir=workdir) as target:
        log_start = target.log_path.stat().st_size
        client = target.client()
        try:
            client.execute_command("REPLICAOF", source.server.host, source.server.port)
            synced, why = _wait_for_sync(client, target, log_start, len(source.dumps))
            if target.exited():
                return "refused", why
            client.execute_command("REPLICAOF", "NO", "ONE")
        finally:
            client.close()
        if not synced:
            return "refused", why
        return _judged(target, source, [])


def _new_warnings(target: LocalServer, offset: int) -> list[str]:
    with target.log_path.open("rb") as fh:
        fh.seek(offset)
        return warnings(fh.read().decode(errors="replace"))


def _wait_for_sync(client: valkey.Valkey, target: LocalServer, offset: int, keys: int) -> tuple[bool, list[str]]:
    """Poll INFO replication until the link is up with every key loaded, the target fails, or the deadline passes."""
    deadline = time.monotonic() + SYNC_DEADLINE_S
    while time.monotonic() < deadline:
        if target.exited():
            return False, _new_warnings(target, offset) or ["the target exited during the sync"]
        try:
            info = client.info("replication")
            if (info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")
                    and client.dbsize() >= keys):
                return True, []
        except (valkey.ConnectionError, valkey.ResponseError):
            pass  # loading, or going down: the next poll (or exited()) says which
        failed = [w for w in _new_warnings(target, offset) if _is_failure(w)]
        if failed:
            return False, _unique(failed)
        time.sleep(0.05)
    return False, [f"no sync within {SYNC_DEADLINE_S:g} s", *_new_warnings(target, offset)]


def _is_failure(warning: str) -> bool:
    return any(word in warning for word in ("Can't", "Failed", "failed", "Bad", "error", "Error", "refus", "Wrong",
                                             "wrong"))


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _judged(target: Any, source: Source, details: list[str]) -> tuple[str, list[str]]:
    lost = details + dataset.check(target.host, target.port, source.data)
    return ("partial" if lost else "works"), lost
