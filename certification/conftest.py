"""Certification fixtures: one suite body, every server of the run, both handlers.

- ``server``: a :class:`ServerInfo`, parametrized over the servers given (``--server valkey91 --server redis70``,
  or ``CERTIFY_SERVERS``; by default the embedded Valkey 9.1.2). The controlling process starts them once.
- ``handler``: ``ValkeyCache`` (ours) and ``RedisCache`` (the baseline, Emmett's), each on a key prefix unique to the
  test. ``ours`` and ``baseline`` give one of them; ``raw`` a plain valkey-py client on the same server.
- Known baseline deviations (``deviations.toml``) become strict xfails; results go to ``reports/results/<id>.json``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey_matrix.contract import HANDLERS, SUITE_MARKERS, SUITES
from emmett_valkey_matrix.results import REFUSED, RESULTS_DIR
from emmett_valkey_matrix.run_id import RunId, Topology
from emmett_valkey_matrix.toml import read_toml

from certification.results import ResultsWriter, write_not_run
from certification.session import WORKER_KEY, ServerInfo, ServerPool, requested_ids
from certification.support import BASELINE_ON_CLUSTER, RUN_ID, close_handler, make_handler, raw_client, scan_delete
from certification.support_faults import handler_factory, tls_material_fixture  # noqa: F401 (fixtures for every suite)

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("emmett-valkey certification")
    group.addoption("--server", action="append", default=[],
                    help="catalogue id to certify (repeatable, or comma separated); default: valkey91 (embedded)")
    group.addoption("--results-dir", default=os.environ.get("CERTIFY_RESULTS_DIR", str(ROOT / RESULTS_DIR)),
                    help="where result files are written (default: reports/results)")
    group.addoption("--no-results", action="store_true", help="do not write result files")


def load_deviations() -> dict[str, dict[str, Any]]:
    return read_toml(Path(__file__).parent / "deviations.toml")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    from emmett_valkey_matrix import IntegrityError, NotAvailable

    for suite, covers in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{suite}: {covers}")
    config.addinivalue_line("markers", "standalone_only(reason): the test needs one server's own features (its "
                            "process, CONFIG, CLIENT PAUSE, TLS/ACL options, SELECT, DEBUG); skipped on the cluster "
                            "topology with the reason given")
    config.addinivalue_line("markers", "cluster_only(reason): the test is about the cluster topology itself "
                            "(RedisCache pointed at one node of it); skipped on one server with the reason given")

    if _is_worker(config):
        config.stash[POOL] = ServerPool.from_worker(config.workerinput[WORKER_KEY])  # type: ignore[attr-defined]
        return
    pool = ServerPool()
    config.stash[POOL] = pool
    if config.option.collectonly or config.option.help:
        ids = requested_ids(config)
        pool.infos = {i: ServerInfo(i, "", "", 0, {}, topology=RunId.read(i).topology.value) for i in ids}
        return
    results_dir = Path(config.getoption("results_dir"))
    try:
        pool.start(requested_ids(config))
    except NotAvailable as exc:
        pool.stop()
        server_id = str(pool.starting)
        if not config.getoption("no_results"):
            write_not_run(results_dir, server_id, str(exc))
        pytest.exit(f"cannot certify {server_id}: {exc}", returncode=3)
    except IntegrityError as exc:
        pool.stop()
        server_id = str(pool.starting)
        if not config.getoption("no_results"):
            write_not_run(results_dir, server_id, f"refused: {exc}", status=REFUSED)
        pytest.exit(f"refused to certify {server_id}: {exc}\n(no certification was written; the refusal is recorded "
                    f"as an attempt beside any earlier one)", returncode=4)
    except BaseException:
        pool.stop()
        raise
    deviations = {name: d["explanation"] for name, d in load_deviations().items()}
    # a --benchmark-only run skips every other test: its result file would pass off a partial run as the server's
    if not config.getoption("no_results") and not config.getoption("benchmark_only", default=False):
        writer = ResultsWriter(config, results_dir, pool, deviations)
        config.stash[WRITER] = writer
        config.pluginmanager.register(writer, "emmett-valkey-results")


POOL = pytest.StashKey[ServerPool]()
WRITER = pytest.StashKey[ResultsWriter]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Hand each xdist worker the controller's servers (xdist hook)."""
    node.workerinput[WORKER_KEY] = node.config.stash[POOL].to_worker()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _is_worker(config) and POOL in config.stash:
        config.stash[POOL].stop()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After pytest-benchmark's tables: each judged figure against its target, met or missed (they never fail a run)."""
    session = getattr(config, "_benchmarksession", None)
    if _is_worker(config) or session is None or not session.benchmarks:
        return
    from emmett_valkey_matrix import bench

    docs = [b.as_dict(include_data=False) for b in session.benchmarks]
    rows = [row for sid in config.stash[POOL].infos
            for row in bench.ratios({"benchmarks": [d for d in docs if (d.get("params") or {}).get("server") == sid]},
                                    sid)]
    terminalreporter.section("benchmark targets (ratios measured in this run; a miss does not fail it)")
    for line in bench.verdict(rows):
        terminalreporter.write_line(line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" in metafunc.fixturenames:
        ids = list(metafunc.config.stash[POOL].infos)
        metafunc.parametrize("server", ids, ids=ids, indirect=True, scope="session")
    for name in ("handler", "handler_factory"):  # a handler, or a factory of handlers on a test's own server
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, HANDLERS, ids=HANDLERS, indirect=True)


