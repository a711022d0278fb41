"""The committed .github/workflows/matrix.yml is what the catalogue and tox.ini give.

One job per certification env, the compose service where the catalogue has only builds from source, every result
file uploaded, one report job gathering them.

Regenerate the file after a catalogue or tox.ini change with ``emmett-valkey-matrix workflow --write``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from emmett_valkey_matrix import workflow
from emmett_valkey_matrix.cli import main
from emmett_valkey_matrix.sources.user import env_name

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / workflow.WORKFLOW_PATH


@pytest.fixture(scope="module")
def envs() -> dict[str, frozenset[str]]:
    return workflow.tox_envs(ROOT / "tox.ini")


@pytest.fixture(scope="module")
def jobs() -> dict[str, dict]:
    doc = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    return doc["jobs"]


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_the_committed_workflow_is_the_generated_one() -> None:
    """Byte for byte: a catalogue entry or tox env added without regenerating fails here (and `--check` says so)."""
    assert COMMITTED.read_text(encoding="utf-8") == workflow.generate(ROOT), \
        "stale workflow: run `emmett-valkey-matrix workflow --write`"


def test_every_certification_env_of_tox_ini_has_its_job(jobs, envs, catalogue) -> None:
    """Jobs: every catalogue id, each <id>-cluster env tox.ini declares, migration if declared; checks, report."""
    certify = set(catalogue)
    certify |= {env for env in envs if env.endswith("-cluster") and env.removesuffix("-cluster") in catalogue}
    certify |= {"migration"} & set(envs)
    labelled = {env for env, labels in envs.items() if labels & {"matrix", "cluster"}}
    assert labelled <= certify  # nothing tox runs under `-m matrix` / `-m cluster` is left out of CI
    assert set(jobs) == certify | {"checks", "report"}
    for env in certify:
        assert f"tox -e {env}" in _runs(jobs[env]), env
        upload = next(s for s in jobs[env]["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
        assert upload["if"] == "always()"  # a failed certification's result file is what the report shows
        assert upload["with"]["name"] == f"results-{env}" and upload["with"]["path"] == "reports/results/"


def test_the_report_job_gathers_every_result_file(jobs, catalogue) -> None:
    """It needs every certification job, runs always, merges all results-* artifacts, Markdown into the job summary."""
    report = jobs["report"]
    certify = set(jobs) - {"checks", "report"}
    assert set(report["needs"]) == certify and report["if"] == "always()"
    download = next(s for s in report["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"] == {"pattern": "results-*", "path": "reports/results", "merge-multiple": True}
    runs = _runs(report)
    assert "tox -e report" in runs and 'cat reports/compatibility.md >> "$GITHUB_STEP_SUMMARY"' in runs
    upload = next(s for s in report["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "reports/compatibility.html" in upload["with"]["path"] and "reports/compatibility.json" in \
        upload["with"]["path"]
    assert "tox -e lint,types,tests" in _runs(jobs["checks"])


def test_compose_where_the_catalogue_only_builds_from_source(jobs, catalogue) -> None:
    """valkey72 (tarball only) runs against its compose service at the catalogue's port; the others use a binary."""
    compose_ids = [sid for sid, entry in catalogue.items() if workflow.needs_compose(entry)]
    assert compose_ids[0] == "valkey72"
    for sid, entry in catalogue.items():
        job = jobs[sid]
        certify = next(s for s in job["steps"] if s.get("run") == f"tox -e {sid}")
        if sid in compose_ids:
            assert "container" not in job  # Docker is on the runner
            assert f"docker compose -f docker/docker-compose.yaml up -d --wait {sid}" in _runs(job)
            assert certify["env"] == {env_name(sid, "URL"): f"valkey://localhost:{entry.compose_port}/0"}
        else:
            assert job["container"] == workflow.CONTAINER and "env" not in certify
            assert "actions/cache" in _uses(job) and not any("docker" in r for r in _runs(job))


