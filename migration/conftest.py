"""The migration suite: every ordered pair of the servers that resolve here, by three methods (``tox -e migration``).

Each (source, target, method, variant) is one test, ``redis74-valkey91-dump_restore`` (a variant adds ``-strict`` or
``-relaxed``), so ``-k "redis74-valkey91 and dump_restore"`` reruns one cell. A source is prepared once per id and
kept running while its targets are measured (tests run source by source). The measured grid is compared with
``expected.toml`` and, when every cell ran, written to ``reports/results/migration.json``; a narrower run writes
its cells with status ``partial``, which the report refuses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from emmett_valkey_matrix import NotAvailable, Resolved, ServerOptions, load_catalogue, resolve
from emmett_valkey_matrix.migration import METHODS, VARIANT_SETTING, Cell, cell_id, load_rules, variants_for
from emmett_valkey_matrix.results import RESULTS_DIR

from migration import moves
from migration.results import write_migration

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = Path(__file__).with_name("expected.toml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("emmett-valkey migration")
    group.addoption("--migration-results", default=str(ROOT / RESULTS_DIR),
                    help="where migration.json is written (default: reports/results)")
    group.addoption("--migration-no-results", action="store_true", help="do not write migration.json")


class Grid:
    """The servers of this run, the sources prepared so far (one running at a time) and the cells measured."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.resolved: dict[str, Resolved] = {}
        self.not_available: dict[str, str] = {}
        self.has_setting: dict[str, bool] = {}
        self.provenance: dict[str, dict[str, Any]] = {}
        self.cells: list[Cell] = []
        self.expected_count = 0
        self._source: tuple[str, moves.Source] | None = None
        self.started = time.time()

    def discover(self) -> None:
        """Resolve every catalogue id; probe each server once for ``rdb-version-check`` and its provenance."""
        for sid in load_catalogue():
            try:
                resolved = resolve(sid)
            except NotAvailable as exc:
                self.not_available[sid] = str(exc).splitlines()[0]
                continue
            self.resolved[sid] = resolved
            with resolved.start(ServerOptions(), workdir=self.workdir / "probe" / sid) as server:
                client = server.client()
                try:
                    self.has_setting[sid] = bool(client.config_get(VARIANT_SETTING))
                finally:
                    client.close()
                self.provenance[sid] = server.provenance

    def cells_to_run(self) -> list[tuple[str, str, str, str | None]]:
        return [(s, t, m, v) for s in self.resolved for t in self.resolved for m in METHODS
                for v in variants_for(self.has_setting[t])]

    def source(self, sid: str) -> moves.Source:
        """The prepared source for ``sid``; preparing it stops the previous one."""
        if self._source is None or self._source[0] != sid:
            self.stop()
            self._source = (sid, moves.prepare(self.resolved[sid], self.workdir / "sources" / sid))
        return self._source[1]

    def stop(self) -> None:
        if self._source is not None:
            self._source[1].server.stop()
            self._source = None


GRID = pytest.StashKey[Grid]()


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help:
        return
    if hasattr(config, "workerinput") or config.getoption("numprocesses", default=None):
        raise pytest.UsageError("the migration suite runs serially (-p no:xdist): one source server at a time, "
                                "kept running while its targets are measured")
    import tempfile

    grid = Grid(Path(tempfile.mkdtemp(prefix="emmett-valkey-migration-")))
    config.stash[GRID] = grid
    grid.discover()
    load_rules(EXPECTED, load_catalogue())  # a malformed expected.toml stops the run before anything is measured


def pytest_unconfigure(config: pytest.Config) -> None:
    if GRID in config.stash:
        config.stash[GRID].stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        cells = metafunc.config.stash[GRID].cells_to_run()
        metafunc.parametrize("cell", cells, ids=[cell_id(*c) for c in cells])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    grid = config.stash[GRID]
    grid.expected_count = len(grid.cells_to_run())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if GRID not in config.stash or config.getoption("migration_no_results") or config.option.collectonly:
        return
    grid = config.stash[GRID]
    if not grid.cells:
        return
    path = write_migration(Path(config.getoption("migration_results")), grid, [Path(sys.argv[0]).name, *sys.argv[1:]])
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"migration: {len(grid.cells)} of {grid.expected_count} cells written to {path}")


@pytest.fixture(scope="session")
def grid(pytestconfig: pytest.Config) -> Grid:
    return pytestconfig.stash[GRID]


@pytest.fixture(scope="session")
def rules(grid: Grid) -> Any:
    return load_rules(EXPECTED, load_catalogue())
