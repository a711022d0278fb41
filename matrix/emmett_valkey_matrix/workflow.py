"""The CI workflow ``.github/workflows/matrix.yml``, generated from the catalogue and the envs ``tox.ini`` declares.

One job per certification env: ``<id>`` for every catalogue id (its tox env is required), ``<id>-cluster`` for every
catalogue id whose cluster env ``tox.ini`` declares, and ``migration`` when ``tox.ini`` declares that env. Each job
runs ``tox -e <env>`` and uploads ``reports/results/`` as the artifact ``results-<env>``; the ``report`` job (needs
all of them, runs always) downloads every such artifact into ``reports/results`` and runs ``tox -e report``. The
``checks`` job runs ``tox -e lint,types,tests``.

Where a job runs: in the ``python:3.11-bookworm`` container, where wheel and Debian sources are fetched as on a
Debian machine (its apt sources name the Debian archive, its keyring verifies it, gcc and make build sdists). A
standalone id whose catalogue sources are all builds from source (``sdist``, ``tarball``; valkey72 today) is certified
against its compose service instead, on the runner itself where Docker is: ``docker compose ... up -d --wait <id>``,
then ``CERTIFY_<ID>_URL`` at the service's catalogued port (a user-given URL binds: provisioning checks that the server
answering is of the id's product and line). Cluster jobs always start their nodes from a binary, so they stay in the
container and build from source where that is the only source.

Regenerate after editing the catalogue or tox.ini: ``emmett-valkey-matrix workflow --write``; ``--check`` says
whether the committed file is current, and ``matrix/tests/test_workflow.py`` fails when it is not.
"""

from __future__ import annotations

import configparser
import difflib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .catalogue import Entry, load_catalogue
from .results import RESULTS_DIR as RESULTS_PATH
from .run_id import TOPOLOGIES, RunId, Topology
from .sources.compose import COMPOSE_FILE, compose_url, up_argv
from .sources.user import env_name

WORKFLOW_PATH = Path(".github/workflows/matrix.yml")  # relative to the checkout's root
CHECKOUT_CATALOGUE = Path("matrix/emmett_valkey_matrix/catalogue.toml")
CONTAINER = "python:3.11-bookworm"
PYTHON = "3.11"
BUILD_KINDS = frozenset({"sdist", "tarball"})  # sources that compile the server: minutes, and a toolchain
MIGRATION_ENV = "migration"
RESULTS_DIR = str(RESULTS_PATH)  # as the workflow text names it
ARTIFACT_PREFIX = "results-"
TIMEOUT_MIN = 45
# Actions on the node24 runtime (actionlint flags the node20 majors, v4 of checkout, cache and the artifact actions)
CHECKOUT = "actions/checkout@v5"
SETUP_PYTHON = "actions/setup-python@v6"
CACHE = "actions/cache@v5"
UPLOAD = "actions/upload-artifact@v6"
DOWNLOAD = "actions/download-artifact@v7"


class WorkflowError(ValueError):
    """The catalogue and tox.ini disagree, so no workflow can cover both."""


@dataclass(frozen=True)
class Job:
    """One certification job: the tox env it runs, and how its server is provided."""

    env: str
    kind: str  # a topology (standalone, cluster: also the tox label of its envs) or migration
    entry: Entry | None  # the catalogue entry (None for migration)
    compose: bool  # certify against the compose service (on the runner, with Docker)

    @property
    def artifact(self) -> str:
        """The name of the artifact holding this job's result files."""
        return f"{ARTIFACT_PREFIX}{self.env}"


# -- tox.ini ----------------------------------------------------------------------------------------------------------

_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(name: str) -> list[str]:
    """Expand tox's generative names: ``bench-{a,b}`` -> ``bench-a``, ``bench-b`` (every brace group, in order)."""
    groups = [[part.strip() for part in g.split(",")] for g in _BRACES.findall(name)]
    pieces = _BRACES.split(name)[::2]
    out = []
    for choice in itertools.product(*groups):
        text = pieces[0] + "".join(c + p for c, p in zip(choice, pieces[1:], strict=True))
        out.append(re.sub(r"-{2,}", "-", text).strip("-"))
    return out


