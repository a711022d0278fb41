"""The release workflow (.github/workflows/release.yml) publishes exactly what ``tox -e dist`` built and checked.

It cannot run here (no GitHub): these tests read it beside tox.ini and tools/dist_check.py.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module")
def release() -> dict:
    return yaml.safe_load(RELEASE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dist_env() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini", encoding="utf-8")
    return parser["testenv:dist"]


def _steps(job: dict) -> list[dict]:
    return job["steps"]


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in _steps(job) if "run" in step]


def test_a_version_tag_triggers_it(release) -> None:
    """Only a pushed v* tag starts a release (PyYAML reads the bare key `on` as True)."""
    trigger = release.get("on", release.get(True))
    assert trigger == {"push": {"tags": ["v*"]}}


def test_it_publishes_what_the_dist_env_built_and_checked(release, dist_env) -> None:
    """The dist job runs tox -e dist with the tag and uploads dist/, the directory that env writes its four files to."""
    dist = release["jobs"]["dist"]
    assert _runs(dist)[-1] == 'tox -e dist -- --tag "$GITHUB_REF_NAME"'
    assert re.search(r"^python tools/dist_check\.py --out \{toxinidir\}/dist \{posargs\}$", dist_env["commands"],
                     re.M), dist_env["commands"]
    upload = next(s for s in _steps(dist) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "dist/" and upload["with"]["if-no-files-found"] == "error"
    publish = release["jobs"]["publish"]
    download = next(s for s in _steps(publish) if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"] == {"name": upload["with"]["name"], "path": "dist/"}
    pypa = next(s for s in _steps(publish) if s.get("uses", "").startswith("pypa/gh-action-pypi-publish@"))
    assert pypa["with"] == {"packages-dir": "dist/"}
    # nothing else builds: every file published comes from the dist env's build command
    builders = [run for job in release["jobs"].values() for run in _runs(job) if "build" in run and "tox" not in run]
    assert builders == []
    assert "python -m build" not in RELEASE.read_text(encoding="utf-8")


def test_publishing_is_trusted_and_waits_for_every_check(release) -> None:
    """Publish needs the checks and dist jobs, runs in an environment with id-token: write, holds no token secret."""
    publish = release["jobs"]["publish"]
    assert set(publish["needs"]) == {"checks", "dist"}
    assert publish["environment"] and publish["permissions"] == {"id-token": "write"}
    assert release["permissions"] == {"contents": "read"}
    assert "secrets." not in RELEASE.read_text(encoding="utf-8")
    assert "tox -e lint,types,tests" in _runs(release["jobs"]["checks"])


def test_the_dist_check_refuses_a_tag_that_is_not_the_versions() -> None:
    """tools/dist_check.py --tag stops before building when a distribution's version is not the tag's."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "tools" / "dist_check.py"), "--tag", "v0.0.0-not-ours"],
                         capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode == 1, out
    assert "tag 'v0.0.0-not-ours' is not v<version> of every distribution" in out.stderr
