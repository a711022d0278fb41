"""Every Python example of the README (and of ``docs/``) runs as a test, against the embedded default server.

Sybil collects each ``python`` code block of those Markdown files in order; the blocks of one file share a namespace,
as a reader's session would. Before a file runs, ``VALKEY_URL`` points at a Valkey 9.1.2 server that these tests
start for themselves (the embedded default, from the catalogue) and empty after each file; nothing else is set up.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

DOC_SERVER = "valkey91"  # the embedded default


@pytest.fixture(scope="session")
def docs_server_url() -> Iterator[str]:
    """Start the embedded default server for the documentation's examples; stopped by pid at the end."""
    from emmett_valkey_matrix import ServerOptions, resolve

    with (tempfile.TemporaryDirectory(prefix="emmett-valkey-docs-") as workdir,
          resolve(DOC_SERVER).start(ServerOptions(), workdir=Path(workdir)) as server):
        yield server.url


@pytest.fixture
def docs_env(docs_server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Give each example what a reader has: ``VALKEY_URL`` of a running server (no other ``VALKEY_*``), a new cwd."""
    for name in [n for n in os.environ if n.startswith("VALKEY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VALKEY_URL", docs_server_url)
    monkeypatch.chdir(tmp_path)
    _SERVER_URL[:] = [docs_server_url]
    yield


_SERVER_URL: list[str] = []  # the docs server, for the per-file teardown (Sybil's teardown takes no fixtures)


def _setup(namespace: dict[str, Any]) -> None:
    namespace["__name__"] = "app"  # the module name a reader's app.py has


def _teardown(namespace: dict[str, Any]) -> None:
    """After each file: close what its examples opened, empty the server for the next file."""
    import valkey
    from emmett_core.cache import Cache
    from emmett_valkey import ValkeyCache

    for value in namespace.values():
        inside = vars(value).values() if isinstance(value, Cache) else [value]
        for handler in inside:
            if isinstance(handler, ValkeyCache):
                handler.close()
    for url in _SERVER_URL:
        client = valkey.Valkey.from_url(url)
        try:
            client.flushall()
        finally:
            client.close()


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    fixtures=["docs_env"],
    setup=_setup,
    teardown=_teardown,
    name="docs",
).pytest()
