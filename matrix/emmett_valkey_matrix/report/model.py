"""The report as data: frozen dataclasses that every renderer reads and the JSON document mirrors.

Field names here are the field names of the ``emmett-valkey-report/1`` JSON document
(``schemas/report-1.schema.json``); renaming one is a schema change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..contract import BASELINE, DISTRIBUTION, HANDLERS, OURS, OUTCOMES, RESULTS_SCHEMA, SUITES
from ..results import ATTEMPT_STATUSES as ATTEMPT_STATUSES
from ..run_id import Topology
from ..targets import Target

REPORT_SCHEMA = "emmett-valkey-report/1"
__all__ = ["BASELINE", "DISTRIBUTION", "HANDLERS", "OURS", "OUTCOMES", "RESULTS_SCHEMA", "SUITES"]  # and below

CERTIFIED = "certified"
CERTIFIED_WITH_DEVIATIONS = "certified_with_deviations"
FAILED = "failed"
PARTIAL = "partial"
NOT_RUN = "not_run"
VERDICT_LABELS = {
    CERTIFIED: "certified",
    CERTIFIED_WITH_DEVIATIONS: "certified with deviations",
    FAILED: "failed",
    PARTIAL: "partial",
    NOT_RUN: "not run",
}


@dataclass(frozen=True)
class Counts:
    """How many tests ended in each outcome."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0
    error: int = 0

    def add(self, outcome: str) -> Counts:
        """Return these counts with one more ``outcome``."""
        return replace(self, **{outcome: getattr(self, outcome) + 1})

    @property
    def total(self) -> int:
        """All tests counted."""
        return self.passed + self.failed + self.skipped + self.xfailed + self.xpassed + self.error


@dataclass(frozen=True)
class Verdict:
    """Whether our handler may be run on one server, and why."""

    code: str
    label: str
    reason: str


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One node of a cluster run: where it listened, its role, its slot ranges (inclusive) and its build."""

    node_id: str | None
    host: str | None
    port: int | None
    role: str  # primary | replica | down (as the run left it)
    slots: tuple[tuple[int, int], ...]
    replica_of: str | None  # node id of its primary
    product: str | None
    version: str | None


@dataclass(frozen=True)
class ClusterInfo:
    """The cluster a run used: how many primaries and replicas, and every node."""

    primaries: int
    replicas: int
    nodes: tuple[ClusterNodeInfo, ...]


@dataclass(frozen=True)
class Provenance:
    """Where a column's figures come from: the server build, the run and its environment."""

    product: str | None
    version: str | None
    build_id: str | None
    git_sha: str | None
    malloc: str | None
    tls: bool | None
    source_kind: str | None
    source_detail: str | None
    source_sha256: str | None
    binary_sha256: str | None
    url: str | None
    options: tuple[str, ...]
    server_started_at: str | None
    run_started_at: str | None
    run_finished_at: str | None
    duration_s: float | None
    command: tuple[str, ...]
    python: str | None
    platform: str | None
    packages: dict[str, str | None]
    topology: Topology = Topology.STANDALONE  # how the server ran (from the result id)
    cluster: ClusterInfo | None = None  # the nodes, for a cluster run
    host: str | None = None  # the machine's network name (result files before it was recorded have none)
    arch: str | None = None  # platform.machine(): x86_64, aarch64
    cpus: int | None = None
    machine: str | None = None  # the name of its machine in Report.machines


@dataclass(frozen=True)
class Attempt:
    """A run that was not a whole certification: a selection of tests, a server not provided, or one refused."""

    status: str  # partial | not_run | refused
    reason: str | None
    file: str
    finished_at: str | None
    ran: int | None  # partial: tests run ...
    of: int | None  # ... of the whole certification's (None when unknown)


@dataclass(frozen=True)
class Column:
    """One catalogued server on one topology: a column of the grid.

    ``id`` is the result id (``valkey91``, or ``valkey91-cluster`` for a cluster of that build), ``base_id`` the
    catalogue id and ``topology`` ``standalone`` or ``cluster`` (``run_id.RunId``).
    """

    id: str
    product: str
    product_name: str
    line: str
    version: str | None
    label: str
    status: str  # completed | partial | not_run | refused | error | missing
    verdict: Verdict
    ours: Counts
    baseline: Counts
    suites_missing: tuple[str, ...]
    source_file: str | None
    provenance: Provenance | None
    attempt: Attempt | None = None  # a newer run than the certification shown that was not one
    topology: Topology = Topology.STANDALONE
    base_id: str = ""
    machine: str | None = None  # the name (in Report.machines) of the machine its result file came from


@dataclass(frozen=True)
class Machine:
    """A machine (or CI runner) that result files came from, as their ``environment`` block records it.

    Two files come from one machine when host, platform, architecture, CPU count and Python agree. ``name`` is the
    host, else ``machine <n>`` in column order (``<host> #<n>`` when one host ran two environments).
    """

    name: str
    host: str | None
    platform: str | None
    arch: str | None
    cpus: int | None
    python: str | None
    columns: tuple[str, ...]  # ids of the columns whose result files it wrote


@dataclass(frozen=True)
class Cell:
    """Counts of one suite and handler on one server; ``counts`` is null when nothing ran there."""

    server_id: str
    state: str  # pass | fail | deviation | skip | empty | not_run
    counts: Counts | None


