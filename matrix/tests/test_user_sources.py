"""User-given servers: CERTIFY_<ID>_URL and _BIN are binding, must be of the id's line; PATH is checked too."""

from __future__ import annotations

import os

import pytest
from emmett_valkey_matrix import IntegrityError, NotAvailable, NotSupported, ServerOptions, resolve
from emmett_valkey_matrix.catalogue import Entry, Source
from emmett_valkey_matrix.sources import compose

pytestmark = pytest.mark.slow


@pytest.fixture
def no_docker(monkeypatch):
    """Pin the compose step to "no engine" so these tests do not depend on the machine's Docker."""
    monkeypatch.setattr(compose, "docker_engine", lambda: "no engine (test)")


def test_user_binary_of_the_line_is_used(valkey91, tmp_path):
    """CERTIFY_VALKEY91_BIN pointing at a Valkey 9.1 binary resolves to it and starts."""
    env = {"CERTIFY_VALKEY91_BIN": str(valkey91.binary.path)}
    res = resolve("valkey91", environ=env)
    assert (res.kind, res.version, res.exact) == ("user-binary", "9.1.2", None)
    server = res.start(workdir=tmp_path)
    try:
        assert server.provenance["source"]["kind"] == "user-binary"
        assert server.provenance["version"] == "9.1.2"
    finally:
        server.stop()


def test_user_binary_of_another_line_is_refused(valkey91):
    """A Valkey 9.1 binary given for valkey90 raises IntegrityError naming expected and found versions."""
    env = {"CERTIFY_VALKEY90_BIN": str(valkey91.binary.path)}
    with pytest.raises(IntegrityError) as info:
        resolve("valkey90", environ=env)
    message = str(info.value)
    assert "expected Valkey 9.0.x" in message and "found Valkey 9.1.2" in message
    assert "CERTIFY_VALKEY90_BIN=" in message


def test_user_binary_of_another_product_is_refused(valkey91):
    """A Valkey binary given for a Redis id is refused, not started as if it were Redis."""
    with pytest.raises(IntegrityError, match=r"expected Redis 8\.2\.x, found Valkey 9\.1\.2"):
        resolve("redis82", environ={"CERTIFY_REDIS82_BIN": str(valkey91.binary.path)})


def test_user_binary_that_does_not_exist_is_not_available(tmp_path):
    """A BIN pointing nowhere is reported, not silently replaced by a catalogue source."""
    with pytest.raises(NotAvailable, match=r"^CERTIFY_VALKEY91_BIN=.*/nope: no such file$"):
        resolve("valkey91", environ={"CERTIFY_VALKEY91_BIN": str(tmp_path / "nope")})
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(NotAvailable, match=r"^CERTIFY_VALKEY91_BIN=.*/plain: not executable \(no execute permission"):
        resolve("valkey91", environ={"CERTIFY_VALKEY91_BIN": str(plain)})


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("exit 0", "not a Valkey or Redis server (its --version printed nothing)"),
        ("printf 'true (GNU coreutils) 9.1\\nCopyright (C) 2022\\n'",
         'not a Valkey or Redis server (its --version printed "true (GNU coreutils) 9.1")'),
        ("echo 'unknown option' >&2; exit 3",
         "not a Valkey or Redis server (its --version exited with status 3: unknown option)"),
    ],
    ids=["silent", "other-program", "fails"],
)
def test_user_binary_that_is_no_server_is_refused_in_one_line(tmp_path, body, why):
    """A BIN that is not a server: one line naming the variable, the path and what was wrong, nothing escaped."""
    path = _script(tmp_path, "fake-server", body)
    with pytest.raises(IntegrityError) as info:
        resolve("valkey90", environ={"CERTIFY_VALKEY90_BIN": path})
    assert str(info.value) == f"CERTIFY_VALKEY90_BIN={path}: {why}"


def test_bin_true_is_refused_naming_variable_and_path():
    """The case people hit: CERTIFY_VALKEY90_BIN=/bin/true (prints its own version, or nothing, and exits 0)."""
    with pytest.raises(IntegrityError) as info:
        resolve("valkey90", environ={"CERTIFY_VALKEY90_BIN": "/bin/true"})
    message = str(info.value)
    assert message.startswith("CERTIFY_VALKEY90_BIN=/bin/true: not a Valkey or Redis server (its --version printed ")
    assert "\n" not in message and "\\n" not in message and "Copyright" not in message


