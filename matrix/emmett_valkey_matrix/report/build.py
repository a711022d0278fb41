"""``build_report``: the pure function from result files (+ catalogue, benchmarks) to a ``Report``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..catalogue import Entry, load_catalogue
from ..migration import MIGRATION_SCHEMA
from ..results import certifies
from ..run_id import TOPOLOGIES, RunId, Topology
from . import benchmark_figures, compare, migration, perf
from .load import check_result, origin_of, recency_key
from .model import (
    ATTEMPT_STATUSES,
    BASELINE,
    HANDLERS,
    OURS,
    SUITES,
    Attempt,
    Cell,
    Column,
    Counts,
    Difference,
    GridRow,
    InputFile,
    Machine,
    Provenance,
    Report,
    Verdict,
)
from .topology import cluster_info
from .verdict import partial_text, unexplained, verdict_for

Doc = Mapping[str, Any]


def _file_name(doc: Doc, fallback: str) -> str:
    return str(origin_of(doc).get("file") or fallback)


def _select(
    results: Sequence[Doc], servers: Mapping[str, Entry], handler_version: str | None
) -> tuple[dict[str, Doc], dict[str, Doc], list[InputFile]]:
    """Per server id, the newest certification (else the newest attempt) and an attempt newer than it.

    A certification is a run of the whole suite (``completed``, or ``error``); an attempt is anything less
    (``partial``, ``not_run``, ``refused``). An attempt never stands in for a certification: it is shown beside the
    newest one, or alone when there is none. Every input is recorded: accepted, rejected or superseded.
    """
    inputs: list[InputFile] = []
    candidates: dict[str, list[Doc]] = {}
    for index, doc in enumerate(results):
        name = _file_name(doc, f"results[{index}]")
        sid = doc.get("server_id")
        sid = sid if isinstance(sid, str) else None
        problem = check_result(doc, servers, handler_version)
        if problem is not None:
            inputs.append(InputFile(name, "results", sid, "rejected", *problem))
        elif sid is not None:
            candidates.setdefault(sid, []).append(doc)
    chosen: dict[str, Doc] = {}
    attempts: dict[str, Doc] = {}
    for sid, docs in candidates.items():
        ordered = sorted(docs, key=recency_key, reverse=True)
        runs = [d for d in ordered if d["status"] not in ATTEMPT_STATUSES]
        tried = [d for d in ordered if d["status"] in ATTEMPT_STATUSES]
        chosen[sid] = (runs or tried)[0]
        used = [chosen[sid]]
        if runs and tried and recency_key(tried[0]) > recency_key(runs[0]):
            attempts[sid] = tried[0]
            used.append(tried[0])
        winner = _file_name(chosen[sid], sid)
        for doc in ordered:
            if any(doc is u for u in used):
                inputs.append(InputFile(_file_name(doc, sid), "results", sid, "accepted", None, None))
            else:
                detail = f"an older run; {winner} is newer"
                inputs.append(InputFile(_file_name(doc, sid), "results", sid, "superseded", "superseded", detail))
    return chosen, attempts, inputs


def _attempt(doc: Doc | None) -> Attempt | None:
    if doc is None:
        return None
    selection = doc.get("selection") or {}
    return Attempt(doc["status"], doc.get("reason"), _file_name(doc, doc["server_id"]), doc.get("finished_at"),
                   selection.get("ran"), selection.get("of"))


def _counts(doc: Doc | None, handler: str, suite: str | None = None) -> Counts:
    counts = Counts()
    if doc is None or not certifies(doc["status"]):
        return counts
    for test in doc["tests"]:
        if test["handler"] == handler and (suite is None or test["suite"] == suite):
            counts = counts.add(test["outcome"])
    return counts


def _sha256_text(value: object) -> str | None:
    """One sha256, or ``file sha256; ...`` for a source that downloaded several files (Debian's .debs)."""
    if isinstance(value, Mapping):
        return "; ".join(f"{name} {digest}" for name, digest in sorted(value.items()))
    return None if value is None else str(value)


def _git_sha(value: object) -> str | None:
    """Return the server's git sha, or None when it reports zeros (``00000000``, ``0``: not built from git)."""
    text = "" if value is None else str(value).strip()
    return None if not text.strip("0") else text


def _provenance(doc: Doc) -> Provenance | None:
    server = doc.get("server")
    if not isinstance(server, Mapping):
        return None
    source = server.get("source") or {}
    env = doc.get("environment") or {}
    return Provenance(
        product=server.get("product"),
        version=server.get("version"),
        build_id=server.get("build_id"),
        git_sha=_git_sha(server.get("git_sha")),
        malloc=server.get("malloc"),
        tls=server.get("tls"),
        source_kind=source.get("kind"),
        source_detail=source.get("detail"),
        source_sha256=_sha256_text(source.get("sha256")),
        binary_sha256=server.get("binary_sha256"),
        url=server.get("url"),
        options=tuple(server.get("options") or ()),
        server_started_at=server.get("started_at"),
        run_started_at=doc.get("started_at"),
        run_finished_at=doc.get("finished_at"),
        duration_s=doc.get("duration_s"),
        command=tuple(doc.get("command") or ()),
        python=env.get("python"),
        platform=env.get("platform"),
        packages=dict(sorted((env.get("packages") or {}).items())),
        topology=RunId.read(str(doc.get("server_id"))).topology,
        cluster=cluster_info(server),
        host=env.get("host"),
        arch=env.get("machine"),
        cpus=env.get("cpus"),
    )


MachineKey = tuple[object, ...]


def _machine_key(doc: Doc) -> MachineKey:
    env = doc.get("environment") or {}
    return tuple(env.get(k) for k in ("host", "platform", "machine", "cpus", "python"))


def _machines(chosen: Mapping[str, Doc], order: Sequence[str]) -> tuple[dict[str, str], tuple[Machine, ...]]:
    """Group the columns shown by the machine their result file records; name each machine.

    Returns the machine name per column id and the machines in order of their first column.
    """
    groups: dict[MachineKey, list[str]] = {}
    for sid in order:
        if sid in chosen:
            groups.setdefault(_machine_key(chosen[sid]), []).append(sid)
    hosts = [key[0] for key in groups]
    machines, names = [], {}
    for index, (key, ids) in enumerate(groups.items(), start=1):
        host, platform, arch, cpus, python = key
        if not host:
            name = f"machine {index}"
        elif hosts.count(host) > 1:
            name = f"{host} #{hosts[:index].count(host)}"
        else:
            name = str(host)
        machines.append(Machine(name, _str(host), _str(platform), _str(arch), cpus if isinstance(cpus, int) else None,
                                _str(python), tuple(ids)))
        names.update(dict.fromkeys(ids, name))
    return names, tuple(machines)


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _column(server: Entry, topology: Topology, doc: Doc | None, attempt: Doc | None = None,
            machine: str | None = None) -> Column:
    ours = _counts(doc, OURS)
    completed = doc is not None and certifies(doc["status"])
    missing = tuple(s for s in SUITES if completed and _counts(doc, OURS, s).total == 0)
    provenance = _provenance(doc) if doc is not None else None
    if provenance is not None:
        provenance = replace(provenance, machine=machine)
    version = provenance.version if provenance else None
    product_name = server.product.capitalize()  # as the catalogue's Entry.display names it
    sid = str(RunId(server.id, topology))
    label = f"{product_name} {version}" if version else f"{server.display}.x"
    verdict = verdict_for(doc, ours, missing)
    if doc is None and topology is not Topology.STANDALONE:
        verdict = Verdict(verdict.code, verdict.label, f"no result file: not run on a {topology} (tox -e {sid})")
    return Column(
        id=sid,
        product=server.product,
        product_name=product_name,
        line=server.line,
        version=version,
        label=label if topology is Topology.STANDALONE else f"{label} {topology}",
        status=doc["status"] if doc is not None else "missing",
        verdict=_with_attempt(verdict, attempt),
        ours=ours,
        baseline=_counts(doc, BASELINE),
        suites_missing=missing,
        source_file=_file_name(doc, server.id) if doc is not None else None,
        provenance=provenance,
        attempt=_attempt(attempt),
        topology=topology,
        base_id=server.id,
        machine=machine,
    )


def _with_attempt(verdict: Verdict, attempt: Doc | None) -> Verdict:
    """Name, after the verdict of the certification shown, the newer attempt that did not replace it."""
    if attempt is None:
        return verdict
    what = partial_text(attempt) if attempt["status"] == "partial" else attempt["status"].replace("_", " ")
    when = attempt.get("finished_at") or "?"
    note = f"a newer attempt ({when}, {_file_name(attempt, attempt['server_id'])}) was {what}, not a certification"
    reason = attempt.get("reason")
    return Verdict(verdict.code, verdict.label, f"{verdict.reason} · {note}" + (f": {reason}" if reason else ""))


def _cell(column: Column, doc: Doc | None, suite: str, handler: str) -> Cell:
    if not certifies(column.status) or doc is None:
        return Cell(column.id, "not_run", None)
    counts = _counts(doc, handler, suite)
    explanations = doc.get("deviations") or {}
    lost = any(unexplained(t, explanations) for t in doc["tests"] if t["handler"] == handler and t["suite"] == suite)
    if counts.total == 0:
        state = "empty"
    elif counts.failed or counts.error or lost:
        state = "fail"
    elif counts.xfailed or counts.xpassed:
        state = "deviation"
    elif counts.passed == 0:
        state = "skip"
    else:
        state = "pass"
    return Cell(column.id, state, counts)


def _benchmark_inputs(
    benchmarks: Mapping[str, Doc], servers: Mapping[str, Entry], order: Sequence[str]
) -> tuple[list[tuple[str, Doc]], list[InputFile]]:
    usable, inputs = [], []
    for sid, doc in sorted(benchmarks.items()):
        name = _file_name(doc, f"{sid}.json")
        error = origin_of(doc).get("error")
        if error:
            inputs.append(InputFile(name, "benchmarks", sid, "rejected", "malformed", str(error)))
        elif RunId.read(sid).base not in servers:
            detail = f"server id {sid!r} is not in the catalogue"
            inputs.append(InputFile(name, "benchmarks", sid, "rejected", "unknown_server", detail))
        elif not isinstance(doc.get("benchmarks"), list):
            detail = "no 'benchmarks' list: not pytest-benchmark JSON"
            inputs.append(InputFile(name, "benchmarks", sid, "rejected", "invalid", detail))
        else:
            usable.append((sid, doc))
            inputs.append(InputFile(name, "benchmarks", sid, "accepted", None, None))
    return sorted(usable, key=lambda item: order.index(item[0])), inputs


def _columns(servers: Iterable[Entry], chosen: Mapping[str, Doc], attempts: Mapping[str, Doc],
             machine_of: Mapping[str, str]) -> tuple[Column, ...]:
    """Every catalogue id standalone, in catalogue order, then every one on a cluster (``<id>-cluster``)."""
    return tuple(
        _column(s, topology, chosen.get(sid), attempts.get(sid), machine_of.get(sid))
        for topology in TOPOLOGIES
        for s in servers
        for sid in (str(RunId(s.id, topology)),)
    )


def _beside(columns: Sequence[Column], server_id: str) -> tuple[int, int]:
    """Order a cluster run right after the standalone run of the same catalogue id."""
    column = next(c for c in columns if c.id == server_id)
    bases = [c.base_id for c in columns if c.topology == Topology.STANDALONE]
    return bases.index(column.base_id), TOPOLOGIES.index(column.topology)


def _differences(columns: Sequence[Column], completed: Sequence[tuple[str, Doc]]) -> tuple[Difference, ...]:
    """Differences between versions within each topology: standalone servers together, clusters together.

    Across topologies a test skipped as standalone-only on a cluster would differ by design, not by version.
    """
    out: list[Difference] = []
    for topology in TOPOLOGIES:
        ids = {c.id for c in columns if c.topology == topology}
        out += compare.differences([(sid, doc) for sid, doc in completed if sid in ids])
    return tuple(out)


def build_report(
    results: list[dict[str, Any]],
    catalogue: Mapping[str, Entry] | None,
    benchmarks: dict[str, dict[str, Any]] | None,
    *,
    generated_at: str,
    handler_version: str | None = None,
) -> Report:
    """Turn result documents into a report; same inputs, same report.

    ``results`` are parsed result files (as ``load.read_results`` gives them, or built in memory); files that
    are malformed, of another schema, handler or handler version (when ``handler_version`` is given), or of
    an id not in ``catalogue`` (``<id>`` or ``<id>-cluster``) are listed as rejected, never merged. Of two files
    for one id the newest wins.
    ``catalogue`` is ``catalogue.load_catalogue()``'s mapping (id to entry, in its order: two columns each, every
    id standalone first, then every id on a cluster); None reads the packaged one.
    ``benchmarks`` maps a server id to its pytest-benchmark JSON; each usable one is turned into figures by
    ``emmett_valkey_matrix.bench.ratios`` (``benchmark_runs``, one per column) and the targets' headline figures
    across servers (``benchmark_headlines``).
    """
    by_id = dict(load_catalogue() if catalogue is None else catalogue)
    moves = [doc for doc in results if doc.get("schema") == MIGRATION_SCHEMA]  # reports/results/migration.json
    chosen, attempts, inputs = _select([d for d in results if d.get("schema") != MIGRATION_SCHEMA], by_id,
                                       handler_version)
    migration_cells, migration_inputs = migration.select(moves, by_id, handler_version)
    inputs += migration_inputs
    servers = tuple(by_id.values())
    machine_of, machines = _machines(chosen, [str(RunId(s.id, t)) for t in TOPOLOGIES for s in servers])
    columns = _columns(servers, chosen, attempts, machine_of)
    grid = tuple(
        GridRow(suite, handler, tuple(_cell(c, chosen.get(c.id), suite, handler) for c in columns))
        for suite in SUITES
        for handler in HANDLERS
    )
    completed = [(c.id, chosen[c.id]) for c in columns if certifies(c.status)]
    side_by_side = sorted(completed, key=lambda item: _beside(columns, item[0]))  # each cluster after its server
    bench_docs, bench_inputs = _benchmark_inputs(benchmarks or {}, by_id, [c.id for c in columns])
    bench_runs = benchmark_figures.runs(
        [c.id for c in columns],
        [(sid, doc, _file_name(doc, f"{sid}.json")) for sid, doc in bench_docs],
        [i.server_id for i in bench_inputs if i.status == "rejected" and i.server_id is not None],
    )
    return Report(
        generated_at=generated_at,
        handler_version=handler_version,
        columns=columns,
        grid=grid,
        differences=_differences(columns, completed),
        deviations=compare.deviations(completed),
        failures=compare.failures(completed),
        latency=perf.latency(side_by_side),
        benchmark_runs=bench_runs,
        benchmark_headlines=benchmark_figures.headlines(bench_runs),
        inputs=tuple(sorted(inputs + bench_inputs, key=lambda i: (i.kind, i.status != "accepted", i.file))),
        expectations=dict(perf.EXPECTED_P99_MS),
        migration=migration_cells,
        machines=machines,
    )
