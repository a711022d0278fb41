"""Which server is this: every real ``--version`` form and ``INFO server``.

Builds no registry offers are recorded in ``data/identities/``; real binaries get a ``--version`` in a form the
pre-check does not know.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from emmett_valkey_matrix import IntegrityError, resolve
from emmett_valkey_matrix.identify import Identity, from_info, from_version_output

IDENTITIES = Path(__file__).parent / "data" / "identities"


def _info(name: str) -> dict[str, str]:
    lines = (IDENTITIES / name).read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


@pytest.mark.parametrize(
    ("build", "product", "version", "build_id"),
    [
        ("valkey-7.2.7", "valkey", "7.2.7", "5d84b84949e8a2f9"),
        ("redis-7.2.6", "redis", "7.2.6", "fc920215c0c5bf6b"),
        ("redis-7.4.1", "redis", "7.4.1", "46ba0684b93f28d6"),
    ],
)
def test_recorded_builds_are_identified_alike_by_version_and_info(
        build: str, product: str, version: str, build_id: str) -> None:
    """``--version`` (a pre-check) and INFO (what decides) agree on product, version and build id of each build."""
    by_flag = from_version_output((IDENTITIES / f"{build}.version.txt").read_text())
    by_info = from_info(_info(f"{build}.info-server.txt"))
    assert by_flag == Identity(product, version, build_id, None, "libc")
    assert (by_info.product, by_info.version, by_info.build_id, by_info.git_sha) == (product, version, build_id, None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Server v=7.2.5 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1", ("valkey", "7.2.5", None)),
        ("Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64 build=1536df31c0395150", ("valkey", "9.1.2", None)),
        ("Redis server v=8.2.3 sha=1a2b3c4d:0 malloc=jemalloc-5.3.0 bits=64 build=9", ("redis", "8.2.3", "1a2b3c4d")),
    ],
    ids=["valkey72-bare-Server", "valkey80+", "redis"],
)
def test_every_real_version_form(line: str, expected: tuple[str, str, str | None]) -> None:
    """The three real forms; an all-zero sha (a build outside git) is no sha."""
    found = from_version_output(line)
    assert found is not None and (found.product, found.version, found.git_sha) == expected


def test_an_unknown_form_is_left_to_info_and_no_version_is_not_a_server() -> None:
    """A form with a version but no known shape gives no identity (INFO decides); output without one is refused."""
    assert from_version_output("KeyDB server v=6.3.4 sha=00000000:0 malloc=jemalloc-5.2.1 bits=64 build=1") is None
    assert from_version_output("valkey-server 9.1.2 (custom build)") is None
    with pytest.raises(IntegrityError, match="its --version printed nothing"):
        from_version_output("")
    with pytest.raises(IntegrityError, match=r"its --version printed 'true \(GNU coreutils\) 9\.1'"):
        from_version_output("true (GNU coreutils) 9.1\nCopyright (C) 2022 Free Software Foundation, Inc.\n")


def _wrapper(tmp_path: Path, real: Path, version_line: str) -> Path:
    """Write a binary that prints *version_line* for ``--version`` and is the real server otherwise."""
    script = tmp_path / "server-wrapper"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo \'{version_line}\'; exit 0; fi\n'
                      f'exec {real} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.slow
def test_a_binary_is_never_refused_for_its_version_form_alone(valkey91, tmp_path: Path) -> None:
    """A real Valkey 9.1.2 whose ``--version`` is in an unknown form resolves, starts and is identified by INFO."""
    binary = _wrapper(tmp_path, valkey91.binary.path, "valkey-server 9.1.2 (packaged by someone)")
    resolved = resolve("valkey91", environ={"CERTIFY_VALKEY91_BIN": str(binary)})
    server = resolved.start(workdir=tmp_path / "data")
    try:
        assert (server.provenance["product"], server.provenance["version"]) == ("valkey", "9.1.2")
    finally:
        server.stop()


@pytest.mark.slow
def test_info_decides_over_a_version_line_that_claims_valkey72(valkey91, tmp_path: Path) -> None:
    """A binary whose ``--version`` is Valkey 7.2's form passes the pre-check for valkey72; INFO then refuses it."""
    binary = _wrapper(tmp_path, valkey91.binary.path, (IDENTITIES / "valkey-7.2.7.version.txt").read_text().strip())
    resolved = resolve("valkey72", environ={"CERTIFY_VALKEY72_BIN": str(binary)})
    assert (resolved.kind, resolved.version) == ("user-binary", "7.2.7")
    with pytest.raises(IntegrityError, match=r"expected Valkey 7\.2\.x, found Valkey 9\.1\.2"):
        resolved.start(workdir=tmp_path / "data")


def test_a_user_binary_that_is_no_server_names_the_variable_and_path(tmp_path: Path) -> None:
    """``CERTIFY_VALKEY90_BIN=/bin/true``: one line naming the variable, the path and what is wrong."""
    true = Path("/bin/true")
    with pytest.raises(IntegrityError) as info:
        resolve("valkey90", environ={"CERTIFY_VALKEY90_BIN": str(true)})
    assert str(info.value).startswith(f"CERTIFY_VALKEY90_BIN={true}: not a Valkey or Redis server (its --version ")
    assert "\n" not in str(info.value)