def test_user_url_is_connected_to_and_checked(valkey91, tmp_path):
    """CERTIFY_VALKEY91_URL at a running 9.1 server gives an external twin that cannot be controlled."""
    own = valkey91.start(workdir=tmp_path)
    try:
        res = resolve("valkey91", environ={"CERTIFY_VALKEY91_URL": own.url})
        assert res.external and res.kind == "user-url"
        server = res.start(workdir=tmp_path / "unused")
        assert server.external and server.pid is None and server.port == own.port
        assert server.provenance["version"] == "9.1.2" and server.provenance["url"] == own.url
        assert server.provenance["binary"] is None
        server.stop()  # a no-op: the server is someone else's
        with own.client() as conn:
            assert conn.ping()
        with pytest.raises(NotSupported):
            server.restart()
        with pytest.raises(NotSupported):
            server.kill()
        with pytest.raises(NotSupported):
            res.start(ServerOptions(appendonly=True), workdir=tmp_path)
    finally:
        own.stop()


def test_user_url_of_wrong_product_is_refused(valkey91, tmp_path):
    """A Valkey server given as Redis 8.2 is refused; INFO's frozen redis_version 7.2.4 does not fool it."""
    own = valkey91.start(workdir=tmp_path)
    try:
        with pytest.raises(IntegrityError, match=r"expected Redis 8\.2\.x, found Valkey 9\.1\.2"):
            resolve("redis82", environ={"CERTIFY_REDIS82_URL": own.url})
    finally:
        own.stop()


def test_user_url_that_does_not_answer_is_not_available():
    """An unreachable URL is reported as such, not replaced by another source."""
    with pytest.raises(NotAvailable, match=r"CERTIFY_VALKEY91_URL=valkey://127\.0\.0\.1:1/0 does not answer"):
        resolve("valkey91", environ={"CERTIFY_VALKEY91_URL": "valkey://127.0.0.1:1/0"})


def test_valkey72_not_available_lists_every_way(no_docker):
    """valkey72 has no registry source: the message says why each failed and how to provide one."""
    with pytest.raises(NotAvailable) as info:
        resolve("valkey72", environ={"PATH": ""})
    message = str(info.value)
    assert message.count("\n") > 8
    for needle in ["CERTIFY_VALKEY72_URL: not set", "CERTIFY_VALKEY72_BIN: not set",
                   "tarball https://", "docker compose: no engine (test)", "PATH: no valkey-server on PATH",
                   "docker compose -f docker/docker-compose.yaml up -d valkey72",
                   "export CERTIFY_VALKEY72_URL=valkey://localhost:16072",
                   "CERTIFY_VALKEY72_BIN=/path/to/valkey-server", "upstream tarball"]:
        assert needle in message, needle


def _path_dir(tmp_path, binary):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(binary, bindir / "valkey-server")
    return str(bindir)


def test_path_binary_of_another_line_is_skipped_with_reason(valkey91, tmp_path, no_docker):
    """A valkey-server on PATH of another line does not stand in for valkey72; the reason says so."""
    with pytest.raises(NotAvailable, match=r"PATH: .* is Valkey 9\.1\.2, not Valkey 7\.2"):
        resolve("valkey72", environ={"PATH": _path_dir(tmp_path, valkey91.binary.path)})


def test_path_binary_of_the_line_is_used_last(valkey91, tmp_path, no_docker, catalogue):
    """When no catalogue source works, a valkey-server of the right line on PATH resolves."""
    entry = catalogue["valkey91"]
    unreachable = Source(kind="tarball", version="9.1.2", url="http://127.0.0.1:1/valkey-9.1.2.tar.gz")
    only_tarball = {"valkey91": Entry(entry.id, entry.product, entry.line, entry.image, entry.compose_port,
                                      (unreachable,))}
    res = resolve("valkey91", catalogue=only_tarball, environ={"PATH": _path_dir(tmp_path, valkey91.binary.path)})
    assert (res.kind, res.version) == ("path", "9.1.2")


def test_url_wins_over_bin_and_catalogue(valkey91, tmp_path):
    """Precedence: the URL is used even when a BIN is also given."""
    own = valkey91.start(workdir=tmp_path)
    try:
        env = {"CERTIFY_VALKEY91_URL": own.url, "CERTIFY_VALKEY91_BIN": "/nonexistent"}
        assert resolve("valkey91", environ=env).kind == "user-url"
    finally:
        own.stop()
