"""The release check of both distributions (``tox -e dist``; the release workflow publishes what it leaves in dist/).

1. ``python -m build --sdist --wheel`` of ``handler/`` and ``matrix/`` into ``--out`` (four files);
2. ``twine check --strict`` on all four;
3. each wheel inspected: exactly its package's modules and data files (no tests, no certification suites),
   ``py.typed``, the matrix's catalogue, report CSS and schemas, the license file and expression, valid
   classifiers (Typing :: Typed, Python 3.10-3.13), project URLs, the version of the package's ``__version__``; the
   handler's ``Requires-Dist`` exactly its two requirements with their bounds, the matrix's admitting the handler;
4. a wheel built again from each sdist, with the same files;
5. each wheel installed into a fresh venv with nothing else: the handler's has at most what ``emmett-core`` and
   ``valkey[libvalkey]`` bring (a third venv with only those two says what that is), no filelock, tomli, pytest or
   matrix package; imports; ``emmett-valkey-matrix --help``, ``serve`` (its URL read from stdout, stopped by pid),
   a handler round trip against that server from the handler's venv, and ``list``.

With ``--tag v<version>`` (the release workflow), every distribution's version must be the tag's, and CHANGELOG.md
must have that version's dated entry.

Exit status 0 when every check holds, 1 with every failed check named otherwise.
"""

from __future__ import annotations

import argparse
import email.parser
import fnmatch
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
import zipfile
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("handler", "matrix")
BUILD = ("-m", "build", "--sdist", "--wheel")  # the release workflow builds with this command too, via tox -e dist
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
FORBIDDEN_IN_HANDLER_VENV = ("filelock", "tomli", "pytest", "emmett-valkey-matrix")
SERVE_DEADLINE_S = 300.0  # the first serve on a machine downloads the server (1.6 MB)

ROUND_TRIP = """
import asyncio, os, uuid
from emmett_valkey import ValkeyCache

cache = ValkeyCache.from_env(prefix=f"dist-check:{uuid.uuid4().hex}:")
assert cache.set("answer", {"n": 42}, 30) is True
assert cache.get("answer") == {"n": 42}, cache.get("answer")
assert cache.incr("visits") == 1
assert cache.get_many(["answer", "missing"]) == {"answer": {"n": 42}}
assert asyncio.run(cache.aget("answer")) == {"n": 42}
assert cache.clear() == 2
assert cache.get("answer") is None
cache.close()
print("round trip ok against", os.environ["VALKEY_URL"])
"""


class Failed(Exception):
    """A check that does not hold; the message says which and why."""


def run(argv: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; return its stdout, or raise :class:`Failed` with its output."""
    out = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise Failed(f"`{' '.join(str(a) for a in argv)}` exited {out.returncode}:\n{out.stdout}{out.stderr}")
    return out.stdout


def project(part: str) -> dict[str, Any]:
    """Return ``<part>/pyproject.toml`` as a dict."""
    data: dict[str, Any] = tomllib.loads((ROOT / part / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def source_version(part: str) -> str:
    """Return the package's ``__version__``, read as text (as setuptools' static ``attr:`` does)."""
    attr = project(part)["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    package = attr.rpartition(".")[0]
    text = (ROOT / part / package / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise Failed(f"{part}: no __version__ in {package}/__init__.py")
    return match.group(1)


# -- 1, 2: build and twine ------------------------------------------------------------------------------------------


def build(out: Path) -> dict[str, dict[str, Path]]:
    """Build sdist and wheel of each distribution into ``out``; return part -> {"sdist", "wheel"}."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files: dict[str, dict[str, Path]] = {}
    for part in PARTS:
        before = set(out.iterdir())
        run([sys.executable, *BUILD, "--outdir", out, ROOT / part])
        new = set(out.iterdir()) - before
        sdists = [p for p in new if p.name.endswith(".tar.gz")]
        wheels = [p for p in new if p.name.endswith(".whl")]
        if len(sdists) != 1 or len(wheels) != 1 or len(new) != 2:
            raise Failed(f"{part}: python -m build gave {sorted(p.name for p in new)}, not one sdist and one wheel")
        files[part] = {"sdist": sdists[0], "wheel": wheels[0]}
    return files


# -- 3: what each wheel holds ----------------------------------------------------------------------------------------