def _only_baseline(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return "baseline" in names and "ours" not in names


#: the benchmark suite pairs ours with one server's raw client; cluster benchmarks are marked ``cluster`` as well
BENCHMARKS_ON_ONE_SERVER = ("the benchmark suite pairs the handler with one server's raw valkey-py client (benchmarks "
                            "on a cluster carry the cluster marker)")


def _marker_reason(marker: pytest.Mark) -> str:
    return str(marker.args[0] if marker.args else marker.kwargs["reason"])


def _skip_for_topology(item: pytest.Item, info: ServerInfo, params: dict[str, Any]) -> None:
    """The one place a test is skipped for the topology it runs on, always with its reason."""
    standalone_only, cluster_only = item.get_closest_marker("standalone_only"), item.get_closest_marker("cluster_only")
    if not info.cluster:
        if cluster_only is not None:
            item.add_marker(pytest.mark.skip(reason=f"cluster topology only: {_marker_reason(cluster_only)}"))
        return
    if standalone_only is None and item.get_closest_marker("benchmark") and not item.get_closest_marker("cluster"):
        standalone_only = pytest.mark.standalone_only(BENCHMARKS_ON_ONE_SERVER).mark
    if standalone_only is not None:
        item.add_marker(pytest.mark.skip(reason=f"standalone only: {_marker_reason(standalone_only)}"))
    elif cluster_only is None and ((params.get("handler") or params.get("handler_factory")) == "RedisCache"
                                   or _only_baseline(item)):
        item.add_marker(pytest.mark.skip(reason=BASELINE_ON_CLUSTER))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_only", default=False):  # run the benchmarks, list nothing else as skipped
        others = [item for item in items if "benchmark" not in getattr(item, "fixturenames", ())]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [item for item in items if "benchmark" in getattr(item, "fixturenames", ())]
    deviations = load_deviations()
    infos = config.stash[POOL].infos
    for item in items:
        if not item.nodeid.startswith("certification/"):
            continue
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        info = infos.get(params.get("server", ""))
        if info is not None:
            _skip_for_topology(item, info, params)
        suite = next((m.name for m in item.iter_markers() if m.name in SUITES), None)
        handler = (params.get("handler") or params.get("handler_factory")
                   or ("RedisCache" if _only_baseline(item) else "ValkeyCache"))
        server = params.get("server", "*")  # "*": a test that needs no server counts for every server of the run
        item.user_properties.extend([("suite", suite), ("handler", handler), ("server", server)])
        name = getattr(item, "originalname", item.name)
        topology = info.topology if info is not None else Topology.STANDALONE.value
        for dev_id, dev in deviations.items():
            if (name in dev["tests"] and handler == dev["handler"] and server in dev.get("servers", [server])
                    and topology in dev.get("topologies", [Topology.STANDALONE.value])):
                item.user_properties.append(("deviation", dev_id))
                reason = f"known deviation {dev_id}: {dev['explanation']}"
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> ServerInfo:
    """The server under certification (one of the run's servers)."""
    return request.config.stash[POOL].infos[request.param]


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test (nor xdist worker, nor run) shares."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    digest = hashlib.blake2b(request.node.nodeid.encode(), digest_size=6).hexdigest()
    return f"cert:{RUN_ID}:{worker}:{digest}:"


@pytest.fixture
def raw(server: ServerInfo) -> Iterator[valkey.Valkey]:
    """A plain valkey-py client on the server, to look at what the handlers stored (a ValkeyCluster on a cluster)."""
    client = raw_client(server)
    yield client
    client.close()


def _on_own_prefix(kind: str, server: ServerInfo, prefix: str, raw: valkey.Valkey) -> Iterator[Any]:
    h = make_handler(kind, server, prefix)
    try:
        yield h
    finally:
        close_handler(h)
        scan_delete(raw, prefix)


@pytest.fixture
def handler(request: pytest.FixtureRequest, server: ServerInfo, key_prefix: str, raw: valkey.Valkey) -> Iterator[Any]:
    """Each handler in turn (ours, then the baseline), on this test's own prefix; its keys are removed after."""
    yield from _on_own_prefix(request.param, server, key_prefix, raw)


@pytest.fixture
def ours(server: ServerInfo, key_prefix: str, raw: valkey.Valkey) -> Iterator[Any]:
    """ValkeyCache alone, for rules the baseline does not offer."""
    yield from _on_own_prefix("ValkeyCache", server, key_prefix, raw)


@pytest.fixture
def baseline(server: ServerInfo, key_prefix: str, raw: valkey.Valkey) -> Iterator[Any]:
    """Emmett's RedisCache on the same prefix as ``ours``."""
    yield from _on_own_prefix("RedisCache", server, key_prefix, raw)