def tox_envs(tox_ini: Path) -> dict[str, frozenset[str]]:
    """Every env ``tox_ini`` declares (``[testenv:...]`` sections, expanded) with its ``labels``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(tox_ini.read_text(encoding="utf-8"), source=str(tox_ini))
    except (OSError, configparser.Error) as exc:
        raise WorkflowError(f"cannot read {tox_ini}: {exc}") from exc
    envs: dict[str, frozenset[str]] = {}
    for section in parser.sections():
        if not section.startswith("testenv:"):
            continue
        labels = frozenset(filter(None, re.split(r"[\s,]+", parser.get(section, "labels", fallback=""))))
        for env in expand(section.partition(":")[2]):
            envs[env] = envs.get(env, frozenset()) | labels
    return envs


# -- the jobs ---------------------------------------------------------------------------------------------------------


def needs_compose(entry: Entry) -> bool:
    """Say whether every catalogued source builds the server from source: CI certifies the compose service instead."""
    return all(source.kind in BUILD_KINDS for source in entry.sources)


def jobs(catalogue: Mapping[str, Entry], envs: Mapping[str, frozenset[str]]) -> list[Job]:
    """Return the certification jobs, in catalogue order: standalone ids, then cluster envs, then migration.

    Raises :class:`WorkflowError` when a catalogue id has no tox env, or tox.ini labels an env ``matrix`` or
    ``cluster`` that is no catalogue id (or id + ``-cluster``): the workflow would miss a server or certify one the
    catalogue does not know.
    """
    missing = [sid for sid in catalogue if sid not in envs]
    if missing:
        raise WorkflowError(f"catalogue ids without a tox env in tox.ini: {', '.join(missing)}")
    known = {str(RunId(sid, topology)) for sid in catalogue for topology in TOPOLOGIES}
    labels_of_runs = {"matrix"} | {t.value for t in TOPOLOGIES if t is not Topology.STANDALONE}  # tox -m cluster
    stray = sorted(env for env, labels in envs.items() if labels & labels_of_runs and env not in known)
    if stray:
        raise WorkflowError(f"tox envs labelled matrix/cluster that are no catalogue id: {', '.join(stray)}")
    out = [Job(sid, Topology.STANDALONE.value, entry, needs_compose(entry)) for sid, entry in catalogue.items()]
    for topology in (t for t in TOPOLOGIES if t is not Topology.STANDALONE):  # where tox.ini declares the env
        out += [Job(str(RunId(sid, topology)), topology.value, entry, False) for sid, entry in catalogue.items()
                if str(RunId(sid, topology)) in envs]
    if MIGRATION_ENV in envs:
        out.append(Job(MIGRATION_ENV, "migration", None, False))
    return out


# -- YAML text --------------------------------------------------------------------------------------------------------

HEADER = """\
# GENERATED by `emmett-valkey-matrix workflow --write` from matrix/emmett_valkey_matrix/catalogue.toml and tox.ini:
# do not edit by hand (matrix/tests/test_workflow.py fails when this file and the generator disagree).
# One job per certification env (catalogue id, cluster topology, migration), each uploading its result files;
# the report job gathers them all into one compatibility report.
name: matrix

on:
  push:
  pull_request:
  workflow_dispatch:

permissions:
  contents: read

jobs:
"""

CACHE_STEP = """\
      - name: server binaries cache
        uses: {cache}
        with:
          path: ~/.cache/emmett-valkey
          key: emmett-valkey-servers-{env}-${{{{ hashFiles('matrix/emmett_valkey_matrix/catalogue.toml') }}}}