def expected_files(part: str) -> set[str]:
    """Every module and every data file (by the package-data globs) of the package's source tree."""
    cfg = project(part)["tool"]["setuptools"]
    patterns = [p for globs in cfg["package-data"].values() for p in globs]
    (include,) = cfg["packages"]["find"]["include"]
    top = ROOT / part / include.rstrip("*")
    found = set()
    for path in top.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        packages = [d for d in path.parents if d.is_relative_to(top) and (d / "__init__.py").is_file()]
        if path.suffix == ".py" or any(fnmatch.fnmatch(path.relative_to(d).as_posix(), pat)
                                       for d in packages for pat in patterns):
            found.add(path.relative_to(ROOT / part).as_posix())
    return found


def metadata(wheel: Path) -> tuple[list[str], email.message.Message]:
    """Return the wheel's file names and its parsed METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        return names, email.parser.Parser().parsestr(zf.read(meta).decode("utf-8"))


def inspect_wheel(part: str, wheel: Path) -> list[str]:
    """Return the problems of one wheel (empty when it is right)."""
    problems = []
    names, meta = metadata(wheel)
    code = {n for n in names if ".dist-info/" not in n}
    expected = expected_files(part)
    if code - expected:
        problems.append(f"files that are no module or data file of the package: {sorted(code - expected)}")
    if expected - code:
        problems.append(f"modules or data files missing: {sorted(expected - code)}")
    bad = [n for n in names if {"tests", "certification", "migration"} & set(n.split("/"))
           or re.search(r"(^|/)(test_[^/]*|conftest)\.py$", n)]
    if bad:
        problems.append(f"tests or suites in the wheel: {bad}")
    package = project(part)["tool"]["setuptools"]["packages"]["find"]["include"][0].rstrip("*")
    if f"{package}/py.typed" not in names:
        problems.append(f"no {package}/py.typed")
    if part == "matrix":
        for what, pattern in (("the catalogue", "*/catalogue.toml"), ("the report's CSS", "*.css"),
                              ("the results schema", "*/schemas/results-*.schema.json"),
                              ("the report schema", "*/schemas/report-*.schema.json")):
            if not fnmatch.filter(names, pattern):
                problems.append(f"no {what} ({pattern})")
    licenses = [n for n in names if re.search(r"\.dist-info/licenses/LICENSE$", n)]
    if not licenses:
        problems.append("no .dist-info/licenses/LICENSE")
    else:
        with zipfile.ZipFile(wheel) as zf:
            if zf.read(licenses[0]) != (ROOT / "LICENSE").read_bytes():
                problems.append(f"{licenses[0]} is not the repository's LICENSE")
    if meta["License-Expression"] != "BSD-3-Clause" or meta.get_all("License-File") != ["LICENSE"]:
        problems.append(f"license metadata: {meta['License-Expression']!r}, {meta.get_all('License-File')!r}")
    from trove_classifiers import classifiers as known  # the dist env's; imported here for --tag alone

    classifiers = meta.get_all("Classifier") or []
    unknown = [c for c in classifiers if c not in known]
    needed = ["Typing :: Typed", *(f"Programming Language :: Python :: {v}" for v in PYTHONS)]
    if unknown or not set(needed) <= set(classifiers) or not any(c.startswith("Framework :: ") for c in classifiers):
        problems.append(f"classifiers: unknown {unknown}, missing {sorted(set(needed) - set(classifiers))}, "
                        "or no Framework classifier")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    if not {"Repository", "Changelog", "Documentation"} <= set(urls):
        problems.append(f"project URLs: {urls}")
    if meta["Version"] != source_version(part):
        problems.append(f"version {meta['Version']} is not the source's __version__ {source_version(part)}")
    if meta["Requires-Python"] != ">=3.10":
        problems.append(f"Requires-Python {meta['Requires-Python']}")
    problems += requires(part, meta)
    return [f"{wheel.name}: {p}" for p in problems]


def requires(part: str, meta: email.message.Message) -> list[str]:
    """Check Requires-Dist: the handler's two bounded requirements exactly; the matrix's range admits the handler."""
    dist = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    declared = [Requirement(r) for r in project(part)["project"]["dependencies"]]
    problems = []
    if part == "handler":
        plain = [r for r in dist if r.marker is None]
        if sorted(map(str, dist)) != sorted(map(str, declared)) or len(plain) != len(dist):
            problems.append(f"Requires-Dist {sorted(map(str, dist))} is not {sorted(map(str, declared))}")
        if {(canonicalize_name(r.name), frozenset(r.extras)) for r in dist} != \
                {("emmett-core", frozenset()), ("valkey", frozenset({"libvalkey"}))}:
            problems.append(f"Requires-Dist must be emmett-core and valkey[libvalkey] only: {sorted(map(str, dist))}")
        for req in dist:
            ops = {spec.operator for spec in req.specifier}
            if not ({">=", ">"} & ops and {"<", "<="} & ops):
                problems.append(f"{req}: a lower and an upper bound are required")
    else:
        (handler,) = [r for r in dist if canonicalize_name(r.name) == "emmett-valkey"]
        version = source_version("handler")
        if not handler.specifier.contains(version):
            problems.append(f"{handler} does not admit the handler's version {version}")
    return problems


def same_files_from_sdist(part: str, sdist: Path, wheel: Path, tmp: Path) -> list[str]:
    """Build a wheel again from the sdist; return the problems when its files differ from the first wheel's."""
    src = tmp / f"{part}-sdist"
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
        if hasattr(tarfile, "data_filter"):
            tar.extractall(src, filter="data")
        else:  # pragma: no cover
            tar.extractall(src)  # noqa: S202 - the sdist just built
    stem = sdist.name.removesuffix(".tar.gz")
    missing = [f for f in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO") if f"{stem}/{f}" not in members]
    again = tmp / f"{part}-again"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", again, src / stem])
    (rebuilt,) = again.glob("*.whl")
    first, second = metadata(wheel)[0], metadata(rebuilt)[0]
    problems = [f"{sdist.name}: lacks {missing}"] if missing else []
    if rebuilt.name != wheel.name or sorted(first) != sorted(second):
        problems.append(f"{sdist.name}: its wheel {rebuilt.name} differs from {wheel.name}: "
                        f"only in the first {sorted(set(first) - set(second))}, "
                        f"only from the sdist {sorted(set(second) - set(first))}")
    return problems


# -- 5: fresh venvs ---------------------------------------------------------------------------------------------------


class Venv:
    """A fresh venv (pip only), with what was there before anything was installed."""

    def __init__(self, path: Path) -> None:
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
        self.path = path
        self.python = path / "bin" / "python"
        self.bare = self.packages()

    def packages(self) -> dict[str, str]:
        """Installed distributions, name -> version."""
        rows = json.loads(run([self.python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"]))
        return {canonicalize_name(r["name"]): r["version"] for r in rows}

    def install(self, *what: str | Path) -> dict[str, str]:
        """Install ``what`` with pip; return what that added to the bare venv."""
        run([self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *what])
        return {n: v for n, v in self.packages().items() if n not in self.bare}


def serve(matrix: Venv, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``emmett-valkey-matrix serve`` from the matrix venv; return the process and the URL it printed."""
    proc = subprocess.Popen([str(matrix.path / "bin" / "emmett-valkey-matrix"), "serve"], stdout=subprocess.PIPE,
                            stderr=log.open("w"), text=True)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + SERVE_DEADLINE_S
        while time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.5):
                line = proc.stdout.readline().strip()
                if re.fullmatch(r"valkey://127\.0\.0\.1:\d+", line):
                    return proc, line
                break
    stop(proc)
    raise Failed(f"emmett-valkey-matrix serve printed no URL within {SERVE_DEADLINE_S:.0f} s; its stderr:\n"
                 f"{log.read_text()}")


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM by pid, then wait for it (SIGKILL after 30 s); return its exit status."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return -signal.SIGKILL
    return proc.returncode


def fresh_venvs(files: dict[str, dict[str, Path]], tmp: Path) -> list[str]:
    """Install each wheel alone into a fresh venv and use it; return the problems."""
    problems = []
    declared = project("handler")["project"]["dependencies"]
    reference = Venv(tmp / "venv-reference").install(*declared)
    handler = Venv(tmp / "venv-handler")
    added = handler.install(files["handler"]["wheel"])
    print(f"handler venv: {len(added)} packages: " + ", ".join(f"{n}=={v}" for n, v in sorted(added.items())))
    beyond = sorted(set(added) - set(reference) - {"emmett-valkey"})
    if beyond:
        problems.append(f"the handler's venv has packages that {' and '.join(declared)} do not bring: {beyond}")
    present = [n for n in FORBIDDEN_IN_HANDLER_VENV if n in added]
    if present:
        problems.append(f"the handler's venv has {present}")
    probe = ("import importlib.util, emmett_valkey; print(emmett_valkey.__version__); "
             "assert importlib.util.find_spec('emmett_valkey_matrix') is None, 'the matrix package is importable'")
    if run([handler.python, "-c", probe]).strip() != source_version("handler"):
        problems.append("the handler's venv imports another emmett_valkey version")
    matrix = Venv(tmp / "venv-matrix")
    matrix_added = matrix.install(files["handler"]["wheel"], files["matrix"]["wheel"])
    if "pytest" in matrix_added:
        problems.append("the matrix venv (no certify extra) has pytest")
    run([matrix.python, "-c", "import emmett_valkey_matrix, emmett_valkey_matrix.cli, emmett_valkey"])
    cli = matrix.path / "bin" / "emmett-valkey-matrix"
    helptext = run([cli, "--help"])
    if not all(word in helptext for word in ("list", "serve", "report")):
        problems.append(f"emmett-valkey-matrix --help lacks its commands:\n{helptext}")
    proc, url = serve(matrix, tmp / "serve.log")
    try:
        print(run([handler.python, "-c", ROUND_TRIP], env={**os.environ, "VALKEY_URL": url}).strip())
    finally:
        status = stop(proc)
    if status != 0:
        problems.append(f"serve exited {status} on SIGTERM (0 expected); stderr:\n{(tmp / 'serve.log').read_text()}")
    catalogue = "from emmett_valkey_matrix import load_catalogue; print(*load_catalogue())"
    ids = run([matrix.python, "-c", catalogue]).split()
    listed = run([cli, "list", "--no-fetch", "--brief"]).splitlines()
    if [line.split()[0] for line in listed] != ids:
        problems.append(f"emmett-valkey-matrix list: ids {[line.split()[0] for line in listed]}, catalogue {ids}")
    elif next(line for line in listed if line.startswith("valkey91 ")).split()[1] == "-":
        problems.append(f"list does not show valkey91 resolvable after serve ran it: {listed}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run every check; print a line per step and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the four files go (default dist/)")
    parser.add_argument("--tag", help="a release tag (v0.1.0): every distribution's version must be its version")
    args = parser.parse_args(argv)
    started = time.monotonic()
    problems: list[str] = []
    if args.tag is not None:
        versions = {part: source_version(part) for part in PARTS}
        if not args.tag.startswith("v") or any(v != args.tag[1:] for v in versions.values()):
            print(f"dist check FAILED: tag {args.tag!r} is not v<version> of every distribution: {versions}",
                  file=sys.stderr)
            return 1
        dated = re.compile(rf"^## \[{re.escape(args.tag[1:])}\] - \d{{4}}-\d{{2}}-\d{{2}}$", re.M)
        if not dated.search((ROOT / "CHANGELOG.md").read_text(encoding="utf-8")):
            print(f"dist check FAILED: CHANGELOG.md has no dated entry for {args.tag} "
                  f"('## [{args.tag[1:]}] - YYYY-MM-DD')", file=sys.stderr)
            return 1

    def step(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)

    try:
        step(f"python {' '.join(BUILD)} of {', '.join(PARTS)} into {args.out}")
        files = build(args.out)
        four = [f for part in PARTS for f in files[part].values()]
        step(f"twine check --strict {' '.join(f.name for f in four)}")
        run([sys.executable, "-m", "twine", "check", "--strict", *four])
        step("the wheels' files and metadata")
        for part in PARTS:
            problems += inspect_wheel(part, files[part]["wheel"])
        with tempfile.TemporaryDirectory(prefix="emmett-valkey-dist-") as tmp:
            step("a wheel again from each sdist")
            for part in PARTS:
                problems += same_files_from_sdist(part, files[part]["sdist"], files[part]["wheel"], Path(tmp))
            step("fresh venvs: the handler alone, the matrix, serve, a round trip, --help, list")
            problems += fresh_venvs(files, Path(tmp))
    except Failed as exc:
        problems.append(str(exc))
    elapsed = time.monotonic() - started
    if problems:
        print(f"\ndist check FAILED in {elapsed:.0f} s:", *(f"- {p}" for p in problems), sep="\n", file=sys.stderr)
        return 1
    print(f"\ndist check passed in {elapsed:.0f} s: {', '.join(sorted(f.name for f in args.out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
