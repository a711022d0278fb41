"""Helpers of the faults suite: dedicated servers, bounded calls, throwaway TLS material, ACL files, poisoned entries.

Every test that disturbs a server (kill, stop, pause, memory limit, auth, TLS, a small bulk limit) starts its own from
the same catalogue id as the session's ``server`` and stops it by pid afterwards; a server the user runs
(``CERTIFY_<ID>_URL``) cannot be disturbed, so those tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from certification.support import close_handler, make_handler

#: The commands ValkeyCache needs, and nothing more (``clear`` included: SCAN + UNLINK, never KEYS nor FLUSHDB).
#: GET get/get_or_set, SET set/get_or_set/set_many, MGET get_many, UNLINK clear/delete_many, SCAN pattern and full
#: clear, INCRBY incr/decr, PTTL ttl/incr, PEXPIRE touch/incr, MULTI+EXEC incr/decr/set_many (atomic batches).
#: AUTH and HELLO are open to every user. Optional: ``+client|setinfo`` (valkey-py tags its connections, and ignores
#: a refusal), ``+select`` with ``db != 0``, ``+client|setname`` with ``client_name``, ``+ping`` with
#: ``health_check_interval``.
HANDLER_COMMANDS = ("get", "set", "mget", "unlink", "scan", "incrby", "pttl", "pexpire", "multi", "exec")

#: Commands a least-privilege cache user must not have; the ACL tests check each one is refused.
FORBIDDEN_COMMANDS = (("KEYS", "*"), ("FLUSHDB",), ("FLUSHALL",), ("CONFIG", "GET", "maxmemory"))

ADMIN_PASSWORD = "admin-pw-0f3c9a"  # throwaway, for loopback-only servers of one test
APP_PASSWORD = "app-pw-7d21e4"


def acl_rule(prefix: str, commands: tuple[str, ...] = HANDLER_COMMANDS) -> str:
    """``ACL SETUSER`` rules of a user restricted to *prefix* and *commands*."""
    return " ".join(["on", "resetkeys", f"~{prefix}*", "resetchannels", "-@all", *(f"+{c}" for c in commands)])


#: What Emmett's RedisCache sends instead of SET PX and UNLINK: granted to :data:`BOTH_USER` (harmless), so that
#: comparing the two handlers under least privilege turns on KEYS alone.
BASELINE_EXTRA = ("setex", "del")
BOTH_USER = "emmettapp"


def write_aclfile(path: Path, app_user: str, prefix: str) -> Path:
    """Write an ACL file: an admin, *app_user* (:data:`HANDLER_COMMANDS` on *prefix*) and :data:`BOTH_USER`.

    ``default`` is the admin (``ADMIN_PASSWORD``); :data:`BOTH_USER` also has :data:`BASELINE_EXTRA`.
    """
    path.write_text(f"user default on >{ADMIN_PASSWORD} ~* &* +@all\n"
                    f"user {app_user} {acl_rule(prefix)} >{APP_PASSWORD}\n"
                    f"user {BOTH_USER} {acl_rule(prefix, HANDLER_COMMANDS + BASELINE_EXTRA)} >{APP_PASSWORD}\n",
                    encoding="utf-8")
    return path


# -- dedicated servers ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def dedicated(server: Any, tmp_path: Path, options: Any = None) -> Iterator[Any]:
    """Start a server of ``server.id`` for this test alone (skip for a server the user runs); stop it after."""
    from emmett_valkey_matrix import ServerOptions, resolve

    if server.cluster:  # never a single server standing in for the cluster under certification
        raise RuntimeError(f"dedicated() starts one server, not a cluster: mark the test standalone_only "
                           f"(it runs on {server.id})")
    resolved = resolve(server.id)
    if resolved.external:
        pytest.skip(f"{server.id} is a server the user runs ({resolved.describe()}): it cannot be killed, paused "
                    "or restarted with other options")
    with resolved.start(options or ServerOptions(), workdir=tmp_path / "dedicated") as srv:
        yield srv


@dataclass
class HandlerFactory:
    """Builds one kind of handler (the test's ``handler`` parameter) on a dedicated server; closes them after."""

    kind: str
    prefix: str
    made: list[Any] = field(default_factory=list)

    def __call__(self, srv: Any, **kwargs: Any) -> Any:
        if self.kind == "RedisCache":  # RedisCache has no on_error, and passes the rest to redis.Redis
            kwargs.pop("on_error", None)
        if getattr(srv, "password", None) and "password" not in kwargs:
            kwargs["password"] = srv.password
        h = make_handler(self.kind, srv, self.prefix, **kwargs)
        self.made.append(h)
        return h

    def close(self) -> None:
        for h in self.made:
            close_handler(h)


@pytest.fixture
def handler_factory(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[HandlerFactory]:
    """Each handler in turn (ours, then the baseline), as a factory for the test's dedicated server."""
    factory = HandlerFactory(request.param, key_prefix)
    yield factory
    factory.close()


def quick_retry(kind: str) -> dict[str, Any]:
    """RedisCache kwargs with one immediate retry instead of redis-py 8's 10 retries with backoff.

    The backoff costs seconds per failed call, which is not what is tested. One retry stays: a server that refuses a
    request may close the connection just after the reply, so the pooled connection the next call takes can be reset
    while it writes (a race, seen once under ``-n 2``); redis-py's default policy reconnects and retries then, as
    ValkeyCache's own retry policy does, and a policy of no retry at all would fail that next call instead.
    """
    if kind == "ValkeyCache":
        return {}
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"retry": Retry(NoBackoff(), 1)}


# -- time ---------------------------------------------------------------------------------------------------------


@dataclass
class Bounded:
    """A call running in a daemon thread, so that a test can give up on it and still collect it later."""

    thread: threading.Thread
    started: float
    value: Any = None
    error: BaseException | None = None
    elapsed: float | None = None

    @property
    def done(self) -> bool:
        return self.elapsed is not None

    def join(self, timeout: float) -> Bounded:
        self.thread.join(timeout)
        return self


def bounded(fn: Callable[[], Any], timeout: float) -> Bounded:
    """Run *fn* in a thread and wait at most *timeout* seconds for it; ``.done`` says whether it ended."""

    def run() -> None:
        try:
            call.value = fn()
        except BaseException as exc:
            call.error = exc
        finally:
            call.elapsed = time.monotonic() - call.started

    call = Bounded(threading.Thread(target=run, daemon=True), time.monotonic())
    call.thread.start()
    return call.join(timeout)


def timed(fn: Callable[[], Any]) -> tuple[Any, BaseException | None, float]:
    """``(value, error, seconds)`` of one call."""
    t0 = time.monotonic()
    try:
        return fn(), None, time.monotonic() - t0
    except Exception as exc:
        return None, exc, time.monotonic() - t0


def poll(fn: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Call *fn* until it returns a true value (exceptions count as false) or *timeout* passes; return its value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s (last error: {last!r})")
        time.sleep(interval)


# -- poisoned entries -------------------------------------------------------------------------------------------

#: Paths that unpickling a :class:`SideEffect` touched, in this process.
MARKS: list[str] = []


def leave_mark(path: str) -> str:
    """What unpickling a :class:`SideEffect` runs: creates *path* and records it (a visible side effect)."""
    Path(path).touch()
    MARKS.append(path)
    return path


class SideEffect:
    """An object whose unpickling calls :func:`leave_mark`: proof of whether an entry was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (leave_mark, (self.path,))


# -- TLS ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """A throwaway CA with a server and a client certificate, and a second CA that signed neither."""

    server: Any  # emmett_valkey_matrix.TLSFiles (cert, key, ca)
    client_cert: Path
    client_key: Path
    ca: Path
    other_ca: Path


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: Any, key: Any | None = None) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def _ca(cn: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key, now = _key(), datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca: tuple[Any, Any], cn: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key, now = _key(), datetime.datetime.now(datetime.timezone.utc)
    sans = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca[0].subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).add_extension(sans, critical=False)
            .sign(ca[1], hashes.SHA256()))
    return cert, key


def make_tls_material(directory: Path) -> TLSMaterial:
    """Generate a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an unrelated CA."""
    from emmett_valkey_matrix import TLSFiles

    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("emmett-valkey throwaway CA")
    ca_path = _write(directory / "ca.crt", ca[0])
    server_cert, server_key = _leaf(ca, "emmett-valkey test server")
    client_cert, client_key = _leaf(ca, "emmett-valkey test client")
    srv = _write(directory / "server.crt", server_cert, server_key)
    cli = _write(directory / "client.crt", client_cert, client_key)
    other = _write(directory / "other-ca.crt", _ca("some other CA")[0])
    return TLSMaterial(TLSFiles(srv, srv.with_suffix(".key"), ca_path), cli, cli.with_suffix(".key"), ca_path, other)


@pytest.fixture(name="tls_material", scope="session")
def tls_material_fixture(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """Throwaway TLS material for this session (made once per process)."""
    return make_tls_material(tmp_path_factory.mktemp("tls"))


#: server log lines of a build without TLS (Valkey 8+ knows the tls-* settings even then, so CONFIG GET says little)
_NO_TLS = re.compile(r"^.*(TLS support|connection type tls|TLS.*not supported|tls-port.*(Bad directive|unknown)).*$",
                     re.IGNORECASE | re.MULTILINE)


def require_tls(server: Any) -> None:
    """Skip when the provenance says the build has no TLS."""
    if server.provenance.get("tls") is False:
        pytest.skip(f"{server.id} ({server.product} {server.version}) is a build without TLS (provenance tls=false): "
                    "the TLS scenarios cannot run on it")


@contextlib.contextmanager
def tls_server(server: Any, tmp_path: Path, material: TLSMaterial) -> Iterator[Any]:
    """A dedicated TLS-only server; skip, saying so, when the build turns out to have no TLS."""
    from emmett_valkey_matrix import ServerOptions, StartError

    require_tls(server)
    with contextlib.ExitStack() as stack:
        try:
            srv = stack.enter_context(dedicated(server, tmp_path, ServerOptions(tls=material.server)))
        except StartError as exc:
            found = _NO_TLS.search(str(exc))
            if found is None:
                raise
            pytest.skip(f"{server.id} ({server.product} {server.version}) is a build without TLS: the server refused "
                        f"to start with a TLS port ({found.group(0).split(' # ')[-1].strip()!r}); provenance tls="
                        f"{server.provenance.get('tls')}")
        yield srv
