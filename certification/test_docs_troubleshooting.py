"""docs/troubleshooting.md quotes what users see: each failure is provoked here, on a real server, and compared.

Each section of the page quotes, in ``text`` blocks, the last traceback line of what the handler raises and the
warning it logs in fail-soft mode; ``<...>`` stands for what varies (host, port, user...). A test provokes the
section's failure and checks both ways: every line raised or logged is quoted in the section, and every quoted line
was raised or logged. A block annotated ``<!-- servers: id ... -->`` is the wording of those servers only (on them it
replaces the section's other blocks); one annotated ``<!-- one of -->`` lists outcomes of a race, of which at least
one must be seen.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey import LocalCache, SignedPickleSerializer, ValkeyCache
from emmett_valkey_matrix.executor import PortClaim

from certification.support import scan_delete, start_local_cluster
from certification.support_faults import HANDLER_COMMANDS, TLSMaterial, acl_rule, dedicated, poll, tls_server

DOC = Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md"
TIMEOUT = 0.5  # socket_timeout and socket_connect_timeout of the handlers under test
SECRET = "a-secret-of-more-than-16-bytes"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_ANNOTATION = re.compile(r"^<!--\s*(servers:\s*(?P<servers>.*?)|(?P<one_of>one of))\s*-->$")
_PLACEHOLDER = re.compile(r"<([a-z][a-z ]*)>")
#: what each placeholder of the page stands for
PLACEHOLDERS = {
    "host": r"[\w.:-]+?", "port": r"\d+", "slot": r"\d+", "line": r"\d+", "user": r"\S+", "command": r"[\w|-]+",
    "key": r"[^']+", "address": r".+?", "reason": r".+?", "first bytes": r".+?",
}


@dataclass(frozen=True)
class Block:
    """A ``text`` block of a section.

    ``servers``: the servers whose wording it is (None: every server); ``one_of``: its lines are alternatives.
    """

    lines: tuple[str, ...]
    servers: frozenset[str] | None = None
    one_of: bool = False


def sections(text: str) -> dict[str, list[Block]]:
    """Heading -> the ``text`` blocks under it (up to the next heading of any level)."""
    out: dict[str, list[Block]] = {}
    heading: str | None = None
    annotation: dict[str, Any] = {}
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None:
            if line.strip() == "```":
                assert heading is not None, "a text block before the first heading"
                out[heading].append(Block(tuple(block), **annotation))
                block, annotation = None, {}
            elif line.strip():
                block.append(line.strip())
            continue
        found = _HEADING.match(line)
        if found:
            heading = found.group(2)
            assert heading not in out, f"two sections named {heading!r}"
            out[heading] = []
        elif line.strip() == "```text":
            block = []
        elif _ANNOTATION.match(line.strip()):
            found = _ANNOTATION.match(line.strip())
            assert found is not None
            annotation = ({"servers": frozenset(found["servers"].split())} if found["servers"] is not None
                          else {"one_of": True})
        elif line.strip():
            annotation = {}  # an annotation holds for the block right after it only
    return out


def pattern(quoted: str) -> re.Pattern[str]:
    """The quoted line as a regular expression: literal, except each ``<...>`` (see :data:`PLACEHOLDERS`)."""
    parts = _PLACEHOLDER.split(quoted)  # literal, name, literal, name, ..., literal
    unknown = set(parts[1::2]) - PLACEHOLDERS.keys()
    assert not unknown, f"placeholders the tests do not know: {sorted(unknown)} in {quoted!r}"
    return re.compile("".join(PLACEHOLDERS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


def check_documented(heading: str, seen: list[str], server_id: str | None) -> None:
    """Every line in *seen* is quoted under *heading*, and every line quoted there (for this server) is in *seen*."""
    blocks = sections(DOC.read_text(encoding="utf-8")).get(heading)
    assert blocks, f"docs/troubleshooting.md has no section {heading!r} with a text block"
    mine = [b for b in blocks if b.servers is not None and server_id in b.servers]
    blocks = mine or [b for b in blocks if b.servers is None]
    assert seen, "nothing was provoked"

    def is_seen(quoted: str) -> bool:
        return any(pattern(quoted).fullmatch(s) for s in seen)

    undocumented = [s for s in seen if not any(pattern(q).fullmatch(s) for b in blocks for q in b.lines)]
    unseen = [q for b in blocks if not b.one_of for q in b.lines if not is_seen(q)]
    unseen += [" | ".join(b.lines) for b in blocks if b.one_of and not any(is_seen(q) for q in b.lines)]
    assert not undocumented, f"raised or logged, but not quoted under {heading!r}: {undocumented}"
    assert not unseen, f"quoted under {heading!r}, but not raised or logged here: {unseen}\n(seen: {seen})"


def raised(fn: Callable[[], Any]) -> str:
    """The last traceback line of what *fn* raises."""
    try:
        fn()
    except Exception as exc:
        return traceback.format_exception_only(type(exc), exc)[-1].strip()
    raise AssertionError("nothing was raised")


def araised(h: ValkeyCache, coro_fn: Callable[[], Any]) -> str:
    """:func:`raised` for a coroutine function, on a loop of its own (the handler's async client closed after)."""

    async def main() -> None:
        try:
            await coro_fn()
        finally:
            await h.aclose()

    return raised(lambda: asyncio.run(main()))


class Handlers:
    """ValkeyCache objects of one test, closed after it; each built with short timeouts unless told otherwise."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.made = prefix, []

    def __call__(self, **kwargs: Any) -> ValkeyCache:
        kwargs = {"prefix": self.prefix, "socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT, **kwargs}
        self.made.append(ValkeyCache(**kwargs))
        return self.made[-1]

    def close(self) -> None:
        for h in self.made:
            h.close()


@pytest.fixture
def handlers(key_prefix: str) -> Iterator[Handlers]:
    made = Handlers(key_prefix)
    yield made
    made.close()


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The messages the handler logged so far (each checked to be a WARNING of the ``emmett_valkey`` logger)."""
    caplog.set_level(logging.WARNING, logger="emmett_valkey")

    def messages() -> list[str]:
        records = [r for r in caplog.records if r.name == "emmett_valkey"]
        assert all(r.levelno == logging.WARNING for r in records), [(r.levelname, r.getMessage()) for r in records]
        return [r.getMessage() for r in records]

    return messages


def closed_port() -> int:
    """A loopback port nothing listens on (claimed from our own servers, then released)."""
    claim = PortClaim()
    try:
        return claim.port
    finally:
        claim.release()


# -- connecting -----------------------------------------------------------------------------------------------


@pytest.mark.faults
def test_connection_refused(handlers: Handlers, warnings_logged: Callable[[], list[str]]) -> None:
    port = closed_port()
    strict, soft = handlers(host="127.0.0.1", port=port), handlers(host="127.0.0.1", port=port, on_error="miss")
    seen = [raised(lambda: strict.get("k")), araised(strict, lambda: strict.aget("k"))]
    assert (soft.get("k"), soft.set("k", 1), soft.stats()["errors"]) == (None, False, 2)
    check_documented("Connection refused", seen + warnings_logged(), None)


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id, started with its own options for the fault it shows")
def test_timeout_connecting(server: Any, tmp_path: Path, handlers: Handlers,
                            warnings_logged: Callable[[], list[str]]) -> None:
    """A stopped server whose accept queue is full: the handler's connection is never accepted."""
    from emmett_valkey_matrix import ServerOptions

    with dedicated(server, tmp_path, ServerOptions(extra=(("tcp-backlog", "1"),))) as srv:
        strict = handlers(host=srv.host, port=srv.port)
        soft = handlers(host=srv.host, port=srv.port, on_error="miss")
        fillers: list[socket.socket] = []
        srv.kill(signal.SIGSTOP)
        try:
            for _ in range(64):  # connect until the kernel stops completing handshakes for the stopped server
                sock = socket.socket()
                sock.settimeout(TIMEOUT)
                try:
                    sock.connect((srv.host, srv.port))
                except TimeoutError:
                    sock.close()
                    break
                fillers.append(sock)
            else:
                pytest.fail("64 connections to a stopped server were all accepted: the backlog is not in force")
            t0 = time.monotonic()
            seen = [raised(lambda: strict.get("k"))]
            assert soft.get("k") is None and soft.stats()["errors"] == 1
            assert time.monotonic() - t0 < 4 * TIMEOUT + 1
        finally:
            srv.kill(signal.SIGCONT)
            for sock in fillers:
                sock.close()
    check_documented("Timeout connecting", seen + warnings_logged(), server.id)


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id, started with its own options for the fault it shows")
def test_stalled_server(server: Any, tmp_path: Path, handlers: Handlers,
                        warnings_logged: Callable[[], list[str]]) -> None:
    with dedicated(server, tmp_path) as srv:
        strict = handlers(host=srv.host, port=srv.port)
        soft = handlers(host=srv.host, port=srv.port, on_error="miss")
        assert strict.set("k", 1) and soft.get("k") == 1  # both connected before the stall
        srv.kill(signal.SIGSTOP)
        try:
            seen = [raised(lambda: strict.get("k"))]
            assert soft.get("k") is None and soft.stats()["errors"] == 1
        finally:
            srv.kill(signal.SIGCONT)
        assert poll(lambda: strict.get("k") == 1, 5)
    check_documented("Stalled server", seen + warnings_logged(), server.id)


# -- authentication and permissions ---------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id, started with its own options for the fault it shows")
def test_wrong_password_and_noauth(server: Any, tmp_path: Path, handlers: Handlers,
                                   warnings_logged: Callable[[], list[str]]) -> None:
    from emmett_valkey_matrix import ServerOptions

    with dedicated(server, tmp_path, ServerOptions(requirepass="the-right-password")) as srv:
        for heading, password in (("Wrong password", "a-wrong-password"), ("No password (NOAUTH)", None)):
            before = len(warnings_logged())
            strict = handlers(host=srv.host, port=srv.port, password=password)
            soft = handlers(host=srv.host, port=srv.port, password=password, on_error="miss")
            seen = [raised(lambda h=strict: h.get("k"))]
            assert soft.get("k") is None and soft.stats()["errors"] == 1
            check_documented(heading, seen + warnings_logged()[before:], server.id)


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id, started with its own options for the fault it shows")
def test_noperm(server: Any, tmp_path: Path, handlers: Handlers, key_prefix: str,
                warnings_logged: Callable[[], list[str]]) -> None:
    """A user without SCAN (clear fails), and a prefix outside the user's keys: raised in both modes."""
    with dedicated(server, tmp_path) as srv:
        admin = srv.client()
        try:
            rule = acl_rule(key_prefix, tuple(c for c in HANDLER_COMMANDS if c != "scan"))
            admin.execute_command("ACL", "SETUSER", "cacheapp", "reset", *rule.split(), ">cacheapp-password")
        finally:
            admin.close()
        seen = []
        for mode in ("raise", "miss"):
            user = {"host": srv.host, "port": srv.port, "username": "cacheapp", "password": "cacheapp-password",
                    "on_error": mode}
            mine, other = handlers(**user), handlers(**user, prefix="other:")
            assert mine.set("k", 1) and mine.get("k") == 1
            seen += [raised(lambda h=mine: h.clear()), raised(lambda h=other: h.get("k"))]
    assert not warnings_logged()
    check_documented("Permission denied (NOPERM)", sorted(set(seen)), server.id)


# -- a full server ----------------------------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id, started with its own options for the fault it shows")
def test_out_of_memory(server: Any, tmp_path: Path, handlers: Handlers,
                       warnings_logged: Callable[[], list[str]]) -> None:
    from emmett_valkey_matrix import ServerOptions

    with dedicated(server, tmp_path, ServerOptions(maxmemory="4mb", maxmemory_policy="noeviction")) as srv:
        strict = handlers(host=srv.host, port=srv.port)
        soft = handlers(host=srv.host, port=srv.port, on_error="miss")
        seen = []
        for i in range(1000):
            try:
                strict.set(f"fill{i}", "x" * 16384)
            except valkey.exceptions.OutOfMemoryError:
                seen.append(raised(lambda i=i: strict.set(f"fill{i}", "x" * 16384)))
                break
        else:
            pytest.fail("1000 x 16 KiB fit in maxmemory 4mb: the limit is not in force")
        assert soft.set("more", "x" * 16384) is False and soft.stats()["errors"] == 1
    check_documented("A full server (OOM)", seen + warnings_logged(), server.id)


# -- TLS ------------------------------------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id with a TLS port (the local cluster runs without TLS)")
def test_tls_verification_failed(server: Any, tmp_path: Path, handlers: Handlers, tls_material: TLSMaterial,
                                 warnings_logged: Callable[[], list[str]]) -> None:
    """A server certificate that the configured CA did not sign; skipped, saying so, on a build without TLS."""
    with tls_server(server, tmp_path, tls_material) as srv:
        tls = {"url": srv.url, "ssl_ca_certs": str(tls_material.other_ca),
               "ssl_certfile": str(tls_material.client_cert), "ssl_keyfile": str(tls_material.client_key)}
        strict, soft = handlers(**tls), handlers(**tls, on_error="miss")
        seen = [raised(lambda: strict.get("k"))]
        assert soft.get("k") is None and soft.stats()["errors"] == 1
    check_documented("Certificate verification failed", seen + warnings_logged(), server.id)


@pytest.mark.faults
@pytest.mark.standalone_only("a dedicated single server of the id with a TLS port (the local cluster runs without TLS)")
def test_tls_client_certificate_required(server: Any, tmp_path: Path, handlers: Handlers,
                                         tls_material: TLSMaterial) -> None:
    with tls_server(server, tmp_path, tls_material) as srv:
        trusted = handlers(url=srv.url, ssl_ca_certs=str(tls_material.ca), ssl_certfile=str(tls_material.client_cert),
                           ssl_keyfile=str(tls_material.client_key))
        assert trusted.set("k", 1) and trusted.get("k") == 1  # the same server, with a client certificate
        anonymous = handlers(url=srv.url, ssl_ca_certs=str(tls_material.ca))
        seen = [raised(lambda: anonymous.get("k"))]
    check_documented("The server wants a client certificate", seen, server.id)


# -- refused entries --------------------------------------------------------------------------------------------


@pytest.mark.faults
def test_refused_entries(server: Any, handlers: Handlers, raw: valkey.Valkey, key_prefix: str,
                         warnings_logged: Callable[[], list[str]]) -> None:
    """A plain-pickle entry and one signed with another secret: misses, logged, never raised, never unpickled."""
    try:
        for mode in ("raise", "miss"):
            signed = handlers(**server.handler_args(), serializer=SignedPickleSerializer(SECRET),
                              on_error=mode)
            plain = handlers(**server.handler_args())
            other = handlers(**server.handler_args(),
                             serializer=SignedPickleSerializer("another-secret-of-16-bytes"))
            plain.set("old", {"written": "before the switch"})
            other.set("foreign", {"written": "by another app"})
            assert raw.get(key_prefix + "old")[:1] == b"!"  # type: ignore[index]
            assert (signed.get("old"), signed.get("foreign"), signed.stats()["refused"]) == (None, None, 2)
        logged = warnings_logged()
        assert len(logged) == 4 and not any("before the switch" in m or "by another app" in m for m in logged)
        assert any(repr(key_prefix + "old") in m for m in logged), logged
    finally:
        scan_delete(raw, key_prefix)
    check_documented("Refused entries (signed serializer)", sorted(set(logged)), server.id)


# -- the local cache ------------------------------------------------------------------------------------------


@pytest.mark.local_cache
@pytest.mark.standalone_only("ACL users are made on one server, and the local cache is for one server")
def test_local_cache_bypassed(server: Any, handlers: Handlers, raw: valkey.Valkey, key_prefix: str,
                              warnings_logged: Callable[[], list[str]]) -> None:
    """The invalidation connection killed by the server, then refused to a user without CLIENT TRACKING."""
    killed = handlers(**server.handler_args(), local_cache=LocalCache(max_staleness=5))
    assert killed.local is not None and killed.local.wait_active(10)
    assert raw.client_kill_filter(_id=killed.local.client_id) == 1
    poll(lambda: len(warnings_logged()) == 1, 10)
    user, password = f"lc-{key_prefix.replace(':', '-')}", "a-password-of-16-bytes"
    raw.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@read", "+@write", "+ping",
                        "+client|id", "+subscribe")  # no +client|tracking
    try:
        denied = handlers(**server.handler_args(), username=user, password=password, local_cache=True)
        assert denied.local is not None
        denied.local.start()
        poll(lambda: len(warnings_logged()) == 2, 10)
        denied.set("k", 1)
        assert denied.get("k") == 1 and denied.get("k") == 1 and denied.local.stats.hits == 0  # the server, twice
    finally:
        raw.execute_command("ACL", "DELUSER", user)
        scan_delete(raw, key_prefix)
    check_documented("Local cache bypassed", warnings_logged(), server.id)