"""


def _setup(container: bool) -> list[str]:
    lines = [f"      - uses: {CHECKOUT}"]
    if not container:
        lines += [f"      - uses: {SETUP_PYTHON}", "        with:", f'          python-version: "{PYTHON}"']
    lines += ["      - name: tox", '        run: python -m pip install "tox>=4.11"']
    return lines


def _runs_on(container: bool) -> list[str]:
    lines = ["    runs-on: ubuntu-latest", f"    timeout-minutes: {TIMEOUT_MIN}"]
    if container:
        lines += [f"    container: {CONTAINER}"]
    return lines


def _describe(job: Job) -> str:
    if job.kind == "migration":
        return "migration"
    assert job.entry is not None
    topology = "" if job.kind == Topology.STANDALONE.value else f" {job.kind}"
    via = " (compose service)" if job.compose else ""
    return f"{job.entry.display}{topology}{via}"


def _job(job: Job) -> list[str]:
    lines = [f"  {job.env}:", f"    name: {_describe(job)}", *_runs_on(not job.compose), "    steps:"]
    lines += _setup(not job.compose)
    if job.compose:
        assert job.entry is not None
        up = " ".join(up_argv(job.entry.id, compose_file=COMPOSE_FILE))
        down = " ".join(["docker", "compose", "-f", str(COMPOSE_FILE), "down", "-v", job.entry.id])
        lines += [f"      - name: start the {job.entry.id} compose service", f"        run: {up}",
                  f"      - name: certify {job.env}", f"        run: tox -e {job.env}", "        env:",
                  f"          {env_name(job.entry.id, 'URL')}: {compose_url(job.entry)}",
                  "      - name: stop the compose service", "        if: always()", f"        run: {down}"]
    else:
        lines += CACHE_STEP.format(cache=CACHE, env=job.env).rstrip("\n").split("\n")
        lines += [f"      - name: certify {job.env}", f"        run: tox -e {job.env}"]
    lines += ["      - name: upload the result files", "        if: always()", f"        uses: {UPLOAD}",
              "        with:", f"          name: {job.artifact}", f"          path: {RESULTS_DIR}/",
              "          if-no-files-found: error"]
    return lines


def _checks() -> list[str]:
    return [
        "  checks:", "    name: lint, types, tests", *_runs_on(True), "    steps:", *_setup(True)[:1],
        "      - name: system packages (chromium for the report's rendering test)",
        "        run: apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core",
        *_setup(True)[1:],
        *CACHE_STEP.format(cache=CACHE, env="checks").rstrip("\n").split("\n"),
        "      - name: lint, types, tests", "        run: tox -e lint,types,tests",
    ]


def _report(certify: Sequence[Job]) -> list[str]:
    lines = ["  report:", "    name: compatibility report", "    needs:"]
    lines += [f"      - {job.env}" for job in certify]
    lines += ["    if: always()", *_runs_on(False), "    steps:", *_setup(False)]
    lines += ["      - name: every job's result files", f"        uses: {DOWNLOAD}", "        with:",
              f"          pattern: {ARTIFACT_PREFIX}*", f"          path: {RESULTS_DIR}",
              "          merge-multiple: true",
              "      - name: render the report", "        run: tox -e report",
              "      - name: the report as the job summary", "        if: always()",
              '        run: cat reports/compatibility.md >> "$GITHUB_STEP_SUMMARY"',
              "      - name: upload the report", "        if: always()", f"        uses: {UPLOAD}",
              "        with:", "          name: compatibility-report", "          path: |",
              "            reports/compatibility.html", "            reports/compatibility.json",
              "            reports/compatibility.md", "          if-no-files-found: error"]
    return lines


def render(catalogue: Mapping[str, Entry], envs: Mapping[str, frozenset[str]]) -> str:
    """Return the workflow's text for ``catalogue`` and tox.ini's ``envs``."""
    certify = jobs(catalogue, envs)
    blocks = [_checks(), *(_job(job) for job in certify), _report(certify)]
    return HEADER + "\n\n".join("\n".join(block) for block in blocks) + "\n"


# -- the checkout -----------------------------------------------------------------------------------------------------


def find_checkout(start: Path | None = None) -> Path:
    """Return the repository root: the working directory or a parent holding ``tox.ini`` beside ``matrix/``."""
    here = (start or Path.cwd()).resolve()
    for base in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (base / "tox.ini").is_file() and (base / "matrix" / "emmett_valkey_matrix").is_dir():
            return base
    raise WorkflowError(f"no checkout (tox.ini beside matrix/) at or above {here}")


def generate(root: Path) -> str:
    """Return the workflow for the checkout at ``root``: its catalogue and its tox.ini."""
    return render(load_catalogue(root / CHECKOUT_CATALOGUE), tox_envs(root / "tox.ini"))


def diff(root: Path) -> str:
    """Return a unified diff from the committed workflow to the generated one; empty when they agree."""
    path = root / WORKFLOW_PATH
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    return "".join(difflib.unified_diff(committed.splitlines(keepends=True), generate(root).splitlines(keepends=True),
                                        str(WORKFLOW_PATH), f"{WORKFLOW_PATH} (generated)"))