def test_cluster_and_migration_envs_become_jobs_when_tox_ini_declares_them(tmp_path, catalogue) -> None:
    """A tox.ini with <id>-cluster envs and a migration env gives their jobs, after the standalone ones."""
    ids = ",".join(catalogue)
    (tmp_path / "tox.ini").write_text(
        f"[tox]\nenv_list = lint\n\n[testenv:{{{ids}}}]\nlabels = matrix\n\n"
        f"[testenv:{{valkey91,redis74}}-cluster]\nlabels = cluster\n\n[testenv:migration]\ncommands = pytest\n"
        f"\n[testenv:bench-{{{ids}}}]\nlabels = bench\n",
        encoding="utf-8")
    envs = workflow.tox_envs(tmp_path / "tox.ini")
    assert envs["valkey91-cluster"] == {"cluster"} and envs["bench-redis82"] == {"bench"}
    planned = [(j.env, j.kind, j.compose) for j in workflow.jobs(catalogue, envs)]
    assert planned[len(catalogue):] == [("valkey91-cluster", "cluster", False), ("redis74-cluster", "cluster", False),
                                        ("migration", "migration", False)]
    doc = yaml.safe_load(workflow.render(catalogue, envs))
    assert set(doc["jobs"]["report"]["needs"]) == {*catalogue, "valkey91-cluster", "redis74-cluster", "migration"}
    assert "tox -e valkey91-cluster" in _runs(doc["jobs"]["valkey91-cluster"])
    assert "tox -e migration" in _runs(doc["jobs"]["migration"])


def test_catalogue_and_tox_ini_must_agree(tmp_path, catalogue) -> None:
    """A catalogue id without its env, or a matrix-labelled env that is no catalogue id, is an error, not a gap."""
    ids = list(catalogue)
    (tmp_path / "tox.ini").write_text(f"[testenv:{{{','.join(ids[1:])}}}]\nlabels = matrix\n", encoding="utf-8")
    with pytest.raises(workflow.WorkflowError, match=f"without a tox env in tox.ini: {ids[0]}"):
        workflow.jobs(catalogue, workflow.tox_envs(tmp_path / "tox.ini"))
    (tmp_path / "tox.ini").write_text(f"[testenv:{{{','.join(ids)},keydb63}}]\nlabels = matrix\n", encoding="utf-8")
    with pytest.raises(workflow.WorkflowError, match="no catalogue id: keydb63"):
        workflow.jobs(catalogue, workflow.tox_envs(tmp_path / "tox.ini"))


def test_expand_generative_names() -> None:
    """Brace groups of tox env names expand in order, several groups as a product."""
    assert workflow.expand("bench-{a,b}") == ["bench-a", "bench-b"]
    assert workflow.expand("{a, b}-{x,y}") == ["a-x", "a-y", "b-x", "b-y"]
    assert workflow.expand("report") == ["report"]


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys) -> None:
    """`workflow --check` exits 1 with a diff on a stale copy, 0 on the current one; `--write` repairs it."""
    (tmp_path / "matrix" / "emmett_valkey_matrix").mkdir(parents=True)
    (tmp_path / "matrix" / "emmett_valkey_matrix" / "catalogue.toml").write_bytes(
        (ROOT / workflow.CHECKOUT_CATALOGUE).read_bytes())
    (tmp_path / "tox.ini").write_bytes((ROOT / "tox.ini").read_bytes())
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    stale = COMMITTED.read_text(encoding="utf-8").replace("tox -e redis82", "tox -e redis81")
    (tmp_path / workflow.WORKFLOW_PATH).write_text(stale, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["workflow", "--check"]) == 1
    out = capsys.readouterr()
    assert "-        run: tox -e redis81" in out.out and "+        run: tox -e redis82" in out.out
    assert "emmett-valkey-matrix workflow --write" in out.err
    assert main(["workflow", "--write"]) == 0
    assert main(["workflow", "--check"]) == 0
    assert (tmp_path / workflow.WORKFLOW_PATH).read_text(encoding="utf-8") == workflow.generate(ROOT)