# -- on a cluster ---------------------------------------------------------------------------------------------


def _key_served_by(cluster: Any, node: Any, prefix: str, *, owned: bool) -> str:
    """A key (under *prefix*) whose slot *node* serves (``owned``) or does not."""
    from valkey.crc import key_slot

    with node.client() as conn:
        ranges = [(int(s[0]), int(s[1])) for s in conn.execute_command("CLUSTER", "SLOTS")
                  if (int(s[2][1])) == node.port]
    for i in range(10_000):
        slot = key_slot((prefix + f"k{i}").encode())
        if any(low <= slot <= high for low, high in ranges) == owned:
            return f"k{i}"
    raise AssertionError(f"no key found for {node.port} (owned={owned})")


@pytest.mark.cluster
def test_cluster_moved_and_down(server: Any, tmp_path: Path, handlers: Handlers, key_prefix: str,
                                warnings_logged: Callable[[], list[str]]) -> None:
    """A single-server handler on a cluster node (MOVED); then a cluster that lost a primary without a replica."""
    with start_local_cluster(server, tmp_path, replicas=0) as cluster:
        first, last = cluster.primaries[0], cluster.primaries[-1]
        elsewhere = _key_served_by(cluster, first, key_prefix, owned=False)
        moved = []
        for mode in ("raise", "miss"):
            single = handlers(host=first.host, port=first.port, on_error=mode)
            moved.append(raised(lambda h=single: h.get(elsewhere)))
        assert not warnings_logged()
        check_documented("MOVED", sorted(set(moved)), server.id)

        strict = handlers(host=first.host, port=first.port, cluster=True)
        soft = handlers(host=first.host, port=first.port, cluster=True, on_error="miss")
        served = _key_served_by(cluster, first, key_prefix, owned=True)
        assert strict.set(served, 1) and soft.get(served) == 1
        last.kill(signal.SIGKILL)

        def down() -> bool:
            with first.client() as conn:
                return "cluster_state:fail" in conn.execute_command("CLUSTER", "INFO").decode()

        poll(down, 30, interval=0.1)
        seen = [raised(lambda: strict.get(served))]
        assert soft.get(served) is None and soft.stats()["errors"] == 1
    check_documented("CLUSTERDOWN", seen + warnings_logged(), server.id)