@dataclass(frozen=True)
class GridRow:
    """One suite for one handler, across all servers."""

    suite: str
    handler: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class ServerOutcome:
    """A test's outcome on one server; ``outcome`` is null when the test is absent there."""

    server_id: str
    outcome: str | None


@dataclass(frozen=True)
class Difference:
    """A test (same name, parameters and handler) whose outcome is not the same on every server."""

    test: str
    suite: str
    handler: str
    outcomes: tuple[ServerOutcome, ...]


@dataclass(frozen=True)
class Deviation:
    """A listed deviation from expected behaviour and where it did (xfailed) or did not (xpassed) occur."""

    id: str
    handler: str
    explanation: str | None
    tests: tuple[str, ...]
    occurred_on: tuple[str, ...]
    not_occurred_on: tuple[str, ...]


@dataclass(frozen=True)
class Failure:
    """One test that did not end as expected, with the command that reruns exactly it on that server."""

    server_id: str
    suite: str
    handler: str
    nodeid: str
    outcome: str
    message: str | None
    rerun: str
    deviation: str | None


@dataclass(frozen=True)
class OpLatency:
    """Latency of one operation and whether its p99 stays under what is expected of it (null: no expectation)."""

    op: str
    n: int | None
    p50_ms: float | None
    p99_ms: float | None
    expected_p99_ms: float | None
    met: bool | None


@dataclass(frozen=True)
class LatencyRow:
    """Latencies of one handler on one server."""

    server_id: str
    handler: str
    ops: tuple[OpLatency, ...]


RATIO_STATUSES = ("met", "missed", "not_judged", "no_target")


@dataclass(frozen=True)
class RatioRow:
    """One benchmark figure of one server (``emmett_valkey_matrix.bench.Ratio``) and whether it meets its target.

    ``figure`` is its label and ``key`` its stable key (``bench.FIGURES``). ``status``: ``met`` / ``missed``
    (judged against ``bound``, shown as ``target``), ``not_judged`` (a check-size run: there is a target but the
    figure is not judged), ``no_target`` (shown for information). ``unit``: ``ratio`` (time of ours / time of the
    other side, below 1 is faster), ``speedup`` (times faster) or ``ms``. ``headline``: the key of the headline
    figure this row counts towards, if any.
    """

    figure: str
    key: str
    case: str
    unit: str
    value: float
    q1: float | None
    q3: float | None
    beside: float | None
    target: str | None
    bound: Target | None
    met: bool | None
    status: str
    note: str
    headline: str | None


@dataclass(frozen=True)
class BenchmarkRun:
    """The benchmark figures of one catalogued server, or why there are none.

    ``status``: ``figures`` (ratio rows below), ``no_figures`` (a pytest-benchmark file without the paired
    figures the benchmark suite records), ``rejected`` (the file was not used, see ``inputs``), ``missing`` (no
    benchmark file). ``size``: ``full`` or ``check`` (a ``--benchmark-disable`` run, not judged).
    """

    server_id: str
    file: str | None
    status: str
    size: str | None
    judged: bool
    met: int
    missed: int
    not_judged: int
    ratios: tuple[RatioRow, ...]


@dataclass(frozen=True)
class HeadlineCell:
    """A headline figure on one server: its worst case (``value``, ``case``) over ``cases`` rows."""

    server_id: str
    value: float | None
    beside: float | None
    case: str | None
    cases: int
    status: str  # met | missed | not_judged | not_measured


@dataclass(frozen=True)
class Headline:
    """One of the benchmark targets, across every server that has figures (``cells`` in column order)."""

    key: str
    label: str
    unit: str
    target: str
    bound: Target
    beside_label: str | None
    cells: tuple[HeadlineCell, ...]


@dataclass(frozen=True)
class InputFile:
    """What the report did with one input file: accepted, rejected (and why) or superseded."""

    file: str
    kind: str  # results | benchmarks | migration
    server_id: str | None
    status: str  # accepted | rejected | superseded
    problem: str | None  # malformed | foreign_schema | invalid | foreign_handler | stale | unknown_server |
    #                      mismatch | superseded
    detail: str | None


@dataclass(frozen=True)
class MigrationCell:
    """One measured move of a cache between two servers (``reports/results/migration.json``)."""

    source: str
    target: str
    method: str  # dump_restore | rdb_file | replication
    variant: str | None  # strict | relaxed | None (a target without rdb-version-check)
    outcome: str  # works | refused | partial
    detail: str


@dataclass(frozen=True)
class Report:
    """Everything the documents show, in display order."""

    generated_at: str
    handler_version: str | None
    columns: tuple[Column, ...]
    grid: tuple[GridRow, ...]
    differences: tuple[Difference, ...]
    deviations: tuple[Deviation, ...]
    failures: tuple[Failure, ...]
    latency: tuple[LatencyRow, ...]
    benchmark_runs: tuple[BenchmarkRun, ...]
    benchmark_headlines: tuple[Headline, ...]
    inputs: tuple[InputFile, ...]
    expectations: dict[str, float] = field(default_factory=dict)
    migration: tuple[MigrationCell, ...] = ()
    machines: tuple[Machine, ...] = ()  # more than one: latency and durations across columns compare machines too
    schema: str = REPORT_SCHEMA