@pytest.mark.cluster
@pytest.mark.standalone_only("a single server that is not a cluster node, given as a cluster seed")
def test_cluster_cannot_be_connected(server: Any, handlers: Handlers,
                                     warnings_logged: Callable[[], list[str]]) -> None:
    """cluster=True with a seed where nothing listens, and with a single server (not a cluster node) as the seed."""
    seen = []
    for host, port in (("127.0.0.1", closed_port()), (server.host, server.port)):
        strict = handlers(host=host, port=port, cluster=True)
        soft = handlers(host=host, port=port, cluster=True, on_error="miss")
        seen.append(raised(lambda h=strict: h.get("k")))
        assert soft.get("k") is None and soft.stats()["errors"] == 1
    check_documented("Cannot be connected", seen + warnings_logged(), server.id)


# -- the parser itself ------------------------------------------------------------------------------------------


@pytest.mark.faults
def test_sections_and_patterns() -> None:
    """The page parses into the sections the tests above name; a placeholder matches text, the rest is literal."""
    found = sections(DOC.read_text(encoding="utf-8"))
    named = ["Connection refused", "Timeout connecting", "Stalled server", "Wrong password", "No password (NOAUTH)",
             "Permission denied (NOPERM)", "A full server (OOM)", "Certificate verification failed",
             "The server wants a client certificate", "Refused entries (signed serializer)", "Local cache bypassed",
             "MOVED", "CLUSTERDOWN",
             "Cannot be connected"]
    assert [h for h in found if found[h]] == named
    assert pattern("Error 111 connecting to <host>:<port>. Refused.").fullmatch("Error 111 connecting to a:1. Refused.")
    assert not pattern("Error 111 connecting to <host>:<port>.").fullmatch("Error 11 connecting to a:1.")
    assert not pattern("MOVED <slot>").fullmatch("MOVED 8845 127.0.0.1:24691")
    assert not pattern("a (b) <reason>").fullmatch("a b c")
    with pytest.raises(AssertionError, match="placeholders the tests do not know"):
        pattern("<anything>")
